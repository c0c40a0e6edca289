import type pg from 'pg';
import { stringifyJsonExactly } from '../../src/contracts/exact-json.js';
import type { JsonRow, JsonValue, V2Entity, V2Op } from '../../src/contracts/transform-api.js';
import type { V2Model } from '../../src/contracts/v2-model.js';
import type { V2Unit } from '../../src/contracts/v2-unit.js';
import { parseLsn } from '../../src/core/lsn.js';
import { quoteIdent } from '../../src/core/sql.js';
import { ensurePlaceholders, placeholderStatement, queueDerived, settleDerived } from './derived-rows.js';
import {
  goneOutputs,
  isStale,
  type Lineage,
  lineageKey,
  type Position,
  PRIOR_LINEAGE,
  positionOf,
} from './lineage.js';

/** Column types of the V2 tables, read once from the target: jsonb values are bound as JSON text. */
export type ColumnTypes = Map<string, Map<string, string>>;

export async function readColumnTypes(client: pg.ClientBase, schema = 'public'): Promise<ColumnTypes> {
  const { rows } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
    'SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1',
    [schema],
  );
  const types: ColumnTypes = new Map();
  for (const r of rows) {
    let t = types.get(r.table_name);
    if (!t) {
      t = new Map();
      types.set(r.table_name, t);
    }
    t.set(r.column_name, r.data_type);
  }
  return types;
}

export function emailsOf(ops: readonly V2Op[]): string[] {
  const out: string[] = [];
  for (const op of ops) if (op.kind === 'recompute-derived') out.push(...op.keys);
  return out;
}

function outputsOf(ops: readonly V2Op[]): [V2Entity, JsonRow][] {
  const out: [V2Entity, JsonRow][] = [];
  for (const op of ops) if (op.kind === 'upsert') out.push([op.entity, op.key]);
  return out;
}

/**
 * Applies V2 units inside the caller's transaction. Per unit: skip it when the legacy row's lineage already has a
 * newer position; otherwise delete what the row produced before and no longer produces, apply its operations, and
 * record the new lineage. Users touched (now or before) are recomputed once, at the end, under their locks.
 */
export class UnitApplier {
  private readonly upsertSql = new Map<string, string>();

  constructor(
    readonly columnTypes: ColumnTypes,
    readonly model: V2Model,
  ) {}

  /**
   * The lineage of these legacy rows (units, or changes whose unit is not built yet), locked in key order: what
   * `apply` needs.
   */
  async prepare(
    client: pg.ClientBase,
    units: readonly { source: { table: string; key: JsonRow }; truncate?: boolean }[],
  ): Promise<Map<string, Lineage>> {
    const tables: string[] = [];
    const keys: string[] = [];
    for (const u of units) {
      if (u.truncate) continue;
      tables.push(u.source.table);
      keys.push(JSON.stringify(u.source.key));
    }
    const lineage = new Map<string, Lineage>();
    if (tables.length > 0) {
      const { rows } = await client.query<{
        source_table: string;
        source_key: string;
        commit_lsn: string;
        seq: number;
        outputs: [V2Entity, JsonRow][];
        emails: string[];
      }>(
        `SELECT l.source_table, l.source_key, l.commit_lsn::text, l.seq, l.outputs, l.emails
           FROM replicator.lineage l
           JOIN unnest($1::text[], $2::text[]) AS k(t, key) ON l.source_table = k.t AND l.source_key = k.key
          ORDER BY l.source_table, l.source_key
            FOR UPDATE OF l`,
        [tables, keys],
      );
      for (const r of rows) {
        lineage.set(lineageKey(r.source_table, r.source_key), {
          commitLsn: parseLsn(r.commit_lsn),
          seq: r.seq,
          outputs: r.outputs,
          emails: r.emails,
        });
      }
    }
    return lineage;
  }

