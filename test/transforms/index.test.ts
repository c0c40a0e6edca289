import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonRow, LegacyChange, V2Op } from '../../src/contracts/transform-api.js';
import { bookingsModule } from '../../transforms/bookings.js';
import { bundlesModule } from '../../transforms/bundles.js';
import { customerProfilesModule } from '../../transforms/customer-profiles.js';
import { moduleForTable, transformModules } from '../../transforms/index.js';
import { V2Schemas } from '../../transforms/v2-schema.js';
import {
  invalidLegacyBookingArb,
  legacyAiBundleArb,
  legacyBookingArb,
  legacyKvArb,
  legacyManualBundleArb,
} from './arbitraries.js';
import {
  AI_FBT_BUNDLES,
  BOOKINGS,
  BUNDLE_DISCOUNT_ID,
  CUSTOMERS_KV,
  change,
  deletion,
  keyOf,
} from './fixtures.js';
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

/** Merges lists keeping each list's order; `choices` pick which list goes next. */
function interleave<T>(lists: readonly (readonly T[])[], choices: readonly number[]): T[] {
  const queues = lists.map((l) => [...l]).filter((q) => q.length > 0);
  const out: T[] = [];
  for (let i = 0; queues.length > 0; i++) {
    const q = (choices[i] ?? 0) % queues.length;
    out.push(queues[q]!.shift()!);
    if (queues[q]!.length === 0) queues.splice(q, 1);
  }
  return out;
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
   */
  it('any interleaving of their histories ends in the state of their final rows', () => {
    const history = <T>(version: fc.Arbitrary<T>) => fc.array(version, { minLength: 1, maxLength: 3 });
    const historiesArb = fc
      .tuple(
        fc.uniqueArray(fc.uuid(), { maxLength: 5 }),
        fc.uniqueArray(fc.nat({ max: 20 }), { maxLength: 3 }),
        fc.uniqueArray(fc.nat({ max: 100 }), { maxLength: 3 }),
        fc.uniqueArray(fc.nat({ max: 100 }), { maxLength: 3 }),
      )
      .chain(([bookingIds, customerIds, manualIds, aiIds]) =>
        fc.tuple(
          ...bookingIds.map((id) =>
            history(
              fc.oneof(
                {
                  weight: 3,
                  arbitrary: legacyBookingArb(fc.constant(id)).map((r) => change(BOOKINGS, r, 'u')),
                },
                invalidLegacyBookingArb(fc.constant(id)).map((r) => change(BOOKINGS, r, 'u')),
                fc.constant(deletion(BOOKINGS, { id })),
              ),
            ),
          ),
          ...customerIds.map((n) =>
            history(
              fc.oneof(
                // The same key throughout: an index-shaped value under it is an invalid profile.
                {
                  weight: 3,
                  arbitrary: legacyKvArb(fc.constant(n)).map((r) =>
                    change(CUSTOMERS_KV, { ...r, key: `customer_${n}` }, 'u'),
                  ),
                },
                fc.constant(deletion(CUSTOMERS_KV, { key: `customer_${n}` })),
              ),
            ),
          ),
          ...manualIds.map((id) =>
            history(
              fc.oneof(
                {
                  weight: 3,
                  arbitrary: legacyManualBundleArb(fc.constant(id)).map((r) =>
                    change(BUNDLE_DISCOUNT_ID, r, 'u'),
                  ),
                },
                legacyManualBundleArb(fc.constant(id)).map((r) =>
                  change(BUNDLE_DISCOUNT_ID, { ...r, products: [{ productId: 'p', quantity: 0 }] }, 'u'),
                ),
                fc.constant(deletion(BUNDLE_DISCOUNT_ID, { id })),
              ),
            ),
          ),
          ...aiIds.map((id) =>
            history(
              fc.oneof(
                {
                  weight: 3,
                  arbitrary: legacyAiBundleArb(fc.constant(id)).map((r) => change(AI_FBT_BUNDLES, r, 'u')),
                },
                legacyAiBundleArb(fc.constant(id)).map((r) =>
                  change(AI_FBT_BUNDLES, { ...r, bundledProductIds: [null] }, 'u'),
                ),
                fc.constant(deletion(AI_FBT_BUNDLES, { id })),
              ),
            ),
          ),
        ),
      )
      .chain((histories) => {
        const total = histories.reduce((n, h) => n + h.length, 0);
        return fc.tuple(
          fc.constant(histories as LegacyChange[][]),
          fc.array(fc.nat(), { minLength: total, maxLength: total }),
          // The order the final rows are applied in for the expected state.
          fc.shuffledSubarray(
            histories.map((h) => h.at(-1)!),
            { minLength: histories.length },
          ),
        );
      });

    const sourceKey = (e: LegacyChange) => `${e.table}:${JSON.stringify(e.key)}`;
    fc.assert(
      fc.property(historiesArb, ([histories, choices, finals]) => {
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
