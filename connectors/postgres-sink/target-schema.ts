import type pg from 'pg';
import { quoteIdent } from '../../src/core/sql.js';

/**
 * The sink's own bookkeeping in the target, in schema `replicator` (never in the V2 tables):
 * - sink_offsets: the next Kafka offset per (group, topic, partition), committed in the same transaction as the
 *   rows it covers — the source of truth for where a sink resumes.
 * - lineage: per legacy row, the position of the change last applied and what it produced (V2 rows, user emails),
 *   so a replayed or out-of-date change is skipped and what a row no longer produces is removed; also what it
 *   produced before its outputs (emails) last changed, and indexes by position and by email: the cutover's final
 *   verify compares the rows changed since the last full verify and their users (delta-verify.ts), a deleted
 *   row's included, in time proportional to the change.
 * - applied: the newest source commit time applied per group (lag), heartbeats included.
 * - cutovers: the cutover state machine, persisted so a crashed cutover resumes or rolls back.
 * - verify_runs / reverify_queue: verify's outcomes (cutover's go/no-go reads the last) and the keys to re-check.
 * - pending_derived: keys (emails) whose derived rows (users) an apply transaction changed, recomputed right after
 *   its commit in a short transaction of their own; what a crash leaves here is recomputed by the next session.
 * - toast_images: per legacy row, the last known values of its TOAST-able columns and the source position they are
 *   from (`toast-images.ts`), written in the apply transaction; an update that left such a value unchanged (not
 *   sent by pgoutput without REPLICA IDENTITY FULL) is completed from it. json, not jsonb: kept verbatim (jsonb
 *   rejects a \u0000 escape that a legacy json column may hold) and not re-parsed on every write.
 * - schema_drift: per (group, topic, partition), the change where the partition waits because its row no longer
 *   fits its module's legacy schema (`drift-holds.ts`); `status` shows each as a SCHEMA_DRIFT problem.
 */
export const REPLICATOR_SCHEMA: SchemaObjects = {
  tables: `
CREATE SCHEMA IF NOT EXISTS replicator;
CREATE TABLE IF NOT EXISTS replicator.schema_drift (
  group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL, legacy_table text NOT NULL,
  columns text[] NOT NULL, message text NOT NULL, held_offset bigint NOT NULL, since timestamptz NOT NULL,
  PRIMARY KEY (group_id, topic, partition));
CREATE TABLE IF NOT EXISTS replicator.sink_offsets (
  group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL, next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition));
CREATE TABLE IF NOT EXISTS replicator.lineage (
  source_table text NOT NULL, source_key text NOT NULL,
  commit_lsn pg_lsn NOT NULL, seq integer NOT NULL,
  outputs jsonb NOT NULL, emails text[] NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_table, source_key));
CREATE TABLE IF NOT EXISTS replicator.applied (
  group_id text PRIMARY KEY, commit_ts timestamptz, commit_lsn pg_lsn, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS replicator.cutovers (
  id text PRIMARY KEY, shop text, phase text NOT NULL, dry_run boolean NOT NULL DEFAULT false,
  started_at timestamptz NOT NULL DEFAULT now(), fence_committed_at timestamptz, fence_lsn pg_lsn,
  drained_at timestamptz, verified_at timestamptz, flip_committed_at timestamptz, finished_at timestamptz,
  rolled_back_at timestamptz, write_blocked_ms double precision, error text, details jsonb NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS replicator.verify_runs (
  id text PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,
  snapshot_lsn pg_lsn, clean boolean, summary jsonb NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS replicator.reverify_queue (
  run_id text NOT NULL, entity text NOT NULL, key text NOT NULL, PRIMARY KEY (run_id, entity, key));
CREATE TABLE IF NOT EXISTS replicator.pending_derived (
  id bigserial PRIMARY KEY, key text NOT NULL, queued_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS replicator.toast_images (
  source_table text NOT NULL, source_key text NOT NULL,
  commit_lsn pg_lsn NOT NULL, seq integer NOT NULL,
  columns json NOT NULL,
  PRIMARY KEY (source_table, source_key));
`,
  columns: [
    { table: 'replicator.lineage', column: 'prior_outputs', definition: "jsonb NOT NULL DEFAULT '[]'" },
    { table: 'replicator.lineage', column: 'prior_emails', definition: "text[] NOT NULL DEFAULT '{}'" },
    { table: 'replicator.cutovers', column: 'fence_mode', definition: "text NOT NULL DEFAULT 'reject'" },
    { table: 'replicator.cutovers', column: 'tail_pending', definition: 'boolean NOT NULL DEFAULT false' },
    { table: 'replicator.cutovers', column: 'tail_drained_at', definition: 'timestamptz' },
    { table: 'replicator.verify_runs', column: 'settled_lsn', definition: 'pg_lsn' },
  ],
  indexes: [
    {
      name: 'replicator.lineage_commit_lsn',
      create: 'CREATE INDEX IF NOT EXISTS lineage_commit_lsn ON replicator.lineage (commit_lsn)',
    },
    {
      name: 'replicator.lineage_emails',
      create: 'CREATE INDEX IF NOT EXISTS lineage_emails ON replicator.lineage USING gin (emails)',
    },
  ],
};