  /**
   * Applies one unit; returns the emails whose users must be recomputed (empty when the unit was stale).
   * Throws the database's error for a row the target rejects (the caller isolates it with a savepoint).
   */
  async apply(client: pg.ClientBase, unit: V2Unit, lineage: Map<string, Lineage>): Promise<string[]> {
    const position = positionOf(unit);
    if (unit.truncate) return this.truncate(client, unit, position);
    const lk = lineage.get(lineageKey(unit.source.table, unit.source.key));
    if (lk && isStale(position, lk, unit.source.replay)) return [];

    const outputs = outputsOf(unit.ops);
    for (const [entity, key] of this.childrenFirst(goneOutputs(lk, outputs))) {
      await this.deleteRow(client, entity, key);
    }
    const emails = emailsOf(unit.ops);
    // Parents first: a booking may arrive before its user exists (ids are deterministic; recompute fills it).
    await ensurePlaceholders(
      client,
      this.model.derived,
      emails,
      unit.source.commitTs ?? new Date().toISOString(),
    );
    for (const op of unit.ops) await this.applyOp(client, op);

    const next: Lineage = { ...position, outputs, emails };
    await client.query(
      `INSERT INTO replicator.lineage (source_table, source_key, commit_lsn, seq, outputs, emails, applied_at)
       VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())
       ON CONFLICT (source_table, source_key) DO UPDATE SET commit_lsn = EXCLUDED.commit_lsn, seq = EXCLUDED.seq,
         outputs = EXCLUDED.outputs, emails = EXCLUDED.emails, applied_at = clock_timestamp(), ${PRIOR_LINEAGE}`,
      [
        unit.source.table,
        JSON.stringify(unit.source.key),
        unit.source.commitLsn,
        unit.source.seq,
        JSON.stringify(outputs),
        emails,
      ],
    );
    lineage.set(lineageKey(unit.source.table, unit.source.key), next);
    return [...new Set([...emails, ...(lk?.emails ?? [])])];
  }

  /**
   * Before a batch's transaction, in one statement of its own (its own transaction): the placeholder users its units
   * reference, committed, and their keys queued for the recompute (which removes a placeholder nothing ends up
   * referencing). Two batches creating the same new user then wait on each other for one short statement, not for a
   * whole batch.
   */
  async reserve(client: pg.ClientBase, emails: readonly string[], createdAt: string): Promise<string[]> {
    const sorted = [...new Set(emails)].sort();
    if (sorted.length === 0) return [];
    return queueDerived(client, sorted, placeholderStatement(this.model.derived, sorted, createdAt));
  }

  /**
   * Queues the users of these emails for their recompute after the commit (see derived-rows.ts), in the statement
   * that runs `alongside` (the partition's offset).
   */
  async queueRecompute(
    client: pg.ClientBase,
    emails: readonly string[],
    alongside?: { sql: string; values: readonly unknown[] },
  ): Promise<string[]> {
    return queueDerived(client, emails, alongside);
  }

  /** Recomputes queued users in a transaction of their own; `also` runs in it before COMMIT. */
  async settle(
    client: pg.ClientBase,
    emails: readonly string[],
    ids: readonly string[],
    also?: () => Promise<void>,
  ): Promise<void> {
    await settleDerived(client, this.model.derived, emails, ids, also);
  }

  /** Every row of the truncated legacy table is now absent: remove what each produced before the truncate. */
  private async truncate(client: pg.ClientBase, unit: V2Unit, position: Position): Promise<string[]> {
    const { rows } = await client.query<{
      source_key: string;
      outputs: [V2Entity, JsonRow][];
      emails: string[];
    }>(
      `SELECT source_key, outputs, emails FROM replicator.lineage
        WHERE source_table = $1 AND (commit_lsn, seq) < ($2::pg_lsn, $3) ORDER BY source_key FOR UPDATE`,
      [unit.source.table, unit.source.commitLsn, position.seq],
    );
    const emails = new Set<string>();
    for (const r of rows) {
      for (const [entity, key] of this.childrenFirst(r.outputs)) await this.deleteRow(client, entity, key);
      for (const e of r.emails) emails.add(e);
    }
    await client.query(
      `UPDATE replicator.lineage SET commit_lsn = $2, seq = $3, outputs = '[]', emails = '{}', applied_at = now(),
         prior_outputs = CASE WHEN outputs = '[]' THEN prior_outputs ELSE outputs END,
         prior_emails = CASE WHEN emails = '{}' THEN prior_emails ELSE emails END
        WHERE source_table = $1 AND (commit_lsn, seq) < ($2::pg_lsn, $3)`,
      [unit.source.table, unit.source.commitLsn, position.seq],
    );
    // The rows' TOAST images go with them (toast-images.ts); images newer than the truncate belong to new rows.
    await client.query(
      'DELETE FROM replicator.toast_images WHERE source_table = $1 AND (commit_lsn, seq) < ($2::pg_lsn, $3)',
      [unit.source.table, unit.source.commitLsn, position.seq],
    );
    return [...emails];
  }

