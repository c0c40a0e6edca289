import type pg from 'pg';
import { stringifyJsonExactly } from '../../src/contracts/exact-json.js';
import type { JsonRow, V2Entity } from '../../src/contracts/transform-api.js';
import type { V2Model } from '../../src/contracts/v2-model.js';
import type { V2Unit } from '../../src/contracts/v2-unit.js';
import { quoteIdent } from '../../src/core/sql.js';
import { ensurePlaceholders, placeholderStatement } from './derived-rows.js';
import { goneOutputs, isStale, type Lineage, lineageKey, PRIOR_LINEAGE, positionOf } from './lineage.js';
import type { ColumnTypes } from './unit-applier.js';

/** SQL type of a V2 column for jsonb_to_recordset (information_schema's data_type names are valid SQL types). */
function sqlType(types: ColumnTypes, entity: string, column: string): string {
  const t = types.get(entity)?.get(column);
  if (!t || t === 'USER-DEFINED' || t === 'ARRAY') return 'text';
  return t;
}

const recordDef = (types: ColumnTypes, entity: string, columns: readonly string[]) =>
  columns.map((c) => `${quoteIdent(c)} ${sqlType(types, entity, c)}`).join(', ');

/**
 * The sink's fast path: a whole batch of units in a handful of set-based statements. Within a batch only each
 * legacy row's newest unit matters (V2 is a function of the current legacy rows), so earlier ones are dropped;
 * the rest is a diff against each row's lineage (deletes of what it no longer produces, children first), user
 * placeholders, upserts per table (parents first), stale children, and the new lineage. Returns the emails whose
 * users must be recomputed. Any row error aborts the statement — the caller then isolates rows one by one.
 */
