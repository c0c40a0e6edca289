import type pg from 'pg';
import { eventValueToJson, loadTypes, TypeCatalog } from '../../src/contracts/event-value.js';
import { parseJsonExactly } from '../../src/contracts/exact-json.js';
import type { JsonRow, LegacyChange, TransformModule, V2Entity } from '../../src/contracts/transform-api.js';
import { textTypes } from '../../src/core/pg-text-types.js';
import { qualifiedName, quoteIdent } from '../../src/core/sql.js';
import { canonical } from '../../src/ops/verify/canonical.js';
import { deriveUsers } from '../../transforms/users.js';
import type { Booking, CustomerProfile, Payment } from '../../transforms/v2-schema.js';

/**
 * The end-to-end tests' oracle: whole tables read into memory, every legacy row through the transform modules,
 * compared row by row with the whole target. Deliberately simple and independent of `runVerify` (the product's
 * verify engine, src/ops/verify), so the tests do not check the pipeline with the code they also test.
 */

/** V2 rows by entity, each keyed by the JSON of its primary key. */
export type V2State = Map<V2Entity, Map<string, JsonRow>>;

export interface LegacyRow {
  table: string;
  key: JsonRow;
  row: JsonRow;
}

export interface EntityDiff {
  entity: V2Entity;
  expected: number;
  actual: number;
  missing: string[];
  extra: string[];
  different: { key: string; columns: string[]; expected: JsonRow; actual: JsonRow }[];
}

const keyOf = (row: JsonRow, keyColumns: readonly string[]) =>
  JSON.stringify(keyColumns.map((c) => row[c] ?? null));

/**
 * What a perfect batch migration of these legacy rows produces: every row through its transform module (as an
 * insert), then users derived from the result.
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

const rawText = { getTypeParser: () => (v: string) => v };

/**
 * Legacy rows exactly as the source would publish them (same text settings, same value decoding), so a transform
 * sees the same input here as in the pipeline. `client` should have TEXT_FORMAT_OPTIONS session settings.
 */
export async function readLegacyRows(
  client: pg.ClientBase,
  tables: readonly { schema: string; table: string; primaryKey: readonly string[] }[],
): Promise<LegacyRow[]> {
  const catalog = new TypeCatalog();
  const out: LegacyRow[] = [];
  for (const t of tables) {
    const result = await client.query<string[]>({
      text: `SELECT * FROM ${qualifiedName(t.schema, t.table)}`,
      rowMode: 'array',
      types: rawText,
    });
    const oids = result.fields.map((f) => f.dataTypeID);
    const missing = catalog.missing(oids);
    if (missing.length > 0) for (const info of await loadTypes(client, missing)) catalog.add(info);
    const decoders = oids.map((oid) => catalog.decoder(oid));
    for (const values of result.rows) {
      const row: JsonRow = Object.create(null) as JsonRow;
      result.fields.forEach((f, i) => {
        const v = values[i];
        row[f.name] = v === null || v === undefined ? null : eventValueToJson(decoders[i]!(v));
      });
      const key: JsonRow = {};
      for (const k of t.primaryKey) key[k] = row[k]!;
      out.push({ table: `${t.schema}.${t.table}`, key, row });
    }
  }
  return out;
}

/** json and jsonb read as the apply stage parses events, so a number a double cannot hold compares exactly. */
const exactJsonb: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 114 || oid === 3802
      ? parseJsonExactly
      : textTypes.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/** The V2 tables' rows, keyed like `expectedV2`; timestamps as text, JSON numbers exact. */
export async function readTargetState(
  client: pg.ClientBase,
  keys: Readonly<Record<V2Entity, readonly string[]>>,
): Promise<V2State> {
  const state: V2State = new Map();
  for (const entity of Object.keys(keys) as V2Entity[]) {
    const { rows } = await client.query<JsonRow>({
      text: `SELECT * FROM ${quoteIdent(entity)}`,
      types: exactJsonb,
    });
    state.set(entity, new Map(rows.map((r) => [keyOf(r, keys[entity]), r])));
  }
  return state;
}

const same = (a: unknown, b: unknown) =>
  JSON.stringify(canonical(a as never)) === JSON.stringify(canonical(b as never));

/** Row-by-row comparison of two V2 states (canonical values: timestamps and key order do not matter). */
export function diffStates(expected: V2State, actual: V2State, entities: readonly V2Entity[]): EntityDiff[] {
  return entities.map((entity) => {
    const e = expected.get(entity) ?? new Map<string, JsonRow>();
    const a = actual.get(entity) ?? new Map<string, JsonRow>();
    const diff: EntityDiff = {
      entity,
      expected: e.size,
      actual: a.size,
      missing: [],
      extra: [],
      different: [],
    };
    for (const [key, row] of e) {
      const other = a.get(key);
      if (!other) {
        diff.missing.push(key);
        continue;
      }
      const columns = [...new Set([...Object.keys(row), ...Object.keys(other)])].filter(
        (c) => !same(row[c], other[c]),
      );
      if (columns.length > 0) diff.different.push({ key, columns, expected: row, actual: other });
    }
    for (const key of a.keys()) if (!e.has(key)) diff.extra.push(key);
    return diff;
  });
}

export const isClean = (diffs: readonly EntityDiff[]) =>
  diffs.every((d) => d.missing.length === 0 && d.extra.length === 0 && d.different.length === 0);
