import { describe, expect, it } from 'vitest';
import type { JsonRow, V2Entity } from '../../src/contracts/transform-api.js';
import { V2_DDL, V2_KEYS, V2Schemas } from '../../transforms/v2-schema.js';
import { parseCreateTables } from './ddl.js';

const ENTITIES: V2Entity[] = [
  'users',
  'customer_profiles',
  'bookings',
  'payments',
  'bundles',
  'bundle_components',
  'bundle_discounts',
];

describe('V2 schema', () => {
  const tables = parseCreateTables(V2_DDL);

  it('creates every V2 entity once, idempotently, in foreign-key order', () => {
    expect(tables.map((t) => t.name)).toEqual(ENTITIES);
    expect(V2_DDL.match(/CREATE TABLE/g)).toHaveLength(ENTITIES.length);
    tables.forEach((t, i) => {
      for (const ref of t.references) expect(ENTITIES.indexOf(ref as V2Entity)).toBeLessThan(i);
    });
  });

  it('has the DDL columns in the zod schemas and the DDL primary keys in V2_KEYS', () => {
    expect(Object.keys(V2Schemas).sort()).toEqual([...ENTITIES].sort());
    for (const t of tables) {
      const entity = t.name as V2Entity;
      expect(Object.keys(V2Schemas[entity].shape)).toEqual(t.columns);
      expect(V2_KEYS[entity]).toEqual(t.primaryKey);
    }
  });

  const validBooking: JsonRow = {
    id: '00000000-0000-0000-0000-000000000001',
    reference: 'BK-1',
    user_id: 'bd52a0a5-724b-57de-8cf8-1044f100e7a0',
    status: 'PAID',
    amount: '12.50',
    contact: { email: 'ada@example.com' },
    booked_at: '2024-01-02T03:04:05.123456Z',
    updated_at: '2024-01-02T03:04:05Z',
  };

  it('accepts any 128-bit legacy uuid but rejects what the database would not store the same', () => {
    expect(V2Schemas.bookings.safeParse(validBooking).success).toBe(true);
    for (const [column, value] of [
      ['id', 'not-a-uuid'],
      ['user_id', '00000000-0000-0000-0000-000000000001'], // derived ids are RFC uuids
      ['amount', '12.505'],
      ['amount', '12345678901.00'],
      ['amount', '-1.00'],
      ['amount', 12.5],
      ['status', 'LOST'],
      ['booked_at', '2024-01-02T03:04:05.1234567Z'],
      ['booked_at', '2024-01-02 03:04:05+00'],
      ['booked_at', 'infinity'],
      ['contact', ['a']],
    ] as const) {
      expect(
        V2Schemas.bookings.safeParse({ ...validBooking, [column]: value }).success,
        `${column}=${value}`,
      ).toBe(false);
    }
    expect(V2Schemas.bookings.safeParse({ ...validBooking, extra: 1 }).success).toBe(false);
  });

  it('checks the columns the DDL constrains', () => {
    const component = {
      bundle_id: 'bd52a0a5-724b-57de-8cf8-1044f100e7a0',
      position: 0,
      shopify_product_id: 'p',
      shopify_variant_id: null,
      quantity: 1,
    };
    expect(V2Schemas.bundle_components.safeParse(component).success).toBe(true);
    expect(V2Schemas.bundle_components.safeParse({ ...component, quantity: 0 }).success).toBe(false);
    expect(V2Schemas.bundle_components.safeParse({ ...component, quantity: 2 ** 31 }).success).toBe(false);
    expect(V2Schemas.bundle_components.safeParse({ ...component, position: 1.5 }).success).toBe(false);
    const profile = {
      customer_id: 'c1',
      email: 'ada@example.com',
      first_name: null,
      last_name: null,
      company_name: null,
      plan: null,
      status: null,
      created_at: '2024-01-02T03:04:05+02:00',
    };
    expect(V2Schemas.customer_profiles.safeParse(profile).success).toBe(true);
    expect(V2Schemas.customer_profiles.safeParse({ ...profile, email: 'Ada@example.com' }).success).toBe(
      false,
    );
    expect(V2Schemas.customer_profiles.safeParse({ ...profile, customer_id: '' }).success).toBe(false);
  });
});
