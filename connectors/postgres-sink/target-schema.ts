import type pg from 'pg';

/**
 * The sink's own bookkeeping in the target, in schema `replicator` (never in the V2 tables):
 * - sink_offsets: the next Kafka offset per (group, topic, partition), committed in the same transaction as the
 *   rows it covers — the source of truth for where a sink resumes.
 * - lineage: per legacy row, the position of the change last applied and what it produced (V2 rows, user emails),
 *   so a replayed or out-of-date change is skipped and what a row no longer produces is removed.
 * - applied: the newest source commit time applied per group (lag), heartbeats included.
 */
export const REPLICATOR_SCHEMA_DDL = `
CREATE SCHEMA IF NOT EXISTS replicator;
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
`;

export async function ensureReplicatorSchema(client: pg.ClientBase): Promise<void> {
  // Two sinks starting at once must not race on CREATE … IF NOT EXISTS (it is not concurrency-safe).
  await client.query('BEGIN');
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('replicator.schema'))");
    await client.query(REPLICATOR_SCHEMA_DDL);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
