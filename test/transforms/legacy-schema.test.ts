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
