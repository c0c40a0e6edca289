import { z } from 'zod';
import { isoTimestampSchema, jsonValueSchema, legacyNumericSchema } from './scalars.js';

/**
 * The legacy rows as they arrive in a change event's `after` (the source's JSON forms: numerics as exact decimal
 * strings, timestamptz as ISO strings, jsonb parsed, text[] as arrays). These schemas check column *types* only;
 * the mapping rules (valid email, known status, non-negative amount, well-formed products) are checked by the
 * transforms, which reject with a specific reason code. Unknown columns are dropped, so a column added to a legacy
 * table does not dead-letter its rows.
 */

/** double precision: JSON has no NaN or infinities, so the source sends those as words. */
const float8 = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);
/** serial */
const int4 = z.int32();

export const legacyContactDetailsSchema = z
  .object({
    firstName: z.string().nullish(),
    lastName: z.string().nullish(),
    phone: z.string().nullish(),
    company: z.string().nullish(),
  })
  // email (checked by the transform), notes and whatever else the app stored: kept as JSON.
  .catchall(jsonValueSchema);

export const legacyBookingSchema = z.object({
  id: z.guid(),
  bookingReference: z.string(),
  contactDetails: legacyContactDetailsSchema,
  status: z.string(),
  finalAmount: legacyNumericSchema(12, 2),
  paymentDate: isoTimestampSchema.nullable(),
  paymentMethod: z.string().nullable(),
  createdAt: isoTimestampSchema,
  updatedAt: isoTimestampSchema,
});

export const legacyCustomerKvSchema = z.object({
  key: z.string(),
  value: jsonValueSchema,
  updated_at: isoTimestampSchema,
});

/** The `value` of a 'customer_<id>' key (other keys' values are not profiles and are not parsed). */
export const legacyCustomerProfileValueSchema = z
  .object({
    name: z.string().nullish(),
    companyName: z.string().nullish(),
    plan: z.string().nullish(),
    status: z.string().nullish(),
    createdAt: isoTimestampSchema.nullish(),
  })
  // customerId and email (checked by the transform), and the store's other fields.
  .catchall(jsonValueSchema);

export const legacyBundleDiscountIdSchema = z.object({
  id: int4,
  bundleId: z.string(),
  bundleName: z.string(),
  discountId: z.string().nullable(),
  shop: z.string(),
  /** Checked by the transform: [{ productId, variantId?, quantity? }]. */
  products: jsonValueSchema,
  discountPercent: legacyNumericSchema(5, 2),
  createdAt: isoTimestampSchema,
});

export const legacyAiFbtBundleSchema = z.object({
  id: int4,
  shop: z.string(),
  productId: z.string(),
  /** text[] may hold NULLs; the transform rejects those. */
  bundledProductIds: z.array(z.string().nullable()),
  bundleMetaobjectId: z.string().nullable(),
  discountId: z.string().nullable(),
  confidenceScore: float8,
  support: float8,
  lift: float8,
  isActive: z.boolean(),
  createdAt: isoTimestampSchema,
});

export type LegacyBooking = z.infer<typeof legacyBookingSchema>;
export type LegacyCustomerKv = z.infer<typeof legacyCustomerKvSchema>;
export type LegacyCustomerProfileValue = z.infer<typeof legacyCustomerProfileValueSchema>;
export type LegacyBundleDiscountId = z.infer<typeof legacyBundleDiscountIdSchema>;
export type LegacyAiFbtBundle = z.infer<typeof legacyAiFbtBundleSchema>;

/**
 * The legacy schema (the demo's and the tests' source database).
 *
 * REPLICA IDENTITY FULL: pgoutput sends an unchanged TOASTed column (a value stored out of line, roughly > 2 kB)
 * of an UPDATE as "unchanged", not as its value, and the transforms need every column they read. With FULL the
 * old tuple carries the whole row, so the source fills such columns from it; without it the sink completes the
 * event from its image store or the legacy row (connectors/postgres-sink/toast-images.ts), at the cost of a copy of
 * those columns in the target. Each table has a column that can grow past that size and that the transforms read:
 * bookings."contactDetails" (free-text notes next to the email), customers_kv.value,
 * bundle_discount_id.products and ai_fbt_bundles."bundledProductIds". FULL costs WAL (old rows are logged in full
 * on UPDATE and DELETE), which these tables' write rates afford.
 */
export const LEGACY_DDL = `
CREATE TABLE IF NOT EXISTS bookings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "bookingReference" text NOT NULL UNIQUE,
  "contactDetails" jsonb NOT NULL,      -- {"email","firstName","lastName","phone","company", "notes"?}; notes can be large (TOASTed)
  status text NOT NULL,                 -- PENDING | PAID | COMPLETED | ATTENDED | CANCELLED | REFUNDED
  "finalAmount" numeric(12,2) NOT NULL,
  "paymentDate" timestamptz,
  "paymentMethod" text,
  "createdAt" timestamptz NOT NULL DEFAULT now(),
  "updatedAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS customers_kv (             -- an export of a key-value store
  key text PRIMARY KEY,                 -- 'customer_<id>' → a profile; 'email_to_customer_<hash>' → an id (ignored)
  value jsonb NOT NULL,                 -- profile: {"customerId","email","name","companyName","plan","status","createdAt", ...}
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bundle_discount_id (
  id serial PRIMARY KEY,
  "bundleId" text NOT NULL, "bundleName" text NOT NULL, "discountId" text, shop text NOT NULL,
  products jsonb NOT NULL DEFAULT '[]', -- [{"productId","variantId"?,"quantity"?}] cached from the metaobject
  "discountPercent" numeric(5,2) NOT NULL DEFAULT 0,
  "createdAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS ai_fbt_bundles (
  id serial PRIMARY KEY, shop text NOT NULL, "productId" text NOT NULL, "bundledProductIds" text[] NOT NULL,
  "bundleMetaobjectId" text, "discountId" text,
  "confidenceScore" double precision NOT NULL, support double precision NOT NULL, lift double precision NOT NULL,
  "isActive" boolean NOT NULL DEFAULT true, "createdAt" timestamptz NOT NULL DEFAULT now());
-- Unchanged TOASTed values must reach the stage through the old tuple (see LEGACY_DDL's doc comment);
-- bookings above all: "contactDetails" holds the email that decides the user.
ALTER TABLE bookings REPLICA IDENTITY FULL;
ALTER TABLE customers_kv REPLICA IDENTITY FULL;
ALTER TABLE bundle_discount_id REPLICA IDENTITY FULL;
ALTER TABLE ai_fbt_bundles REPLICA IDENTITY FULL;
`;
