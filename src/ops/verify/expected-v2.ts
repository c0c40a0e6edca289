import { deriveUsers } from '../../../transforms/users.js';
import type { Booking, CustomerProfile, Payment } from '../../../transforms/v2-schema.js';
import type { JsonRow, LegacyChange, TransformModule, V2Entity } from '../../contracts/transform-api.js';

/** V2 rows by entity, each keyed by the JSON of its primary key. */
export type V2State = Map<V2Entity, Map<string, JsonRow>>;

export interface LegacyRow {
  table: string;
  key: JsonRow;
  row: JsonRow;
}

export const keyOf = (row: JsonRow, keyColumns: readonly string[]) =>
  JSON.stringify(keyColumns.map((c) => row[c] ?? null));

/**
 * What a perfect batch migration of these legacy rows produces: every row through its transform module (as an
 * insert), then users derived from the result. The same modules the pipeline runs — so `verify` and the
 * end-to-end tests compare the target against the transforms' meaning, not a second implementation.
 */
export function expectedV2(
  rows: Iterable<LegacyRow>,
  modules: readonly TransformModule[],
  keys: Readonly<Record<V2Entity, readonly string[]>>,
): { state: V2State; rejected: { row: LegacyRow; reason: string }[] } {
  const byTable = new Map<string, TransformModule>();
  for (const m of modules) for (const t of m.tables) byTable.set(t, m);
  const state: V2State = new Map();
  const put = (entity: V2Entity, row: JsonRow) => {
    let m = state.get(entity);
    if (!m) {
      m = new Map();
      state.set(entity, m);
    }
    m.set(keyOf(row, keys[entity]), row);
  };
  const rejected: { row: LegacyRow; reason: string }[] = [];
  for (const r of rows) {
    const module = byTable.get(r.table);
    if (!module) continue;
    const change: LegacyChange = { op: 'r', table: r.table, key: r.key, before: null, after: r.row };
    const result = module.transform(change);
    if (!result.ok) {
      rejected.push({ row: r, reason: result.rejection.reason });
      continue;
    }
    for (const op of result.ops) {
      if (op.kind === 'upsert') put(op.entity, op.row);
      else if (op.kind === 'replace-children') for (const child of op.rows) put(op.entity, child);
    }
  }
  const users = deriveUsers({
    profiles: [...(state.get('customer_profiles')?.values() ?? [])] as unknown as CustomerProfile[],
    bookings: [...(state.get('bookings')?.values() ?? [])] as unknown as Booking[],
    payments: [...(state.get('payments')?.values() ?? [])] as unknown as Payment[],
  });
  for (const u of users) put('users', u as unknown as JsonRow);
  return { state, rejected };
}
