import { describe, expect, it } from 'vitest';
import {
  LEGACY_DDL,
  legacyAiFbtBundleSchema,
  legacyBookingSchema,
  legacyBundleDiscountIdSchema,
  legacyCustomerKvSchema,
} from '../../transforms/legacy-schema.js';
import { parseCreateTables } from './ddl.js';
import { legacyAiBundle, legacyBooking, legacyManualBundle, legacyProfile } from './fixtures.js';

const SCHEMAS = {
  bookings: legacyBookingSchema,
  customers_kv: legacyCustomerKvSchema,
  bundle_discount_id: legacyBundleDiscountIdSchema,
  ai_fbt_bundles: legacyAiFbtBundleSchema,
};

describe('legacy schema', () => {
  it('has the DDL columns in the zod schemas', () => {
    const tables = parseCreateTables(LEGACY_DDL);
    expect(tables.map((t) => t.name)).toEqual(Object.keys(SCHEMAS));
    for (const t of tables)
      expect(Object.keys(SCHEMAS[t.name as keyof typeof SCHEMAS].shape)).toEqual(t.columns);
  });

  it('sets REPLICA IDENTITY FULL on every table (TOASTed columns must reach the stage)', () => {
    for (const table of Object.keys(SCHEMAS)) {
      expect(LEGACY_DDL).toContain(`ALTER TABLE ${table} REPLICA IDENTITY FULL;`);
    }
  });

  it('accepts the fixtures and tolerates added columns', () => {
    expect(legacyBookingSchema.safeParse({ ...legacyBooking(), addedLater: 1 }).success).toBe(true);
    expect(legacyCustomerKvSchema.safeParse(legacyProfile()).success).toBe(true);
    expect(legacyBundleDiscountIdSchema.safeParse(legacyManualBundle()).success).toBe(true);
    expect(legacyAiFbtBundleSchema.safeParse(legacyAiBundle()).success).toBe(true);
  });
});

describe('legacy numeric columns after a widening migration', () => {
  const amount = legacyBookingSchema.shape.finalAmount;

  it.each([
    ['120.50', '120.50'],
    ['120.5000', '120.50'],
    ['120.5', '120.50'],
    ['0120.50', '120.50'],
    ['7', '7.00'],
    ['9999999999.99', '9999999999.99'],
  ])('%s is the numeric(12,2) value %s', (text, canonical) => {
    expect(amount.parse(text)).toBe(canonical);
  });

  it.each(['120.5001', '12345678901.00', '1e3', 'NaN', ''])('%s does not fit numeric(12,2)', (text) => {
    expect(amount.safeParse(text).success).toBe(false);
  });

  it('a booking from a numeric(14,4) column maps like the numeric(12,2) one', () => {
    expect(legacyBookingSchema.parse(legacyBooking({ finalAmount: '120.5000' }))).toEqual(
      legacyBookingSchema.parse(legacyBooking({ finalAmount: '120.50' })),
    );
  });
});