export async function applyBatch(
  client: pg.ClientBase,
  model: V2Model,
  types: ColumnTypes,
  units: readonly V2Unit[],
  lineage: Map<string, Lineage>,
): Promise<{ emails: Set<string>; applied: number }> {
  const newest = new Map<string, V2Unit>();
  for (const u of units) newest.set(lineageKey(u.source.table, u.source.key), u);
  const deletes = new Map<V2Entity, Map<string, JsonRow>>();
  const upserts = new Map<
    string,
    { entity: V2Entity; keyColumns: string[]; columns: string[]; rows: Map<string, JsonRow> }
  >();
  const childSets = new Map<
    string,
    {
      entity: V2Entity;
      parentCols: string[];
      childCols: string[];
      parents: Map<string, JsonRow>;
      keep: JsonRow[];
    }
  >();
  const lineageRows: Record<string, unknown>[] = [];
  const emails = new Set<string>();
  const placeholders = new Set<string>();
  let applied = 0;
  let newestTs = '1970-01-01T00:00:00Z';

  for (const [lk, unit] of newest) {
    const before = lineage.get(lk);
    const position = positionOf(unit);
    if (before && isStale(position, before, unit.source.replay)) continue;
    applied++;
    if (unit.source.commitTs && unit.source.commitTs > newestTs) newestTs = unit.source.commitTs;
    const outputs: [V2Entity, JsonRow][] = [];
    const unitEmails: string[] = [];
    for (const op of unit.ops) {
      if (op.kind === 'upsert') {
        outputs.push([op.entity, op.key]);
        const keyColumns = Object.keys(op.key);
        const columns = Object.keys(op.row);
        const sig = `${op.entity}\u0000${columns.join(',')}`;
        let group = upserts.get(sig);
        if (!group) {
          group = { entity: op.entity, keyColumns, columns, rows: new Map() };
          upserts.set(sig, group);
        }
        group.rows.set(JSON.stringify(op.key), op.row);
      } else if (op.kind === 'replace-children') {
        const parentCols = Object.keys(op.parentKey);
        const sig = `${op.entity}\u0000${parentCols.join(',')}\u0000${op.childKey.join(',')}`;
        let set = childSets.get(sig);
        if (!set) {
          set = { entity: op.entity, parentCols, childCols: op.childKey, parents: new Map(), keep: [] };
          childSets.set(sig, set);
        }
        set.parents.set(JSON.stringify(op.parentKey), op.parentKey);
        for (const row of op.rows) {
          const key = Object.fromEntries(op.childKey.map((c) => [c, row[c] ?? null]));
          set.keep.push(key);
          const columns = Object.keys(row);
          const usig = `${op.entity}\u0000${columns.join(',')}`;
          let group = upserts.get(usig);
          if (!group) {
            group = { entity: op.entity, keyColumns: op.childKey, columns, rows: new Map() };
            upserts.set(usig, group);
          }
          group.rows.set(JSON.stringify(key), row);
        }
      } else if (op.kind === 'delete') {
        let m = deletes.get(op.entity);
        if (!m) {
          m = new Map();
          deletes.set(op.entity, m);
        }
        m.set(JSON.stringify(op.key), op.key);
      } else {
        unitEmails.push(...op.keys);
      }
    }
    for (const [entity, key] of goneOutputs(before, outputs)) {
      let m = deletes.get(entity);
      if (!m) {
        m = new Map();
        deletes.set(entity, m);
      }
      m.set(JSON.stringify(key), key);
    }
    for (const e of unitEmails) {
      emails.add(e);
      placeholders.add(e);
    }
    for (const e of before?.emails ?? []) emails.add(e);
    lineageRows.push({
      source_table: unit.source.table,
      source_key: JSON.stringify(unit.source.key),
      commit_lsn: unit.source.commitLsn,
      seq: unit.source.seq,
      outputs,
      emails: unitEmails,
    });
    lineage.set(lk, { ...position, outputs, emails: unitEmails });
  }
  if (applied === 0) return { emails, applied };

  for (const entity of model.deleteOrder) {
    const keys = deletes.get(entity);
    if (!keys || keys.size === 0) continue;
    const cols = Object.keys(keys.values().next().value as JsonRow);
    await client.query(
      `DELETE FROM ${quoteIdent(entity)} t USING jsonb_to_recordset($1::jsonb) AS d(${recordDef(types, entity, cols)})
        WHERE ${cols.map((c) => `t.${quoteIdent(c)} = d.${quoteIdent(c)}`).join(' AND ')}`,
      [stringifyJsonExactly([...keys.values()])],
    );
  }
  const groups = [...upserts.values()].sort(
    (a, b) => model.upsertOrder.indexOf(a.entity) - model.upsertOrder.indexOf(b.entity),
  );
  const upsertSql = (g: (typeof groups)[number], p: number) => {
    const nonKey = g.columns.filter((c) => !g.keyColumns.includes(c));
    const cols = g.columns.map(quoteIdent).join(', ');
    return `INSERT INTO ${quoteIdent(g.entity)} (${cols})
       SELECT ${cols} FROM jsonb_to_recordset($${p}::jsonb) AS x(${recordDef(types, g.entity, g.columns)})
       ON CONFLICT (${g.keyColumns.map(quoteIdent).join(', ')}) DO ${
         nonKey.length > 0
           ? `UPDATE SET ${nonKey.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}`
           : 'NOTHING'
       }`;
  };
  const lineageSql = (p: number) =>
    `INSERT INTO replicator.lineage (source_table, source_key, commit_lsn, seq, outputs, emails, applied_at)
     SELECT source_table, source_key, commit_lsn, seq, outputs, ARRAY(SELECT jsonb_array_elements_text(emails)), clock_timestamp()
       FROM jsonb_to_recordset($${p}::jsonb) AS x(source_table text, source_key text, commit_lsn pg_lsn, seq int, outputs jsonb, emails jsonb)
     ON CONFLICT (source_table, source_key) DO UPDATE SET commit_lsn = EXCLUDED.commit_lsn, seq = EXCLUDED.seq,
       outputs = EXCLUDED.outputs, emails = EXCLUDED.emails, applied_at = EXCLUDED.applied_at, ${PRIOR_LINEAGE}`;
  const rowsOf = (g: (typeof groups)[number]) => stringifyJsonExactly([...g.rows.values()]);
  const sortedPlaceholders = [...placeholders].sort();
  const { derived } = model;
  if (new Set(groups.map((g) => g.entity)).size === groups.length) {
    // The user placeholders, the upserts (one per table) and the new lineage in one statement: one round trip,
    // where each costs the batch a wake-up of both processes (milliseconds on a busy box). Foreign keys are
    // checked at the statement's end, so parents need not come first within it; no row is written twice.
    const parts: string[] = [];
    const values: unknown[] = [];
    if (sortedPlaceholders.length > 0) {
      // The model's statement numbers its parameters from $1: it comes first.
      const placing = placeholderStatement(derived, sortedPlaceholders, newestTs);
      parts.push(placing.sql);
      values.push(...placing.values);
    }
    for (const g of groups) {
      values.push(rowsOf(g));
      parts.push(upsertSql(g, values.length));
    }
    values.push(stringifyJsonExactly(lineageRows));
    parts.push(lineageSql(values.length));
    await client.query(`WITH ${parts.map((sql, i) => `s${i} AS (${sql})`).join(',\n')}\nSELECT 1`, values);
  } else {
    // Two column sets of one table (a row may be in both): one statement each, parents first (a booking may
    // arrive before its user exists; ids are deterministic and the recompute fills it).
    await ensurePlaceholders(client, derived, sortedPlaceholders, newestTs);
    for (const g of groups) await client.query(upsertSql(g, 1), [rowsOf(g)]);
    await client.query(lineageSql(1), [stringifyJsonExactly(lineageRows)]);
  }
  // Children a parent no longer has: after their upserts, which keep every row they write.
  for (const set of childSets.values()) {
    const own = set.childCols.filter((c) => !set.parentCols.includes(c));
    await client.query(
      `DELETE FROM ${quoteIdent(set.entity)} t
        USING jsonb_to_recordset($1::jsonb) AS p(${recordDef(types, set.entity, set.parentCols)})
        WHERE ${set.parentCols.map((c) => `t.${quoteIdent(c)} = p.${quoteIdent(c)}`).join(' AND ')}
          AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($2::jsonb) AS k(${recordDef(types, set.entity, set.childCols)})
                           WHERE ${set.childCols.map((c) => `t.${quoteIdent(c)} = k.${quoteIdent(c)}`).join(' AND ')})`,
      [
        stringifyJsonExactly([...set.parents.values()]),
        stringifyJsonExactly(
          set.keep.map((k) => Object.fromEntries([...set.parentCols, ...own].map((c) => [c, k[c] ?? null]))),
        ),
      ],
    );
  }
  return { emails, applied };
}
