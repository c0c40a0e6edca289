import { z } from 'zod';
import type { JsonRow, V2Entity } from '../src/contracts/transform-api.js';
import { isNormalizedEmail } from './email.js';
import { isoTimestampSchema, jsonObjectSchema, numericSchema } from './scalars.js';

/**
 * The V2 schema: the only definition of the V2 row types (as they travel in V2 operations and topics: uuids and
 * timestamps as text, numerics as exact decimal strings, jsonb as JSON). Rows are strict objects so a misspelt or
 * extra column fails validation instead of reaching the sink.
 */

/** Ids this project derives (uuid v5) are RFC 9562 uuids. */
const derivedId = z.uuid();
/** Ids copied from the legacy database: PostgreSQL's uuid type accepts any 128 bits, not only RFC variants. */
const legacyUuid = z.guid();
const email = z.string().refine(isNormalizedEmail, 'a normalized email');
const text = z.string();
const nullableText = z.string().nullable();
const int4 = z.int32();

export const BOOKING_STATUSES = [
  'PENDING',
  'PAID',
  'COMPLETED',
  'ATTENDED',
  'CANCELLED',
  'REFUNDED',
] as const;
export type BookingStatus = (typeof BOOKING_STATUSES)[number];

export const userSchema = z.strictObject({
  id: derivedId,
  email,
  first_name: nullableText,
  last_name: nullableText,
  phone: nullableText,
  company_name: nullableText,
  customer_id: nullableText,
  plan: nullableText,
  status: nullableText,
  created_at: isoTimestampSchema,
  total_bookings: int4.nonnegative(),
  total_spent: numericSchema(14, 2),
  first_booking_at: isoTimestampSchema.nullable(),
  last_booking_at: isoTimestampSchema.nullable(),
});

export const customerProfileSchema = z.strictObject({
  customer_id: text.min(1),
  email,
  first_name: nullableText,
  last_name: nullableText,
  company_name: nullableText,
  plan: nullableText,
  status: nullableText,
  created_at: isoTimestampSchema,
});

export const bookingSchema = z.strictObject({
  id: legacyUuid,
  reference: text,
  user_id: derivedId,
  status: z.enum(BOOKING_STATUSES),
  amount: numericSchema(12, 2, { nonNegative: true }),
  contact: jsonObjectSchema,
  booked_at: isoTimestampSchema,
  updated_at: isoTimestampSchema,
});

export const paymentSchema = z.strictObject({
  id: derivedId,
  booking_id: legacyUuid,
  user_id: derivedId,
  amount: numericSchema(12, 2, { nonNegative: true }),
  status: z.enum(['succeeded', 'refunded']),
  method: text,
  paid_at: isoTimestampSchema,
  reference: text,
});

export const bundleSchema = z.strictObject({
  id: derivedId,
  shop: text,
  name: text,
  title: text,
  slug: text,
  type: text,
  status: z.enum(['ACTIVE', 'PAUSED']),
  source: z.enum(['MANUAL', 'AI']),
  shopify_metaobject_id: nullableText,
  metadata: jsonObjectSchema,
  created_at: isoTimestampSchema,
});

export const bundleComponentSchema = z.strictObject({
  bundle_id: derivedId,
  position: int4.nonnegative(),
  shopify_product_id: text,
  shopify_variant_id: nullableText,
  quantity: int4.min(1),
});

export const bundleDiscountSchema = z.strictObject({
  bundle_id: derivedId,
  shopify_discount_id: text,
  discount_type: text,
  percent: numericSchema(5, 2).nullable(),
  is_active: z.boolean(),
});

export const V2Schemas = {
  users: userSchema,
  customer_profiles: customerProfileSchema,
  bookings: bookingSchema,
  payments: paymentSchema,
  bundles: bundleSchema,
  bundle_components: bundleComponentSchema,
  bundle_discounts: bundleDiscountSchema,
} as const satisfies Record<V2Entity, z.ZodType<JsonRow>>;