/**
 * The lookups (table, column) of existing tables that no index starts with: the derived rows' recompute would scan
 * those tables on every settle (V2Model's `lookups`).
 */
export async function unindexedLookups(
  client: pg.ClientBase,
  lookups: readonly { table: string; column: string }[],
): Promise<{ table: string; column: string }[]> {
  if (lookups.length === 0) return [];
  const { rows } = await client.query<{ table: string; column: string }>(
    `SELECT l.t AS table, l.c AS column FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS l(t, c, n)
      WHERE to_regclass(quote_ident(l.t)) IS NOT NULL
        AND NOT EXISTS (
          SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = to_regclass(quote_ident(l.t)) AND a.attname = l.c)
      ORDER BY l.n`,
    [lookups.map((l) => l.table), lookups.map((l) => l.column)],
  );
  return rows;
}

/** `replicator finalize`: the image store has no use once V2 belongs to the application. */
export async function dropToastImages(client: pg.ClientBase): Promise<void> {
  await client.query('DROP TABLE IF EXISTS replicator.toast_images');
}

export async function ensureReplicatorSchema(client: pg.ClientBase): Promise<void> {
  await ensureSchemaObjects(client, REPLICATOR_SCHEMA);
}

/** Bookkeeping tables, then what was added to them since they were first released. */
export interface SchemaObjects {
  /** CREATE SCHEMA and CREATE TABLE … IF NOT EXISTS: a check of the name, taking no lock on an existing table. */
  tables: string;
  /** Columns added since (table schema-qualified, definition as in ADD COLUMN). */
  columns: readonly { table: string; column: string; definition: string }[];
  /** Indexes by schema-qualified name, with their CREATE statement. */
  indexes: readonly { name: string; create: string }[];
}

/**
 * Creates what `objects` names and the target lacks, serialized with every other setup by an advisory lock
 * (CREATE … IF NOT EXISTS is not concurrency-safe). Columns and indexes are looked up first and only the missing
 * ones created: ALTER TABLE … ADD COLUMN IF NOT EXISTS and CREATE INDEX IF NOT EXISTS lock their table before they
 * find nothing to do, so every start would wait for any transaction on it (an apply, a long read, pg_dump) while
 * every later apply queued behind that lock. An upgrade that does add one still takes it, once.
 */
export async function ensureSchemaObjects(client: pg.ClientBase, objects: SchemaObjects): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('replicator.schema'))");
    await client.query(objects.tables);
    const columns = await client.query<{ i: string }>(
      `SELECT c.i::text FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(t, col, i)
        WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = c.t::regclass AND a.attname = c.col AND NOT a.attisdropped)
        ORDER BY c.i`,
      [objects.columns.map((c) => c.table), objects.columns.map((c) => c.column)],
    );
    for (const { i } of columns.rows) {
      const c = objects.columns[Number(i) - 1]!;
      await client.query(
        `ALTER TABLE ${c.table} ADD COLUMN IF NOT EXISTS ${quoteIdent(c.column)} ${c.definition}`,
      );
    }
    const indexes = await client.query<{ i: string }>(
      `SELECT n.i::text FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i)
        WHERE to_regclass(n.name) IS NULL ORDER BY n.i`,
      [objects.indexes.map((x) => x.name)],
    );
    for (const { i } of indexes.rows) await client.query(objects.indexes[Number(i) - 1]!.create);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
