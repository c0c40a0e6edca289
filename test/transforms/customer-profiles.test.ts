import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonRow, LegacyChange } from '../../src/contracts/transform-api.js';
import { customerProfilesModule, splitName } from '../../transforms/customer-profiles.js';
import { legacyCustomerKvSchema } from '../../transforms/legacy-schema.js';
import { ReasonCodes } from '../../transforms/reason-codes.js';
import { legacyKvArb } from './arbitraries.js';
import {
  CUSTOMERS_KV,
  change,
  deletion,
  expectOps,
  expectRejected,
  expectValidOps,
  legacyProfile,
  ts,
} from './fixtures.js';

const transform = (row: JsonRow, op: 'c' | 'u' | 'r' = 'c') =>
  customerProfilesModule.transform(change(CUSTOMERS_KV, row, op));

describe('customer-profiles module', () => {
  it('declares its table, schema and topic', () => {
    expect(customerProfilesModule.name).toBe('customer-profiles');
    expect(customerProfilesModule.tables).toEqual([CUSTOMERS_KV]);
    expect(customerProfilesModule.legacySchemas[CUSTOMERS_KV]).toBe(legacyCustomerKvSchema);
    expect(customerProfilesModule.topicFor(CUSTOMERS_KV)).toBe('customer_profiles');
  });

  it("maps a 'customer_' row to [upsert customer_profiles, recompute users]", () => {
    expect(expectOps(transform(legacyProfile()))).toEqual([
      {
        kind: 'upsert',
        entity: 'customer_profiles',
        key: { customer_id: '42' },
        row: {
          customer_id: '42',
          email: 'ada@example.com',
          first_name: 'Ada',
          last_name: 'Lovelace',
          company_name: 'Analytical Engines Ltd',
          plan: 'pro',
          status: 'active',
          created_at: '2023-12-01T09:00:00.000000Z',
        },
      },
      { kind: 'recompute-derived', entity: 'users', keys: ['ada@example.com'] },
    ]);
  });

  it("takes created_at from the row's updated_at when the profile has none", () => {
    for (const createdAt of [null, undefined]) {
      const row = legacyProfile({ value: { createdAt: createdAt ?? null } });
      if (createdAt === undefined) delete (row.value as JsonRow).createdAt;
      const ops = expectOps(transform(row));
      expect(ops[0]!.kind === 'upsert' && ops[0]!.row.created_at).toBe(ts(20));
    }
  });

  it('accepts createdAt with an offset or without fractional digits, as written', () => {
    const ops = expectOps(transform(legacyProfile({ value: { createdAt: '2023-12-01T10:00:00+01:00' } })));
    expect(ops[0]!.kind === 'upsert' && ops[0]!.row.created_at).toBe('2023-12-01T10:00:00+01:00');
  });

  it('leaves missing optional fields null and keeps a numeric customerId as text', () => {
    const ops = expectOps(
      transform({ key: 'customer_7', value: { customerId: 7, email: 'x@y.io' }, updated_at: ts(1) }),
    );
    expect(ops[0]!.kind === 'upsert' && ops[0]!.row).toEqual({
      customer_id: '7',
      email: 'x@y.io',
      first_name: null,
      last_name: null,
      company_name: null,
      plan: null,
      status: null,
      created_at: ts(1),
    });
  });

  it("skips keys that are not 'customer_' without validating them", () => {
    for (const row of [
      { key: 'email_to_customer_5f2b', value: '42', updated_at: ts(1) },
      { key: 'email_to_customer_5f2b', value: { anything: true }, updated_at: 'not a timestamp' },
      { key: 'session_1', value: null, updated_at: ts(1) },
    ]) {
      expect(transform(row)).toEqual({ ok: true, ops: [] });
    }
  });

  it('maps a delete to no ops', () => {
    expect(customerProfilesModule.transform(deletion(CUSTOMERS_KV, legacyProfile()))).toEqual({
      ok: true,
      ops: [],
    });
  });

  describe('rejects invalid profiles with a reason code', () => {
    it.each([
      ['missing', undefined],
      ['null', null],
      ['invalid', 'ada at example.com'],
      ['not a string', 5],
    ])('%s email → PROFILE_INVALID_EMAIL', (_, email) => {
      const row = legacyProfile({ value: { email: email ?? null } });
      if (email === undefined) delete (row.value as JsonRow).email;
      expectRejected(transform(row), ReasonCodes.PROFILE_INVALID_EMAIL);
    });

    it.each([
      ['missing', undefined],
      ['null', null],
      ['empty', ''],
      ['not a string or integer', { id: 1 }],
      ['a fraction', 1.5],
    ])('%s customerId → PROFILE_MISSING_CUSTOMER_ID', (_, customerId) => {
      const row = legacyProfile({ value: { customerId: (customerId ?? null) as JsonRow[string] } });
      if (customerId === undefined) delete (row.value as JsonRow).customerId;
      expectRejected(transform(row), ReasonCodes.PROFILE_MISSING_CUSTOMER_ID);
    });

    it.each([
      ['a value that is not an object', { key: 'customer_1', value: 'x', updated_at: ts(1) }],
      ['a name that is not a string', legacyProfile({ value: { name: ['Ada'] } })],
      ['an invalid createdAt', legacyProfile({ value: { createdAt: 'yesterday' } })],
      ['an invalid updated_at', legacyProfile({ updated_at: 'infinity' })],
    ])('%s → LEGACY_ROW_INVALID', (_, row) => {
      expectRejected(transform(row), ReasonCodes.LEGACY_ROW_INVALID);
    });

    it('rejects truncates and events without a row', () => {
      const truncate: LegacyChange = { op: 't', table: CUSTOMERS_KV, key: {}, before: null, after: null };
      expectRejected(customerProfilesModule.transform(truncate), ReasonCodes.TRUNCATE_UNSUPPORTED);
      const noAfter: LegacyChange = {
        op: 'c',
        table: CUSTOMERS_KV,
        key: { key: 'customer_1' },
        before: null,
        after: null,
      };
      expectRejected(customerProfilesModule.transform(noAfter), ReasonCodes.MISSING_ROW);
    });
  });

  it('same input → same output, valid V2 rows', () => {
    fc.assert(
      fc.property(legacyKvArb(), (row) => {
        const first = transform(row);
        expect(transform(structuredClone(row))).toEqual(first);
        expect(first.ok).toBe(true);
        if (first.ok) expectValidOps(first.ops);
      }),
    );
  });
});

describe('splitName', () => {
  it.each([
    ['Ada Lovelace', ['Ada', 'Lovelace']],
    ['Grace Brewster Hopper', ['Grace', 'Brewster Hopper']],
    ['Grace   Brewster  Hopper', ['Grace', 'Brewster  Hopper']],
    ['Ada\tLovelace', ['Ada', 'Lovelace']],
    ['Ada\nLovelace', ['Ada', 'Lovelace']],
    ['  Ada Lovelace  ', ['Ada', 'Lovelace']],
    ['Cher', ['Cher', null]],
    ['  Cher  ', ['Cher', null]],
    ['', [null, null]],
    ['   ', [null, null]],
    [null, [null, null]],
    [undefined, [null, null]],
  ])('%j → %j', (name, parts) => {
    expect(splitName(name)).toEqual(parts);
  });
});
