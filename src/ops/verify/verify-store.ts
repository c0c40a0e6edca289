import type pg from 'pg';
import { ensureSchemaObjects, type SchemaObjects } from '../../../connectors/postgres-sink/index.js';
import type { JsonRow, V2Entity } from '../../contracts/transform-api.js';

/**
 * Verify's record in the target's `replicator` schema, next to the sink's bookkeeping:
 * - verify_runs: one row per run — its snapshot LSN, whether it found the target clean, and the report's summary;
 *   finished_at stays NULL for a run that did not finish (cutover's go/no-go reads the last finished run).
 * - reverify_queue: the keys a run leaves to re-check (key: JSON text of the key columns) — status 'drift' (still
 *   different after the re-checks) or 'in-flux' (changed again at every re-check: the next verify, or cutover's
 *   fenced final verify, decides).
 * The tables are also in the sink's REPLICATOR_SCHEMA; this adds what verify needs when an older sink made them.
 */
export const VERIFY_SCHEMA: SchemaObjects = {
  tables: `
CREATE SCHEMA IF NOT EXISTS replicator;
CREATE TABLE IF NOT EXISTS replicator.verify_runs (
  id text PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,
  snapshot_lsn pg_lsn, clean boolean, summary jsonb NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS replicator.reverify_queue (
  run_id text NOT NULL, entity text NOT NULL, key text NOT NULL, PRIMARY KEY (run_id, entity, key));
`,
  columns: [
    { table: 'replicator.verify_runs', column: 'settled_lsn', definition: 'pg_lsn' },
    { table: 'replicator.reverify_queue', column: 'status', definition: "text NOT NULL DEFAULT 'drift'" },
  ],
  indexes: [],
};

export interface QueuedKey {
  entity: V2Entity;
  key: JsonRow;
  status: 'drift' | 'in-flux';
}

/** Creates the tables, serialized with the sink's own schema setup (ensureSchemaObjects). */
export async function ensureVerifySchema(client: pg.ClientBase): Promise<void> {
  await ensureSchemaObjects(client, VERIFY_SCHEMA);
}

/** `settledLsn`: a full run's position before its snapshot (every commit before it is in it), the delta's base. */
export async function startRun(
  client: pg.ClientBase,
  run: { id: string; snapshotLsn: string; settledLsn?: string; summary: unknown },
): Promise<void> {
  await client.query(
    'INSERT INTO replicator.verify_runs (id, snapshot_lsn, settled_lsn, summary) VALUES ($1, $2, $3, $4)',
    [run.id, run.snapshotLsn, run.settledLsn ?? null, JSON.stringify(run.summary)],
  );
}

/** Replaces the run's queue with `keys`, in one transaction with the run's outcome. */
export async function finishRun(
  client: pg.ClientBase,
  run: { id: string; clean: boolean; summary: unknown; queue: readonly QueuedKey[] },
): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('DELETE FROM replicator.reverify_queue WHERE run_id = $1', [run.id]);
    for (let i = 0; i < run.queue.length; i += 5_000) {
      const part = run.queue.slice(i, i + 5_000);
      await client.query(
        `INSERT INTO replicator.reverify_queue (run_id, entity, key, status)
         SELECT $1, e, k, s FROM unnest($2::text[], $3::text[], $4::text[]) AS q(e, k, s)
         ON CONFLICT DO NOTHING`,
        [
          run.id,
          part.map((q) => q.entity),
          part.map((q) => JSON.stringify(q.key)),
          part.map((q) => q.status),
        ],
      );
    }
    await client.query(
      'UPDATE replicator.verify_runs SET finished_at = now(), clean = $2, summary = $3 WHERE id = $1',
      [run.id, run.clean, JSON.stringify(run.summary)],
    );
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/** The newest finished run and its queue (what cutover reads). */
export async function lastVerifyRun(
  client: pg.ClientBase,
): Promise<
  { id: string; clean: boolean; snapshotLsn: string; finishedAt: string; queue: QueuedKey[] } | undefined
> {
  const exists = (await client.query("SELECT to_regclass('replicator.verify_runs') IS NOT NULL AS ok"))
    .rows[0]?.ok;
  if (!exists) return undefined;
  const run = (
    await client.query<{ id: string; clean: boolean; snapshot_lsn: string; finished_at: string }>(
      `SELECT id, clean, snapshot_lsn::text, finished_at::text FROM replicator.verify_runs
        WHERE finished_at IS NOT NULL ORDER BY started_at DESC, finished_at DESC LIMIT 1`,
    )
  ).rows[0];
  if (!run) return undefined;
  return {
    id: run.id,
    clean: run.clean,
    snapshotLsn: run.snapshot_lsn,
    finishedAt: run.finished_at,
    queue: await readQueue(client, run.id),
  };
}

/**
 * Where a delta verify may start: the newest finished full run (one with a settled position) if it found the target
 * clean — its position and the keys it left in flux. Undefined when there is none, or it found drift.
 */
export async function lastCleanFullRun(client: pg.ClientBase): Promise<
  | {
      id: string;
      settledLsn: string;
      finishedAt: string;
      queue: QueuedKey[];
      /** Legacy rows it read and V2 users it expected (its summary): the sizes the cutover weighs the delta by. */
      legacyRows: number;
      users: number;
    }
  | undefined
> {
  const exists = (await client.query("SELECT to_regclass('replicator.verify_runs') IS NOT NULL AS ok"))
    .rows[0]?.ok;
  if (!exists) return undefined;
  const run = (
    await client.query<{
      id: string;
      clean: boolean;
      settled_lsn: string;
      finished_at: string;
      legacy_rows: number | null;
      users: number | null;
    }>(
      `SELECT id, clean, settled_lsn::text, finished_at::text, (summary->>'legacyRows')::float8 AS legacy_rows,
              (SELECT (e->>'expected')::float8 FROM jsonb_array_elements(summary->'entities') e
                WHERE e->>'entity' = 'users') AS users
         FROM replicator.verify_runs
        WHERE finished_at IS NOT NULL AND settled_lsn IS NOT NULL ORDER BY started_at DESC, finished_at DESC LIMIT 1`,
    )
  ).rows[0];
  if (!run?.clean) return undefined;
  return {
    id: run.id,
    settledLsn: run.settled_lsn,
    finishedAt: run.finished_at,
    queue: await readQueue(client, run.id),
    legacyRows: run.legacy_rows ?? 0,
    users: run.users ?? 0,
  };
}

/** The keys a run left to re-check. */
async function readQueue(client: pg.ClientBase, runId: string): Promise<QueuedKey[]> {
  const { rows } = await client.query<{ entity: V2Entity; key: string; status: QueuedKey['status'] }>(
    'SELECT entity, key, status FROM replicator.reverify_queue WHERE run_id = $1 ORDER BY entity, key',
    [runId],
  );
  return rows.map((r) => ({ entity: r.entity, key: JSON.parse(r.key) as JsonRow, status: r.status }));
}
