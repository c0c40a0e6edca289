import { expect } from 'vitest';
import {
  type JsonRow,
  type LegacyChange,
  TransformRejection,
  type TransformResult,
  type V2Op,
} from '../../src/contracts/transform-api.js';
import type { ReasonCode } from '../../transforms/reason-codes.js';
import { V2_KEYS, V2Schemas } from '../../transforms/v2-schema.js';

/** Fixture rows of the legacy tables, in the source's JSON forms, and assertions shared by the transform tests. */

export const BOOKINGS = 'public.bookings';
export const CUSTOMERS_KV = 'public.customers_kv';
export const BUNDLE_DISCOUNT_ID = 'public.bundle_discount_id';
export const AI_FBT_BUNDLES = 'public.ai_fbt_bundles';

/** A source-style timestamptz: UTC with six fractional digits. */
export const ts = (day: number, micros = 0): string =>
  `2024-01-${String(day).padStart(2, '0')}T10:00:00.${String(micros).padStart(6, '0')}Z`;

export function legacyBooking(overrides: Partial<JsonRow> & { contact?: JsonRow } = {}): JsonRow {
  const { contact, ...rest } = overrides;
  return {
    id: '6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f',
    bookingReference: 'BK-1001',
    contactDetails: {
      email: 'Ada@Example.com',
      firstName: 'Ada',
      lastName: 'Lovelace',
      phone: '+44 20 7946 0000',
      company: 'Analytical Engines Ltd',
      notes: 'x'.repeat(5000),
      ...contact,
    },
    status: 'PAID',
    finalAmount: '120.50',
    paymentDate: ts(3),
    paymentMethod: 'paypal',
    createdAt: ts(2),
    updatedAt: ts(4),
    ...rest,
  };
}

export function legacyProfile(
  overrides: { key?: string; updated_at?: string } & { value?: JsonRow } = {},
): JsonRow {
  return {
    key: overrides.key ?? 'customer_42',
    value: {
      customerId: '42',
      email: ' Ada@Example.COM ',
      name: 'Ada Lovelace',
      companyName: 'Analytical Engines Ltd',
      plan: 'pro',
      status: 'active',
      createdAt: '2023-12-01T09:00:00.000000Z',
      ...overrides.value,
    },
    updated_at: overrides.updated_at ?? ts(20),
  };
}

export function legacyManualBundle(overrides: Partial<JsonRow> = {}): JsonRow {
  return {
    id: 7,
    bundleId: 'gid://shopify/Metaobject/555',
    bundleName: 'Summer Sale Kit!',
    discountId: 'gid://shopify/DiscountAutomaticNode/99',
    shop: 'demo.myshopify.com',
    products: [
      { productId: 'gid://shopify/Product/1', variantId: 'gid://shopify/ProductVariant/11', quantity: 2 },
      { productId: 'gid://shopify/Product/2' },
    ],
    discountPercent: '15.00',
    createdAt: ts(5),
    ...overrides,
  };
}

export function legacyAiBundle(overrides: Partial<JsonRow> = {}): JsonRow {
  return {
    id: 3,
    shop: 'demo.myshopify.com',
    productId: 'gid://shopify/Product/10',
    bundledProductIds: ['gid://shopify/Product/11', 'gid://shopify/Product/12'],
    bundleMetaobjectId: 'gid://shopify/Metaobject/777',
    discountId: 'gid://shopify/DiscountAutomaticNode/5',
    confidenceScore: 0.82,
    support: 0.125,
    lift: 3.5,
    isActive: true,
    createdAt: ts(6),
    ...overrides,
  };
}

/** The Kafka key of a legacy row: its primary key. */
export function keyOf(table: string, row: JsonRow): JsonRow {
  return table === CUSTOMERS_KV ? { key: row.key ?? null } : { id: row.id ?? null };
}

export function change(table: string, after: JsonRow, op: 'c' | 'u' | 'r' = 'c'): LegacyChange {
  return { op, table, key: keyOf(table, after), before: null, after };
}

export function deletion(table: string, before: JsonRow): LegacyChange {
  return { op: 'd', table, key: keyOf(table, before), before, after: null };
}

/** Asserts a successful result whose every row validates against its V2 schema; returns the ops. */
export function expectOps(result: TransformResult): V2Op[] {
  if (!result.ok)
    throw new Error(`expected ops, got ${result.rejection.reason}: ${result.rejection.message}`);
  expectValidOps(result.ops);
  return result.ops;
}

/** Schemas are strict, so a parse also catches extra columns. (Not compared with the parse output: zod's copy of a
 * JSON object drops a '__proto__' key that the row itself keeps as data.) */
export function expectValidOps(ops: readonly V2Op[]): void {
  for (const op of ops) {
    if (op.kind === 'upsert') {
      V2Schemas[op.entity].parse(op.row);
      expect(op.key).toEqual(Object.fromEntries(V2_KEYS[op.entity].map((c) => [c, op.row[c]])));
    } else if (op.kind === 'replace-children') {
      expect(op.childKey).toEqual(V2_KEYS[op.entity]);
      for (const row of op.rows) {
        V2Schemas[op.entity].parse(row);
        for (const [column, value] of Object.entries(op.parentKey)) expect(row[column]).toEqual(value);
      }
    }
  }
}

export function expectRejected(result: TransformResult, reason: ReasonCode): void {
  if (result.ok) throw new Error(`expected a ${reason} rejection, got ${JSON.stringify(result.ops)}`);
  expect(result.rejection.reason).toBe(reason);
  // A rejection the module made, not an error it threw.
  expect(result.rejection).toBeInstanceOf(TransformRejection);
}

/** The row of the first upsert of an entity. */
export function upserted(ops: readonly V2Op[], entity: string): JsonRow | undefined {
  for (const op of ops) if (op.kind === 'upsert' && op.entity === entity) return op.row;
  return undefined;
}
