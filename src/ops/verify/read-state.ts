import type pg from 'pg';
import { type EventValue, loadTypes, RawJson, TypeCatalog } from '../../contracts/event-value.js';
import type { JsonRow, JsonValue, V2Entity } from '../../contracts/transform-api.js';
import { qualifiedName, quoteIdent } from '../../core/sql.js';
import type { LegacyRow, V2State } from './expected-v2.js';
import { keyOf } from './expected-v2.js';

const rawText = { getTypeParser: () => (v: string) => v };

function toJson(v: EventValue): JsonValue {
  if (v instanceof RawJson) return JSON.parse(v.text) as JsonValue;
  if (Array.isArray(v)) return v.map(toJson);
  return v;
}

/**
 * Legacy rows exactly as the source would publish them (same text settings, same value decoding), so a transform
 * sees the same input here as in the pipeline. `client` should be in a REPEATABLE READ transaction for a
 * consistent read, with TEXT_FORMAT_OPTIONS session settings.
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
        row[f.name] = v === null || v === undefined ? null : toJson(decoders[i]!(v));
      });
      const key: JsonRow = {};
      for (const k of t.primaryKey) key[k] = row[k]!;
      out.push({ table: `${t.schema}.${t.table}`, key, row });
    }
  }
  return out;
}

/** The V2 tables' rows, keyed like `expectedV2`; timestamps as text (the caller's pool uses textTypes). */
export async function readTargetState(
  client: pg.ClientBase,
  keys: Readonly<Record<V2Entity, readonly string[]>>,
): Promise<V2State> {
  const state: V2State = new Map();
  for (const entity of Object.keys(keys) as V2Entity[]) {
    const { rows } = await client.query<JsonRow>(`SELECT * FROM ${quoteIdent(entity)}`);
    state.set(entity, new Map(rows.map((r) => [keyOf(r, keys[entity]), r])));
  }
  return state;
}
