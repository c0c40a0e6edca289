import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonRow, LegacyChange, V2Op } from '../../src/contracts/transform-api.js';
import { bookingsModule } from '../../transforms/bookings.js';
import { bundlesModule } from '../../transforms/bundles.js';
import { customerProfilesModule } from '../../transforms/customer-profiles.js';
import { moduleForTable, transformModules } from '../../transforms/index.js';
import { V2Schemas } from '../../transforms/v2-schema.js';
import {
  interleave,
  keyHistoriesArb,
  legacyAiBundleArb,
  legacyBookingArb,
  legacyKvArb,
  legacyManualBundleArb,
} from './arbitraries.js';
import { AI_FBT_BUNDLES, BOOKINGS, BUNDLE_DISCOUNT_ID, CUSTOMERS_KV, change, keyOf } from './fixtures.js';
import { V2Model } from './v2-model.js';

describe('transformModules', () => {
  it('routes every legacy table to its module', () => {
    expect(moduleForTable(BOOKINGS)).toBe(bookingsModule);
    expect(moduleForTable(CUSTOMERS_KV)).toBe(customerProfilesModule);
    expect(moduleForTable(BUNDLE_DISCOUNT_ID)).toBe(bundlesModule);
    expect(moduleForTable(AI_FBT_BUNDLES)).toBe(bundlesModule);
    expect(moduleForTable('public.orders')).toBeUndefined();
    expect(moduleForTable('bookings')).toBeUndefined();
  });

  it('has unique names and tables, a legacy schema per table, and V2 entities as topics', () => {
    const tables = transformModules.flatMap((m) => m.tables);
    expect(new Set(tables).size).toBe(tables.length);
    expect(new Set(transformModules.map((m) => m.name)).size).toBe(transformModules.length);
    for (const m of transformModules) {
      expect(Object.keys(m.legacySchemas).sort()).toEqual([...m.tables].sort());
      for (const t of m.tables) expect(Object.keys(V2Schemas)).toContain(m.topicFor(t));
    }
  });
});

/** A legacy row of any table, as a change event; keys are unique per table so the rows are independent. */
const independentChangesArb: fc.Arbitrary<LegacyChange[]> = fc
  .tuple(
    fc.uniqueArray(legacyBookingArb(), { selector: (r) => r.id, maxLength: 6 }),
    fc.uniqueArray(legacyKvArb(fc.nat({ max: 20 })), { selector: (r) => r.key, maxLength: 4 }),
    fc.uniqueArray(legacyManualBundleArb(), { selector: (r) => r.id, maxLength: 3 }),
    fc.uniqueArray(legacyAiBundleArb(), { selector: (r) => r.id, maxLength: 3 }),
  )
  .map(([bookings, kv, manual, ai]) => [
    ...bookings.map((r) => change(BOOKINGS, r)),
    ...kv.map((r) => change(CUSTOMERS_KV, r)),
    ...manual.map((r) => change(BUNDLE_DISCOUNT_ID, r)),
    ...ai.map((r) => change(AI_FBT_BUNDLES, r)),
  ]);

function opsOf(event: LegacyChange): V2Op[] {
  const result = moduleForTable(event.table)!.transform(event);
  return result.ok ? result.ops : [];
}

describe('independent keys', () => {
  it('any interleaving of their operations yields the same V2 state', () => {
    fc.assert(
      fc.property(
        independentChangesArb.chain((events) => {
          const lists = events.map(opsOf);
          const total = lists.reduce((n, l) => n + l.length, 0);
          return fc.tuple(fc.constant(lists), fc.array(fc.nat(), { minLength: total, maxLength: total }));
        }),
        ([lists, choices]) => {
          const sequential = new V2Model();
          for (const op of lists.flat()) sequential.applyOp(op);
          const interleaved = new V2Model();
          for (const op of interleave(lists, choices)) interleaved.applyOp(op);
          expect(interleaved.snapshot()).toEqual(sequential.snapshot());
        },
      ),
    );
  });

  /**
   * The stronger form the sink relies on: each key's history (creates, updates, invalid versions, deletes) applied
   * unit by unit in its own order, interleaved in any way with other keys, ends where the final rows alone lead.
   * Here the transforms' operations on the in-memory model (many runs, fast); the same histories through the real
   * source and sink: test/connectors/postgres-sink/ordering.test.ts.
   */
  it('any interleaving of their histories ends in the state of their final rows', () => {
    const sourceKey = (e: LegacyChange) => `${e.table}:${JSON.stringify(e.key)}`;
    fc.assert(
      fc.property(keyHistoriesArb, ([histories, choices, finals]) => {
        const interleaved = new V2Model();
        for (const event of interleave(histories, choices))
          interleaved.applyUnit(sourceKey(event), opsOf(event));
        const expected = new V2Model();
        for (const event of finals) expected.applyUnit(sourceKey(event), opsOf(event));
        expect(interleaved.snapshot()).toEqual(expected.snapshot());
      }),
      { numRuns: 200 },
    );
  });
});

it('keyOf fixture matches each table primary key', () => {
  const row: JsonRow = { id: 1, key: 'k' };
  expect(keyOf(CUSTOMERS_KV, row)).toEqual({ key: 'k' });
  expect(keyOf(BOOKINGS, row)).toEqual({ id: 1 });
});