  /** V2 rows in the model's delete order (children before parents). */
  private childrenFirst(rows: readonly [V2Entity, JsonRow][]): [V2Entity, JsonRow][] {
    const order = this.model.deleteOrder;
    return [...rows].sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
  }

  private async applyOp(client: pg.ClientBase, op: V2Op): Promise<void> {
    switch (op.kind) {
      case 'upsert':
        await this.upsert(client, op.entity, Object.keys(op.key), op.row);
        return;
      case 'delete':
        await this.deleteRow(client, op.entity, op.key);
        return;
      case 'replace-children': {
        for (const row of op.rows) await this.upsert(client, op.entity, op.childKey, row);
        const parentCols = Object.keys(op.parentKey);
        const own = op.childKey.filter((c) => !parentCols.includes(c));
        const params: unknown[] = parentCols.map((c) => this.bind(op.entity, c, op.parentKey[c]!));
        const where = parentCols.map((c, i) => `${quoteIdent(c)} = $${i + 1}`);
        if (op.rows.length > 0 && own.length > 0) {
          const keep = op.rows.map(
            (r) => `(${own.map((c) => `$${params.push(this.bind(op.entity, c, r[c]!))}`).join(', ')})`,
          );
          where.push(`(${own.map(quoteIdent).join(', ')}) NOT IN (${keep.join(', ')})`);
        }
        await client.query(`DELETE FROM ${quoteIdent(op.entity)} WHERE ${where.join(' AND ')}`, params);
        return;
      }
      case 'recompute-derived':
        return; // done once per email at the end of the batch
    }
  }

  private async upsert(client: pg.ClientBase, entity: string, keyColumns: readonly string[], row: JsonRow) {
    const columns = Object.keys(row);
    const cacheKey = `${entity}\u0000${keyColumns.join(',')}\u0000${columns.join(',')}`;
    let sql = this.upsertSql.get(cacheKey);
    if (!sql) {
      const nonKey = columns.filter((c) => !keyColumns.includes(c));
      sql =
        `INSERT INTO ${quoteIdent(entity)} (${columns.map(quoteIdent).join(', ')}) ` +
        `VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) ` +
        `ON CONFLICT (${keyColumns.map(quoteIdent).join(', ')}) DO ` +
        (nonKey.length > 0
          ? `UPDATE SET ${nonKey.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}`
          : 'NOTHING');
      this.upsertSql.set(cacheKey, sql);
    }
    await client.query(
      sql,
      columns.map((c) => this.bind(entity, c, row[c]!)),
    );
  }

  private async deleteRow(client: pg.ClientBase, entity: string, key: JsonRow) {
    const cols = Object.keys(key);
    await client.query(
      `DELETE FROM ${quoteIdent(entity)} WHERE ${cols.map((c, i) => `${quoteIdent(c)} = $${i + 1}`).join(' AND ')}`,
      cols.map((c) => this.bind(entity, c, key[c]!)),
    );
  }

  /** jsonb/json values go as JSON text (pg would turn a JS array into a PostgreSQL array literal). */
  private bind(entity: string, column: string, value: JsonValue): unknown {
    if (value === null) return null;
    const type = this.columnTypes.get(entity)?.get(column);
    if (type === 'jsonb' || type === 'json') return stringifyJsonExactly(value);
    return value;
  }
}
