import pg from 'pg';
import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import { initLegacy } from './init-legacy.js';
import type { LegacyWorkload } from './legacy-workload.js';
import { type IntervalStats, type OpenLoopResult, runOpenLoop } from './open-loop.js';

/** The workload against a real legacy database: seeding (schema included) and an open-loop live load. */

export interface SeedResult {
  writes: number;
  invalid: number;
  byKind: Record<string, number>;
  seconds: number;
  /** Legacy rows per table after seeding. */
  rows: Record<string, number>;
  /** Bookings whose contactDetails.notes exceed 4 kB, and the size of bookings' TOAST table. */
  bigNotes: number;
  toastBytes: number;
}

const LEGACY_TABLES = ['bookings', 'customers_kv', 'bundle_discount_id', 'ai_fbt_bundles'] as const;

export async function legacyRowCounts(client: pg.ClientBase): Promise<Record<string, number>> {
  const rows: Record<string, number> = {};
  for (const t of LEGACY_TABLES) {
    rows[t] = Number((await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${t}`)).rows[0]!.n);
  }
  return rows;
}

/**
 * Creates the legacy schema when missing and writes the workload's seed (`bookings` bookings, profiles, bundles)
 * in transactions of `batch` writes. Refuses a database that already holds bookings: the same seed would write
 * the same keys again.
 */
export async function seedLegacy(
  url: string,
  workload: LegacyWorkload,
  bookings: number,
  batch = 500,
): Promise<SeedResult> {
  return (await seed(url, workload, bookings, batch, 'refuse'))!;
}

/** `seedLegacy`, except that a database already holding bookings is left as it is (undefined): an init step. */
export function seedLegacyIfEmpty(
  url: string,
  workload: LegacyWorkload,
  bookings: number,
): Promise<SeedResult | undefined> {
  return seed(url, workload, bookings, 500, 'leave');
}

async function seed(
  url: string,
  workload: LegacyWorkload,
  bookings: number,
  batch: number,
  whenSeeded: 'refuse' | 'leave',
): Promise<SeedResult | undefined> {
  await initLegacy(url);
  const client = new pg.Client({ connectionString: url, application_name: 'replicator-workload' });
  await client.connect();
  try {
    const existing = Number(
      (await client.query<{ n: string }>('SELECT count(*)::text AS n FROM bookings')).rows[0]!.n,
    );
    if (existing > 0 && whenSeeded === 'leave') return undefined;
    if (existing > 0) {
      throw new ReplicatorError(
        ErrorCodes.CONFIG_INVALID,
        `the legacy database already holds ${existing} bookings: seed an empty database (or use \`run\` to add live writes)`,
      );
    }
    const t0 = performance.now();
    const byKind: Record<string, number> = {};
    let writes = 0;
    let invalid = 0;
    let inTx = 0;
    await client.query('BEGIN');
    for (const w of workload.seed(bookings)) {
      await client.query(w.sql, w.params);
      byKind[w.kind] = (byKind[w.kind] ?? 0) + 1;
      writes++;
      if (w.invalid) invalid++;
      if (++inTx >= batch) {
        await client.query('COMMIT');
        await client.query('BEGIN');
        inTx = 0;
      }
    }
    await client.query('COMMIT');
    const seconds = (performance.now() - t0) / 1000;
    await client.query('ANALYZE');
    const big = (
      await client.query<{ n: string; toast: string }>(
        `SELECT (SELECT count(*) FROM bookings WHERE octet_length("contactDetails"->>'notes') > 4096)::text AS n,
                coalesce(pg_relation_size((SELECT reltoastrelid FROM pg_class WHERE oid = 'bookings'::regclass)), 0)::text AS toast`,
      )
    ).rows[0]!;
    return {
      writes,
      invalid,
      byKind,
      seconds,
      rows: await legacyRowCounts(client),
      bigNotes: Number(big.n),
      toastBytes: Number(big.toast),
    };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    await client.end();
  }
}

export interface LoadOptions {
  rate: number;
  durationMs: number;
  /** Connections of the pool the writes run through (each write is its own transaction). */
  connections?: number;
  signal?: AbortSignal;
  onInterval?: (s: IntervalStats) => void;
  intervalMs?: number;
}

/** An open-loop live load of the workload's writes against the legacy database. */
export async function runLegacyLoad(
  url: string,
  workload: LegacyWorkload,
  o: LoadOptions,
): Promise<OpenLoopResult> {
  const pool = new pg.Pool({
    connectionString: url,
    max: o.connections ?? 8,
    application_name: 'replicator-workload',
  });
  pool.on('error', () => {});
  try {
    return await runOpenLoop({
      rate: o.rate,
      durationMs: o.durationMs,
      next: () => workload.next(),
      execute: (w) => pool.query(w.sql, w.params),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onInterval ? { onInterval: o.onInterval } : {}),
      ...(o.intervalMs ? { intervalMs: o.intervalMs } : {}),
    });
  } finally {
    await pool.end();
  }
}

const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '-');

/** The result of a load, as the CLI and the demo print it. */
export function describeLoad(r: OpenLoopResult): string[] {
  const lines = [
    `offered ${r.offeredRate}/s open loop: ${r.issued.toLocaleString('en-US')} writes issued (${r.issueRate.toFixed(1)}/s), ${r.committed.toLocaleString('en-US')} committed (${r.achievedRate.toFixed(1)}/s), ${r.failed} failed${r.late ? `, ${r.late} issued > 10 ms late` : ''}`,
    `commit latency (from each write's due time): p50 ${ms(r.latency.p50)}, p99 ${ms(r.latency.p99)}, max ${ms(r.latency.max)}`,
    `mix: ${Object.entries(r.kinds)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  ];
  for (const [msg, n] of Object.entries(r.errors)) lines.push(`error ×${n}: ${msg}`);
  return lines;
}