export type User = z.infer<typeof userSchema>;
export type CustomerProfile = z.infer<typeof customerProfileSchema>;
export type Booking = z.infer<typeof bookingSchema>;
export type Payment = z.infer<typeof paymentSchema>;
export type Bundle = z.infer<typeof bundleSchema>;
export type BundleComponent = z.infer<typeof bundleComponentSchema>;
export type BundleDiscount = z.infer<typeof bundleDiscountSchema>;

/** The row type of a V2 entity. */
export type V2Row<E extends V2Entity> = z.infer<(typeof V2Schemas)[E]>;

/** Primary-key columns per entity (what `upsert` and `delete` keys hold, in this order). */
export const V2_KEYS: Readonly<Record<V2Entity, readonly string[]>> = {
  users: ['id'],
  customer_profiles: ['customer_id'],
  bookings: ['id'],
  payments: ['id'],
  bundles: ['id'],
  bundle_components: ['bundle_id', 'position'],
  bundle_discounts: ['bundle_id'],
};

/** The V2 target schema (for `init-target`, the demo and tests), tables in foreign-key order. */
export const V2_DDL = `
CREATE TABLE IF NOT EXISTS users (
  id uuid PRIMARY KEY,                  -- uuid v5 of the normalized email (fixed namespace)
  email text NOT NULL UNIQUE,
  first_name text, last_name text, phone text, company_name text,
  customer_id text, plan text, status text,
  created_at timestamptz NOT NULL,
  total_bookings integer NOT NULL, total_spent numeric(14,2) NOT NULL,
  first_booking_at timestamptz, last_booking_at timestamptz);
CREATE TABLE IF NOT EXISTS customer_profiles (
  customer_id text PRIMARY KEY, email text NOT NULL, first_name text, last_name text, company_name text,
  plan text, status text, created_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS bookings (
  id uuid PRIMARY KEY, reference text NOT NULL UNIQUE, user_id uuid NOT NULL REFERENCES users(id),
  status text NOT NULL, amount numeric(12,2) NOT NULL, contact jsonb NOT NULL,
  booked_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
  id uuid PRIMARY KEY,                  -- uuid v5 of 'booking:' || booking id
  booking_id uuid NOT NULL UNIQUE REFERENCES bookings(id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users(id),
  amount numeric(12,2) NOT NULL CHECK (amount >= 0),
  status text NOT NULL CHECK (status IN ('succeeded','refunded')),
  method text NOT NULL, paid_at timestamptz NOT NULL, reference text NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS bundles (
  id uuid PRIMARY KEY,                  -- uuid v5 of '<legacy table>:' || legacy id
  shop text NOT NULL, name text NOT NULL, title text NOT NULL, slug text NOT NULL,
  type text NOT NULL DEFAULT 'FIXED', status text NOT NULL CHECK (status IN ('ACTIVE','PAUSED')),
  source text NOT NULL CHECK (source IN ('MANUAL','AI')), shopify_metaobject_id text,
  metadata jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL, UNIQUE (shop, slug));
CREATE TABLE IF NOT EXISTS bundle_components (
  bundle_id uuid NOT NULL REFERENCES bundles(id) ON DELETE CASCADE, position integer NOT NULL,
  shopify_product_id text NOT NULL, shopify_variant_id text, quantity integer NOT NULL CHECK (quantity >= 1),
  PRIMARY KEY (bundle_id, position));
CREATE TABLE IF NOT EXISTS bundle_discounts (
  bundle_id uuid PRIMARY KEY REFERENCES bundles(id) ON DELETE CASCADE,
  shopify_discount_id text NOT NULL, discount_type text NOT NULL DEFAULT 'automatic',
  percent numeric(5,2), is_active boolean NOT NULL);
-- What the users recompute (v2-model.ts) looks a user's rows up by; without them every apply batch scans these tables.
CREATE INDEX IF NOT EXISTS bookings_user_id ON bookings (user_id);
CREATE INDEX IF NOT EXISTS payments_user_id ON payments (user_id);
CREATE INDEX IF NOT EXISTS customer_profiles_email ON customer_profiles (email);
`;
