import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { initTarget } from '../src/cli/target-command.js';
import { quoteIdent } from '../src/core/sql.js';
import { deleteTopicsWithPrefix } from '../src/stack/local-kafka.js';
import { kafkaBrokers, stackSettings, stackUp } from '../src/stack/stack.js';
import { initLegacy } from '../src/workload/init-legacy.js';

/** Shared set-up for the pipeline benchmarks: the stack, fresh databases, a config file and the daemon as a child. */

export const settings = stackSettings();

export async function benchStack(): Promise<{ admin: pg.Client; pgVersion: string }> {
  await stackUp(settings, () => {});
  const admin = new pg.Client({ connectionString: settings.pgUrl });
  await admin.connect();
  const pgVersion = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v"))
    .rows[0]!.v;
  return { admin, pgVersion };
}

export function dbUrl(name: string): string {
  const u = new URL(settings.pgUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface BenchEnv {
  legacyUrl: string;
  targetUrl: string;
  configFile: string;
  config: Record<string, unknown>;
  drop: () => Promise<void>;
}

export async function freshBenchEnv(
  admin: pg.Client,
  label: string,
  extra: Record<string, unknown> = {},
): Promise<BenchEnv> {
  const tag = `${label}_${process.pid}_${Date.now() % 100000}`;
  const legacy = `bench_${tag}_legacy`;
  const target = `bench_${tag}_v2`;
  await admin.query(`CREATE DATABASE ${quoteIdent(legacy)}`);
  await admin.query(`CREATE DATABASE ${quoteIdent(target)}`);
  const legacyUrl = dbUrl(legacy);
  const targetUrl = dbUrl(target);
  await initLegacy(legacyUrl);
  await initTarget(targetUrl);
  const config = {
    source: {
      url: legacyUrl,
      tables: [
        'public.bookings',
        'public.customers_kv',
        'public.bundle_discount_id',
        'public.ai_fbt_bundles',
      ],
      slot: `s_${tag}`,
      publication: `p_${tag}`,
      statusIntervalMs: 100,
      heartbeatIntervalMs: 1000,
    },
    target: { url: targetUrl },
    kafka: { brokers: [kafkaBrokers(settings)], topicPrefix: `raw${tag}`, partitions: 6 },
    sink: { groupId: `k${tag}`, sessionTimeoutMs: 6000 },
    metrics: { port: 0 },
    ...extra,
  };
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config));
  return {
    legacyUrl,
    targetUrl,
    configFile,
    config,
    drop: async () => {
      for (const db of [legacy, target])
        await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
      await admin.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
        [`s_${tag}`],
      );
      // Left behind, topics piled up in the shared broker: with ~900 partitions from earlier runs, bench:e2e measured
      // about a third less throughput and about three times the p99 at 2,000/s than on a broker restarted empty.
      await deleteTopicsWithPrefix(kafkaBrokers(settings), `raw${tag}`);
    },
  };
}

/** `replicator start` as a child, with the heap cap the README recommends. */
export class Daemon {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly log: string;

  constructor(
    private readonly configFile: string,
    private readonly role = 'all',
    /** Where /metrics listens (the config says port 0: any free port). */
    readonly metricsPort?: number,
  ) {
    this.log = `${configFile}.${role}.log`;
  }

  /** The daemon's Prometheus text (needs `metricsPort`). */
  async metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    return res.text();
  }

  start(): void {
    const out = openSync(this.log, 'a');
    const bin = new URL('../bin/replicator.js', import.meta.url).pathname;
    this.child = spawn(
      process.execPath,
      [
        '--max-old-space-size=256',
        // REPLICATOR_BENCH_CPU_PROF=<dir>: a V8 CPU profile of the daemon per run, for finding where its time goes.
        ...(process.env.REPLICATOR_BENCH_CPU_PROF
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.REPLICATOR_BENCH_CPU_PROF}`]
          : []),
        bin,
        'start',
        '--role',
        this.role,
        '--config',
        this.configFile,
      ],
      {
        stdio: ['ignore', out, out],
        env: {
          ...process.env,
          REPLICATOR_LOG_LEVEL: 'warn',
          ...(this.metricsPort ? { REPLICATOR_METRICS_PORT: String(this.metricsPort) } : {}),
        },
      },
    );
    const child = this.child;
    this.exited = new Promise((r) => child.on('exit', () => r()));
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGTERM');
    await this.exited;
  }

  tail(): string {
    try {
      return readFileSync(this.log, 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A quantile of a Prometheus histogram from its cumulative buckets (as histogram_quantile: linear within the
 * bucket), for the series whose labels include `labels`. In seconds; NaN without observations.
 */
export function histogramQuantile(text: string, name: string, labels: string, q: number): number {
  const buckets: [number, number][] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(labels)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const count = Number(line.slice(line.lastIndexOf(' ') + 1));
    buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

export interface CaptureRun {
  /** From leadership (lock taken, before preflight and topic creation) to the last event acknowledged by Kafka. */
  seconds: number;
  /** The same from process start. */
  totalSeconds: number;
  events: number;
  peakRssMb: number;
  cpuSeconds: number;
}

/**
 * Our source alone in its own process (capture-worker.ts, so peak RSS and CPU are this run's), draining `slot`
 * (which must exist) into `<topicPrefix>` topics until its Kafka-acknowledged position reaches `endLsn`.
 */
export async function runCaptureWorker(o: {
  url: string;
  slot: string;
  publication: string;
  tables: string[];
  topicPrefix: string;
  partitions: number;
  endLsn: string;
  heapMb: number;
}): Promise<CaptureRun> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-capture-'));
  const configFile = join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      source: {
        url: o.url,
        tables: o.tables,
        slot: o.slot,
        publication: o.publication,
        snapshot: 'never',
        heartbeatIntervalMs: 0,
      },
      kafka: { brokers: [kafkaBrokers(settings)], topicPrefix: o.topicPrefix, partitions: o.partitions },
    }),
  );
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  // The heap cap the README recommends for the daemon (NODE_OPTIONS): V8 otherwise lets garbage grow the RSS.
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      `--max-old-space-size=${o.heapMb}`,
      '--import',
      'tsx',
      new URL('./capture-worker.ts', import.meta.url).pathname,
      configFile,
      o.endLsn,
    ],
    { maxBuffer: 16 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!) as CaptureRun;
}

/** The capture benchmarks' table (~200 bytes a row) and its publication. */
export async function createBenchRows(c: pg.Client, publication: string): Promise<void> {
  await c.query(`CREATE TABLE bench_rows (id bigint PRIMARY KEY, name text NOT NULL, qty int NOT NULL,
                 amount numeric(12,2) NOT NULL, note text NOT NULL, created_at timestamptz NOT NULL)`);
  await c.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE bench_rows`);
}

/** Rows `from`..`to` of bench_rows, `perTransaction` rows to a transaction. */
export async function insertBenchRows(c: pg.Client, from: number, to: number, perTransaction: number) {
  const insert = `INSERT INTO bench_rows SELECT g, 'customer ' || g, g % 100, (g % 100000) / 100.0,
                  repeat(md5(g::text), 3), now() FROM generate_series($1::bigint, $2::bigint) g`;
  for (let at = from; at <= to; at += perTransaction)
    await c.query(insert, [at, Math.min(at + perTransaction - 1, to)]);
}
