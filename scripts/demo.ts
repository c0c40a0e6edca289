/**
 * `npm run demo`: the replicator doing its whole job on this machine, in one command.
 *
 * Brings the local stack up, creates a fresh legacy and V2 database, seeds the legacy one with the realistic
 * workload, starts the daemon (`replicator start --role all`), applies a live open-loop load while printing a
 * status line every 5 s, then runs `replicator verify` and `replicator cutover` (a sequence synced, a feature flag
 * flipped), stops the daemon, runs `replicator finalize` and prints a summary. The databases stay for a look;
 * `npm run demo -- --clean` removes everything the demo made.
 *
 * Flags: --seconds N (60) --rate R (150) --bookings N (2000) --seed S (42) --prefix P (demo: databases P_legacy
 * and P_v2, slot P_slot, topics P.*) --metrics-port N (9464 when free, else any) --no-prometheus --clean
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Admin } from 'kafkajs';
import pg from 'pg';
import { initTarget } from '../src/cli/target-command.js';
import { dlqTopic } from '../src/contracts/topics.js';
import { createKafka } from '../src/core/kafka-client.js';
import { silentLogger } from '../src/core/logger.js';
import { redactUrl } from '../src/core/redact.js';
import { quoteIdent } from '../src/core/sql.js';
import { CUTOVER_PHASES } from '../src/ops/cutover/cutover.js';
import { FENCE_ERROR_PREFIX } from '../src/ops/cutover/fence.js';
import { listDeadLetters } from '../src/ops/dlq/dead-letters.js';
import { readStatus } from '../src/ops/status/read-status.js';
import { sparkline } from '../src/ops/status/sparkline.js';
import { perSecond } from '../src/ops/status/status-history.js';
import type { VerifyReport } from '../src/ops/verify/verify.js';
import { loadConfig, type ReplicatorConfig } from '../src/pipeline/config/load-config.js';
import type { ConfigInput } from '../src/pipeline/config/schema.js';
import { type PrometheusStatus, prometheusStatus } from '../src/stack/local-prometheus.js';
import { kafkaBrokers, stackSettings, stackUp } from '../src/stack/stack.js';
import { DEFAULT_WORKLOAD, LegacyWorkload } from '../src/workload/legacy-workload.js';
import type { IntervalStats, OpenLoopResult } from '../src/workload/open-loop.js';
import { describeLoad, legacyRowCounts, runLegacyLoad, seedLegacy } from '../src/workload/workload-db.js';
import { V2_KEYS } from '../transforms/v2-schema.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const replicatorBin = join(root, 'bin', 'replicator.js');
const ENTITIES = Object.keys(V2_KEYS);
const LEGACY_TABLES = [
  'public.bookings',
  'public.customers_kv',
  'public.bundle_discount_id',
  'public.ai_fbt_bundles',
];
const FLAG = 'V2_BUNDLE_ENGINE';
const TARGET_SEQUENCE = 'public.bundles_legacy_id_seq';

class DemoError extends Error {}

// ---------------------------------------------------------------------------------------------------------------
// Arguments

const { values: argv } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    rate: { type: 'string', default: '150' },
    bookings: { type: 'string', default: '2000' },
    seed: { type: 'string', default: '42' },
    prefix: { type: 'string', default: 'demo' },
    'metrics-port': { type: 'string' },
    'no-prometheus': { type: 'boolean', default: false },
    clean: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (argv.help) {
  console.log(
    'usage: npm run demo [-- --seconds 60 --rate 150 --bookings 2000 --seed 42 --prefix demo --metrics-port N --no-prometheus]\n' +
      '       npm run demo -- --clean [--prefix demo]   (drop what the demo made)',
  );
  process.exit(0);
}

function num(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) {
    console.error(`demo: --${name} must be a number >= ${min} (got ${JSON.stringify(v)})`);
    process.exit(2);
  }
  return n;
}
const SECONDS = num('seconds', argv.seconds, 1);
const RATE = num('rate', argv.rate, 1);
const BOOKINGS = Math.floor(num('bookings', argv.bookings, 10));
const SEED = Math.floor(num('seed', argv.seed, 0));
const PREFIX = argv.prefix;
if (!/^[a-z_][a-z0-9_]{0,40}$/.test(PREFIX)) {
  console.error(
    'demo: --prefix must be lowercase letters, digits and _ (at most 41), not starting with a digit',
  );
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------------------------
// Names, paths, output

const settings = stackSettings();
const names = {
  legacyDb: `${PREFIX}_legacy`,
  targetDb: `${PREFIX}_v2`,
  slot: `${PREFIX}_slot`,
  publication: `${PREFIX}_pub`,
  rawPrefix: `${PREFIX}.legacy`,
  v2Prefix: `${PREFIX}.v2`,
  transformGroup: `${PREFIX}.transform`,
  sinkGroup: `${PREFIX}.sink`,
};
const dir = join(dirname(settings.kafka.dir), PREFIX);
const configFile = join(dir, 'replicator.config.json');
const daemonLog = join(dir, 'daemon.log');
const pidFile = join(dir, 'daemon.pid');
const rel = (p: string) => relative(process.cwd(), p) || '.';
/** How to run the replicator CLI from here (the package's own bin is not on the PATH). */
const CLI = `node ${rel(replicatorBin)}`;

const dbUrl = (db: string) => {
  const u = new URL(settings.pgUrl);
  u.pathname = `/${db}`;
  return u.toString();
};
const legacyUrl = dbUrl(names.legacyDb);
const targetUrl = dbUrl(names.targetDb);

const started = Date.now();
const n = (x: number) => x.toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (line = '') => console.log(line);
let stepNo = 0;
const STEPS = 8;
const step = (title: string) =>
  say(`\n== ${++stepNo}/${STEPS} ${title} ${'='.repeat(Math.max(0, 90 - title.length))}`);
const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The environment of the replicator children: this file's config, not REPLICATOR_* overrides from the shell. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REPLICATOR_') && !k.startsWith('REPLICATOR_STACK_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers: PostgreSQL, Kafka, the CLI

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: 'replicator-demo' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function withKafkaAdmin<T>(fn: (a: Admin) => Promise<T>): Promise<T> {
  const admin = createKafka(
    {
      brokers: [kafkaBrokers(settings)],
      clientId: 'replicator-demo',
    },
    silentLogger(),
    'replicator-demo',
  ).admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/** Runs `replicator <args>`; returns its exit code and output. */
function runCli(
  args: string[],
  onLine?: (line: string) => void,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [replicatorBin, ...args], {
      env: childEnv({ REPLICATOR_LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!onLine) return;
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) onLine(l);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (onLine && partial) onLine(partial);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** The `msg` of the JSON error line the CLI prints on failure, or its stderr. */
function cliError(r: { stderr: string; code: number }): string {
  for (const line of r.stderr.trim().split('\n').reverse()) {
    try {
      const j = JSON.parse(line) as { code?: string; msg?: string };
      if (j.msg) return `${j.code ?? 'error'}: ${j.msg}`;
    } catch {}
  }
  return r.stderr.trim().slice(-2000) || `exit code ${r.code}`;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The daemon

class Daemon {
  private child: ChildProcess | undefined;
  private exit: Promise<number | null> = Promise.resolve(null);
  exited = false;

  start(): void {
    const out = openSync(daemonLog, 'w');
    const child = spawn(
      process.execPath,
      ['--max-old-space-size=256', replicatorBin, 'start', '--role', 'all', '--config', configFile],
      { stdio: ['ignore', out, out], env: childEnv({ REPLICATOR_LOG_LEVEL: 'info' }) },
    );
    this.child = child;
    writeFileSync(pidFile, `${child.pid}\n`);
    this.exit = new Promise((r) =>
      child.on('exit', (code) => {
        this.exited = true;
        r(code);
      }),
    );
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The port of /metrics, from the line the daemon logs once it listens. */
  async metricsPort(timeoutMs = 90_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exited)
        throw new DemoError(`the daemon exited while starting; see ${rel(daemonLog)}:\n${this.tail()}`);
      for (const line of readFileSync(daemonLog, 'utf8').split('\n')) {
        if (!line.includes('"msg":"http server listening"')) continue;
        return (JSON.parse(line) as { port: number }).port;
      }
      await sleep(200);
    }
    throw new DemoError(`the daemon did not start within ${timeoutMs / 1000} s; see ${rel(daemonLog)}`);
  }

  /** SIGTERM (a graceful stop: flush, acknowledge, commit), then SIGKILL after the grace period. */
  async stop(): Promise<void> {
    if (!this.child || this.exited) return;
    this.child.kill('SIGTERM');
    const killed = await Promise.race([this.exit.then(() => false), sleep(40_000).then(() => true)]);
    if (killed) {
      this.child.kill('SIGKILL');
      await this.exit;
    }
    rmSync(pidFile, { force: true });
  }

  tail(lines = 15): string {
    try {
      return readFileSync(daemonLog, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Clean: whatever an earlier demo with this prefix left

async function clean(log: (line: string) => void): Promise<void> {
  // A daemon an interrupted demo left behind (only ours: its command line names our config file).
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {}
    if (pid > 0 && pidAlive(pid) && cmdline.includes(configFile)) {
      log(`stopping the daemon of an earlier demo (pid ${pid})`);
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 400 && pidAlive(pid); i++) await sleep(100);
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(pidFile, { force: true });
  }
  await withClient(settings.pgUrl, async (admin) => {
    // The slot first: a database with a logical slot cannot be dropped.
    for (let i = 0; i < 100; i++) {
      const slot = (
        await admin.query<{ active_pid: number | null }>(
          'SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1',
          [names.slot],
        )
      ).rows[0];
      if (!slot) break;
      if (slot.active_pid) {
        await admin.query('SELECT pg_terminate_backend($1)', [slot.active_pid]);
        await sleep(100);
        continue;
      }
      await admin.query('SELECT pg_drop_replication_slot($1)', [names.slot]);
      log(`dropped replication slot ${names.slot}`);
      break;
    }
    for (const db of [names.legacyDb, names.targetDb]) {
      const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [db])).rowCount;
      if (!exists) continue;
      await admin.query(`DROP DATABASE ${quoteIdent(db)} WITH (FORCE)`);
      log(`dropped database ${db}`);
    }
  });
  await withKafkaAdmin(async (admin) => {
    const ours = (t: string) => t.startsWith(`${names.rawPrefix}.`) || t.startsWith(`${names.v2Prefix}.`);
    const topics = (await admin.listTopics()).filter(ours);
    if (topics.length > 0) {
      await admin.deleteTopics({ topics, timeout: 30_000 });
      for (let i = 0; i < 100 && (await admin.listTopics()).some(ours); i++) await sleep(200);
      log(`deleted ${topics.length} Kafka topic(s) ${names.rawPrefix}.* / ${names.v2Prefix}.*`);
    }
    const groups = (await admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((g) => g === names.transformGroup || g === names.sinkGroup);
    if (groups.length > 0) {
      await admin.deleteGroups(groups).catch(() => []);
      log(`deleted consumer group(s) ${groups.join(', ')}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Status line

const ENTITY_LABEL: Record<string, string> = {
  customer_profiles: 'profiles',
  bundle_components: 'components',
  bundle_discounts: 'discounts',
};

async function v2Counts(c: pg.ClientBase): Promise<Record<string, number>> {
  const row = (
    await c.query<Record<string, string>>(
      `SELECT ${ENTITIES.map((e) => `(SELECT count(*) FROM ${quoteIdent(e)})::text AS ${quoteIdent(e)}`).join(', ')}`,
    )
  ).rows[0]!;
  return Object.fromEntries(ENTITIES.map((e) => [e, Number(row[e])]));
}

async function appliedOffsets(c: pg.ClientBase): Promise<number> {
  return Number(
    (
      await c.query<{ n: string }>(
        'SELECT coalesce(sum(next_offset), 0)::text AS n FROM replicator.sink_offsets WHERE group_id = $1',
        [names.sinkGroup],
      )
    ).rows[0]!.n,
  );
}

function kb(bytes: number | undefined): string {
  if (bytes === undefined) return '?';
  return bytes < 1024
    ? `${bytes} B`
    : bytes < 1 << 20
      ? `${(bytes / 1024).toFixed(0)} kB`
      : `${(bytes / (1 << 20)).toFixed(1)} MB`;
}

class StatusLine {
  private lastApplied: number | undefined;
  private lastAt = 0;

  constructor(
    private readonly config: ReplicatorConfig,
    private readonly target: pg.Client,
  ) {}

  async line(load: IntervalStats | undefined, elapsed: number): Promise<string> {
    const [counts, applied, status] = await Promise.all([
      v2Counts(this.target),
      appliedOffsets(this.target),
      readStatus(this.config, { maxLagSeconds: 300 }, silentLogger()),
    ]);
    const now = Date.now();
    const appliedRate =
      this.lastApplied === undefined
        ? undefined
        : (applied - this.lastApplied) / ((now - this.lastAt) / 1000);
    this.lastApplied = applied;
    this.lastAt = now;
    const backlog = status.kafka.groups.reduce((s, g) => s + g.lag, 0);
    const lag = status.target?.lagSeconds;
    return [
      `[${elapsed.toFixed(0).padStart(3)} s]`,
      load ? `writes ${load.rate.toFixed(0)}/s p99 ${load.p99.toFixed(0)} ms |` : 'writes - |',
      `V2 ${ENTITIES.map((e) => `${ENTITY_LABEL[e] ?? e} ${n(counts[e]!)}`).join(' ')} |`,
      `lag ${lag === null || lag === undefined ? '?' : `${lag.toFixed(1)} s`} (slot ${kb(status.source.lagBytes)}, kafka ${n(backlog)} msgs) |`,
      `sink ${appliedRate === undefined ? '-' : `${appliedRate.toFixed(0)} msgs/s`} | DLQ offsets ${status.kafka.dlq.messages ?? '?'}`,
    ].join(' ');
  }
}

interface TimelineSample {
  at: number;
  /** Legacy commits per second over the load's latest 1 s interval (0 once the load stopped). */
  writes: number | null;
  /** Messages the sink has consumed (replicator.sink_offsets summed, heartbeats included): a counter. */
  applied: number | null;
  lagSeconds: number | null;
}

/** Lag and throughput once a second, from the load's start until the pipeline caught up: the summary's chart. */
class Timeline {
  readonly samples: TimelineSample[] = [];
  private stopped = false;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly target: pg.Client) {}

  start(writes: () => number | null): void {
    this.running = (async () => {
      for (let next = Date.now(); !this.stopped; ) {
        const at = Date.now();
        const row = await this.target
          .query<{ lag: number | null; applied: string }>(
            `SELECT (SELECT extract(epoch FROM now() - commit_ts)::float8 FROM replicator.applied
                      WHERE group_id = $1) AS lag,
                    (SELECT coalesce(sum(next_offset), 0)::text FROM replicator.sink_offsets
                      WHERE group_id = $1) AS applied`,
            [names.sinkGroup],
          )
          .then(
            (r) => r.rows[0],
            () => undefined,
          );
        this.samples.push({
          at,
          writes: writes(),
          applied: row ? Number(row.applied) : null,
          lagSeconds: row?.lag === null || row?.lag === undefined ? null : Math.max(0, row.lag),
        });
        next += 1000;
        while (!this.stopped && Date.now() < next) await sleep(Math.min(100, next - Date.now()));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

/** The summary's chart: one sparkline per quantity, at most 60 bars (a bar averages, or for lag maxes, a few s). */
function timelineChart(samples: readonly TimelineSample[]): string[] {
  if (samples.length < 2) return [];
  const per = Math.ceil(samples.length / 60);
  const known = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
  const bars = (values: (number | null)[], pick: (xs: number[]) => number) => {
    const out: (number | null)[] = [];
    for (let i = 0; i < values.length; i += per) {
      const xs = known(values.slice(i, i + per));
      out.push(xs.length === 0 ? null : pick(xs));
    }
    return sparkline(out);
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const max = (xs: number[]) => Math.max(...xs);
  const peak = (xs: (number | null)[], unit: (v: number) => string) =>
    known(xs).length === 0 ? 'peak ?' : `peak ${unit(max(known(xs)))}`;
  const writes = samples.map((x) => x.writes);
  const applied = samples.map((x, i) =>
    i === 0
      ? null
      : perSecond({ at: samples[i - 1]!.at, value: samples[i - 1]!.applied }, { at: x.at, value: x.applied }),
  );
  const lag = samples.map((x) => x.lagSeconds);
  const seconds = (samples.at(-1)!.at - samples[0]!.at) / 1000;
  const row = (label: string, chart: string, note: string) => `  ${label.padEnd(12)} ${chart}  ${note}`;
  return [
    `over time: the load, then the catch-up (${seconds.toFixed(0)} s, one bar per ${per} s):`,
    row(
      'writes/s',
      bars(writes, mean),
      peak(writes, (v) => `${v.toFixed(0)}/s`),
    ),
    row(
      'sink msgs/s',
      bars(applied, mean),
      peak(applied, (v) => `${v.toFixed(0)}/s`),
    ),
    row(
      'lag',
      bars(lag, max),
      peak(lag, (v) => `${v.toFixed(1)} s`),
    ),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// The demo

interface Outcome {
  load?: OpenLoopResult;
  verify?: VerifyReport;
  cutover?: { id: string; phase: string; writeBlockedMs?: number };
  phases: string[];
  timeline?: TimelineSample[];
}

const daemon = new Daemon();

async function demo(): Promise<void> {
  const outcome: Outcome = { phases: [] };
  say(`pg-v2-replicator demo: ${names.legacyDb} → Kafka → ${names.targetDb}, seed ${SEED}`);

  step('local stack (PostgreSQL with logical decoding, a Kafka broker)');
  await stackUp(settings, (l) => say(`  ${l}`), { prometheus: !argv['no-prometheus'] });
  const pgVersion = await withClient(settings.pgUrl, async (c) => {
    const r = await c.query<{ v: string; w: string }>(
      "SELECT current_setting('server_version') AS v, current_setting('wal_level') AS w",
    );
    return `${r.rows[0]!.v} (wal_level=${r.rows[0]!.w})`;
  });
  say(`  postgres: ${new URL(settings.pgUrl).host} PostgreSQL ${pgVersion}`);
  say(`  kafka: ${kafkaBrokers(settings)}`);

  step('fresh databases, schemas and seed data');
  mkdirSync(dir, { recursive: true });
  await clean((l) => say(`  earlier demo: ${l}`));
  await withClient(settings.pgUrl, async (admin) => {
    await admin.query(`CREATE DATABASE ${quoteIdent(names.legacyDb)}`);
    await admin.query(`CREATE DATABASE ${quoteIdent(names.targetDb)}`);
  });
  say(`  created databases ${names.legacyDb} (legacy) and ${names.targetDb} (V2)`);
  await initTarget(targetUrl);
  await withClient(targetUrl, async (c) => {
    await c.query(`CREATE SEQUENCE IF NOT EXISTS ${TARGET_SEQUENCE}`);
    await c.query(
      'CREATE TABLE IF NOT EXISTS feature_flags (name text PRIMARY KEY, enabled boolean NOT NULL)',
    );
    await c.query(
      'INSERT INTO feature_flags (name, enabled) VALUES ($1, false) ON CONFLICT (name) DO UPDATE SET enabled = false',
      [FLAG],
    );
  });
  say(`  V2 schema (init-target), sequence ${TARGET_SEQUENCE}, feature_flags with ${FLAG} = false`);
  const workload = new LegacyWorkload({
    ...DEFAULT_WORKLOAD,
    seed: SEED,
    customers: Math.max(20, Math.min(200, Math.round(BOOKINGS / 10))),
  });
  const seeded = await seedLegacy(legacyUrl, workload, BOOKINGS);
  say(
    `  legacy schema + seed: ${Object.entries(seeded.rows)
      .map(([t, c]) => `${t} ${n(c)}`)
      .join(
        ', ',
      )} (${seeded.invalid} invalid on purpose, ${seeded.bigNotes} bookings with TOASTed notes > 4 kB) in ${seeded.seconds.toFixed(1)} s`,
  );

  step('configuration and the daemon (replicator start --role all)');
  const metricsPort =
    argv['metrics-port'] !== undefined
      ? num('metrics-port', argv['metrics-port'], 0)
      : (await portFree(9464))
        ? 9464
        : 0;
  const configInput: ConfigInput = {
    source: {
      url: legacyUrl,
      tables: LEGACY_TABLES,
      slot: names.slot,
      publication: names.publication,
      heartbeatIntervalMs: 1000,
      statusIntervalMs: 500,
    },
    target: { url: targetUrl },
    kafka: {
      brokers: [kafkaBrokers(settings)],
      clientId: `${PREFIX}-replicator`,
      topicPrefix: names.rawPrefix,
      partitions: 3,
    },
    sink: { groupId: names.sinkGroup, sessionTimeoutMs: 6000 },
    cutover: {
      maxLagSeconds: 10,
      budgetSeconds: 30,
      sequences: [{ legacy: 'public.bundle_discount_id_id_seq', target: TARGET_SEQUENCE, gap: 1000 }],
      flip: [{ on: 'target', sql: `UPDATE feature_flags SET enabled = true WHERE name = '${FLAG}'` }],
      flipBack: [{ on: 'target', sql: `UPDATE feature_flags SET enabled = false WHERE name = '${FLAG}'` }],
    },
    metrics: { host: '127.0.0.1', port: metricsPort, sampleIntervalMs: 2000 },
  };
  writeFileSync(configFile, `${JSON.stringify(configInput, null, 2)}\n`);
  const config = await loadConfig(configFile, {});
  say(`  config: ${rel(configFile)}`);
  daemon.start();
  say(`  daemon: pid ${daemon.pid}, logs ${rel(daemonLog)}`);
  const port = await daemon.metricsPort();
  const metricsUrl = `http://127.0.0.1:${port}`;
  say(`  metrics: ${metricsUrl}/metrics  health: ${metricsUrl}/healthz  readiness: ${metricsUrl}/readyz`);

  const target = new pg.Client({ connectionString: targetUrl, application_name: 'replicator-demo' });
  await target.connect();
  const timeline = new Timeline(target);
  try {
    // Ready, and the initial snapshot (the seeded rows) copied.
    const t0 = Date.now();
    let lastProgress = 0;
    for (;;) {
      if (daemon.exited) throw new DemoError(`the daemon exited; see ${rel(daemonLog)}:\n${daemon.tail()}`);
      const ready = await fetch(`${metricsUrl}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      const status = await readStatus(config, { maxLagSeconds: 300 }, silentLogger());
      if (ready && status.snapshot.state === 'complete') break;
      if (Date.now() - lastProgress > 3000) {
        lastProgress = Date.now();
        const tables = status.snapshot.tables
          .map((t) => `${t.table.replace('public.', '')} ${n(t.rows)}`)
          .join(', ');
        say(
          `  starting: ${ready ? 'ready' : 'not ready yet'}, snapshot ${status.snapshot.state}${tables ? ` (${tables})` : ''}`,
        );
      }
      if (Date.now() - t0 > 180_000)
        throw new DemoError(`the daemon was not ready after 180 s; see ${rel(daemonLog)}`);
      await sleep(500);
    }
    say(`  ready; initial snapshot of the seeded rows copied in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    step(`live load: ${RATE} writes/s for ${SECONDS} s, open loop, while the replicator runs`);
    const status = new StatusLine(config, target);
    let lastLoad: IntervalStats | undefined;
    let loading = true;
    const loadStart = Date.now();
    const load = runLegacyLoad(legacyUrl, workload, {
      rate: RATE,
      durationMs: SECONDS * 1000,
      connections: 8,
      intervalMs: 1000,
      onInterval: (s) => {
        lastLoad = s;
      },
    }).finally(() => {
      loading = false;
    });
    timeline.start(() => (loading ? (lastLoad?.rate ?? null) : 0));
    const ticker = (async () => {
      await status.line(undefined, 0).catch(() => '');
      // A line every 5 s of the load (the sink's rate is over the interval since the previous line).
      for (let tick = 1; loading; tick++) {
        const at = loadStart + tick * 5000;
        while (loading && Date.now() < at) await sleep(100);
        if (!loading || daemon.exited) break;
        say(
          `  ${await status.line(lastLoad, tick * 5).catch((e: unknown) => `status unavailable: ${errText(e)}`)}`,
        );
      }
    })();
    outcome.load = await load;
    await ticker;
    if (daemon.exited)
      throw new DemoError(`the daemon exited during the load; see ${rel(daemonLog)}:\n${daemon.tail()}`);
    for (const line of describeLoad(outcome.load)) say(`  ${line}`);
    if (outcome.load.failed > 0) throw new DemoError(`${outcome.load.failed} legacy writes failed`);

    // Caught up: the sink has applied (heartbeats included) past the legacy WAL position at the end of the load.
    const endLsn = await withClient(
      legacyUrl,
      async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l,
    );
    const c0 = Date.now();
    for (;;) {
      const r = await target.query<{ ok: boolean }>(
        'SELECT commit_lsn >= $2::pg_lsn AS ok FROM replicator.applied WHERE group_id = $1',
        [names.sinkGroup, endLsn],
      );
      if (r.rows[0]?.ok) break;
      if (daemon.exited) throw new DemoError(`the daemon exited; see ${rel(daemonLog)}:\n${daemon.tail()}`);
      if (Date.now() - c0 > 180_000)
        throw new DemoError(`the pipeline did not catch up with ${endLsn} in 180 s`);
      await sleep(200);
    }
    say(
      `  caught up: every change up to legacy LSN ${endLsn} applied to V2 ${((Date.now() - c0) / 1000).toFixed(1)} s after the load stopped`,
    );
    await timeline.stop();
    outcome.timeline = timeline.samples;
    say(`  ${await status.line(undefined, (Date.now() - loadStart) / 1000)}`);

    step('verify (replicator verify): V2 against what the transforms make of a legacy snapshot');
    say(`  $ ${CLI} verify --config ${rel(configFile)}`);
    const v = await runCli(['verify', '--config', configFile, '--json']);
    let report: VerifyReport | undefined;
    try {
      report = JSON.parse(v.stdout) as VerifyReport;
    } catch {}
    if (!report) throw new DemoError(`verify failed (exit ${v.code}): ${cliError(v)}`);
    outcome.verify = report;
    say(
      `  ${report.clean ? 'CLEAN' : 'DRIFT'}: ${n(report.legacyRows)} legacy rows against ${n(report.targetRows)} V2 rows in ${report.seconds.toFixed(1)} s (${n(Math.round(report.rowsPerSecond))} legacy rows/s), snapshot ${report.snapshotLsn}`,
    );
    for (const e of report.entities) {
      const drift = e.missing + e.extra + e.different;
      say(
        `    ${e.entity.padEnd(18)} expected ${n(e.expected).padStart(6)}  actual ${n(e.actual).padStart(6)}  drift ${drift}${e.inFlux ? `  in flux ${e.inFlux}` : ''}`,
      );
    }
    for (const t of report.legacy) {
      const rejected = Object.entries(t.rejected);
      if (rejected.length === 0) continue;
      say(
        `    unmigrated ${t.table}: ${rejected.map(([k, c]) => `${k} ${c}`).join(', ')} (rejected by the transforms: in the DLQ)`,
      );
    }
    if (!report.clean || v.code !== 0) {
      const drift = report.entities.reduce((s, e) => s + e.missing + e.extra + e.different, 0);
      throw new DemoError(
        `verify found drift in ${drift} V2 row(s) (run ${report.runId}); see \`${CLI} verify --config ${rel(configFile)}\``,
      );
    }

    step('cutover (replicator cutover): go/no-go, fence legacy writes, exact drain, final verify, flip');
    say(
      `  $ ${CLI} cutover --config ${rel(configFile)} --allow-dlq   (the workload writes invalid rows on purpose)`,
    );
    const cut = await runCli(['cutover', '--config', configFile, '--allow-dlq'], (line) => {
      if (!line.trim()) return;
      if (line.startsWith('{')) {
        try {
          const j = JSON.parse(line) as {
            phase?: string;
            id?: string;
            writeBlockedMs?: number;
            level?: unknown;
          };
          if (j.phase && j.id) {
            outcome.cutover = {
              id: j.id,
              phase: j.phase,
              ...(j.writeBlockedMs !== undefined ? { writeBlockedMs: j.writeBlockedMs } : {}),
            };
            return;
          }
          if (j.level !== undefined) return; // a log line
        } catch {}
      }
      const phase = /^\[cutover \w+\] (\w[\w-]*)/.exec(line)?.[1];
      if (phase && ((CUTOVER_PHASES as readonly string[]).includes(phase) || phase === 'aborted'))
        outcome.phases.push(phase);
      say(`  ${line}`);
    });
    if (cut.code !== 0 || outcome.cutover?.phase !== 'flipped') {
      throw new DemoError(`cutover did not flip (exit ${cut.code}): ${cliError(cut)}`);
    }
    const after = await withClient(targetUrl, async (c) => ({
      flag: (await c.query<{ enabled: boolean }>('SELECT enabled FROM feature_flags WHERE name = $1', [FLAG]))
        .rows[0]?.enabled,
      seq: (await c.query<{ v: string }>(`SELECT last_value::text AS v FROM ${TARGET_SEQUENCE}`)).rows[0]!.v,
    }));
    const legacySeq = await withClient(
      legacyUrl,
      async (c) =>
        (await c.query<{ v: string }>('SELECT last_value::text AS v FROM bundle_discount_id_id_seq')).rows[0]!
          .v,
    );
    say(
      `  after the flip: ${FLAG} = ${after.flag}; ${TARGET_SEQUENCE} = ${after.seq} (legacy bundle_discount_id_id_seq ${legacySeq} + gap 1000)`,
    );
    const fenced = await withClient(legacyUrl, async (c) =>
      c.query(`UPDATE bookings SET "updatedAt" = now() WHERE id = (SELECT id FROM bookings LIMIT 1)`).then(
        () => 'ACCEPTED (not fenced!)',
        (e: unknown) => errText(e),
      ),
    );
    say(`  a legacy write now: ${fenced}`);
    if (!fenced.includes(FENCE_ERROR_PREFIX))
      throw new DemoError('legacy accepted a write after the flip: the fence is missing');

    // Read before the daemon stops (the status of a stopped daemon would say so, not what it did).
    const finalCounts = await v2Counts(target);
    const legacyCounts = await withClient(legacyUrl, legacyRowCounts);
    const dead = await listDeadLetters(
      createKafka(config.kafka, silentLogger(), `${PREFIX}-demo-dlq`),
      dlqTopic(names.rawPrefix),
    );

    step('stop the daemon, finalize (drop the slot and the publication)');
    await daemon.stop();
    say('  daemon stopped (SIGTERM: flushed, acknowledged, committed)');
    say(`  $ ${CLI} finalize --config ${rel(configFile)}`);
    for (let i = 0; i < 100; i++) {
      const active = await withClient(
        settings.pgUrl,
        async (c) =>
          (
            await c.query<{ a: boolean }>(
              'SELECT active AS a FROM pg_replication_slots WHERE slot_name = $1',
              [names.slot],
            )
          ).rows[0]?.a,
      );
      if (!active) break;
      await sleep(100);
    }
    const fin = await runCli(['finalize', '--config', configFile], (line) => {
      if (line.trim() && !line.startsWith('{')) say(`  ${line}`);
    });
    if (fin.code !== 0) throw new DemoError(`finalize failed: ${cliError(fin)}`);

    step('summary');
    const prometheus = await prometheusStatus(settings.prometheus);
    summary(outcome, {
      finalCounts,
      legacyCounts,
      dead,
      metricsUrl,
      prometheus,
      flag: after.flag,
      seq: after.seq,
    });
  } finally {
    await timeline.stop();
    await target.end().catch(() => {});
  }
}

function summary(
  o: Outcome,
  x: {
    finalCounts: Record<string, number>;
    legacyCounts: Record<string, number>;
    dead: Awaited<ReturnType<typeof listDeadLetters>>;
    metricsUrl: string;
    prometheus: PrometheusStatus;
    flag: boolean | undefined;
    seq: string;
  },
): void {
  const load = o.load!;
  const verify = o.verify!;
  const cut = o.cutover!;
  say(
    `legacy rows (now fenced): ${Object.entries(x.legacyCounts)
      .map(([t, c]) => `${t} ${n(c)}`)
      .join(', ')}`,
  );
  say(`V2 rows: ${ENTITIES.map((e) => `${e} ${n(x.finalCounts[e]!)}`).join(', ')}`);
  say(
    `live load: ${n(load.committed)} writes at ${load.achievedRate.toFixed(1)}/s (offered ${load.offeredRate}/s, open loop), commit latency p50 ${load.latency.p50.toFixed(1)} ms, p99 ${load.latency.p99.toFixed(1)} ms`,
  );
  for (const line of timelineChart(o.timeline ?? [])) say(line);
  const drift = verify.entities.reduce((s, e) => s + e.missing + e.extra + e.different, 0);
  say(
    `verify: ${verify.clean ? 'CLEAN' : 'DRIFT'} — ${n(verify.targetRows)} V2 rows match ${n(verify.legacyRows)} legacy rows (${drift} drift; run ${verify.runId})`,
  );
  say(
    `cutover: ${cut.phase} (${o.phases.join(' → ')}); write-blocked window ${cut.writeBlockedMs === undefined ? '?' : `${cut.writeBlockedMs.toFixed(0)} ms`}; ${FLAG} = ${x.flag}; ${TARGET_SEQUENCE} = ${x.seq}`,
  );
  const byCode = new Map<string, { count: number; sample: string }>();
  for (const d of x.dead) {
    const e = byCode.get(d.code) ?? { count: 0, sample: d.message };
    e.count++;
    byCode.set(d.code, e);
  }
  say(
    `dead-letter queue: ${x.dead.length} message(s) in ${dlqTopic(names.rawPrefix)} (the workload's invalid rows, on purpose)`,
  );
  for (const [code, e] of [...byCode].sort((a, b) => b[1].count - a[1].count)) {
    say(
      `  ${code.padEnd(28)} ${String(e.count).padStart(4)}  e.g. ${e.sample.length > 90 ? `${e.sample.slice(0, 87)}...` : e.sample}`,
    );
  }
  say(`  look: ${CLI} dlq list --config ${rel(configFile)}`);
  say('metrics and dashboards:');
  say(`  the daemon served ${x.metricsUrl}/metrics during the run (${rel(daemonLog)} has its logs)`);
  if (x.prometheus.answering) {
    const scraped = settings.prometheus.targets.includes(new URL(x.metricsUrl).host);
    say(
      `  Prometheus of the local stack: ${x.prometheus.url} (alert rules: observability/prometheus/alerts.yml), scraping ${settings.prometheus.targets.join(', ')}${scraped ? ' — it recorded this run: try replicator_replication_lag_seconds or rate(replicator_sink_messages_total[1m])' : ` — not this run's daemon (${new URL(x.metricsUrl).host})`}`,
    );
  } else {
    say(
      `  no local Prometheus answers at ${x.prometheus.url} (\`npm run stack -- up\` starts one when the prometheus binary is installed)`,
    );
  }
  say(
    '  Grafana (dashboards in observability/grafana) comes with the Docker stack: `docker compose up` (docker-compose.yml) →',
  );
  say(
    "    Grafana http://127.0.0.1:3000, Prometheus http://127.0.0.1:9090 — its own replicator and databases, not this demo's (`npm run stack -- down` first: both use 9090)",
  );
  say('look at the databases (left in place):');
  say(
    `  psql ${redactUrl(dbUrl(names.targetDb))} -c 'SELECT email, total_bookings, total_spent FROM users ORDER BY total_bookings DESC LIMIT 5'`,
  );
  say(
    `  psql ${redactUrl(dbUrl(names.targetDb))} -c 'SELECT id, phase, write_blocked_ms FROM replicator.cutovers'`,
  );
  say(`  psql ${redactUrl(dbUrl(names.legacyDb))} -c 'SELECT status, count(*) FROM bookings GROUP BY 1'`);
  say('clean up:');
  say(
    `  npm run demo -- --clean${PREFIX === 'demo' ? '' : ` --prefix ${PREFIX}`}     (drops ${names.legacyDb}, ${names.targetDb}, the slot, the ${PREFIX}.* topics and groups)`,
  );
  say(
    `  or by hand: psql ${redactUrl(settings.pgUrl)} -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${names.slot}'" \\`,
  );
  say(
    `               -c 'DROP DATABASE ${names.legacyDb} WITH (FORCE)' -c 'DROP DATABASE ${names.targetDb} WITH (FORCE)'   (the ${PREFIX}.* topics stay)`,
  );
  say('  npm run stack -- down     (stops the broker and Prometheus the stack started)');
  say(`\ndemo OK in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

// ---------------------------------------------------------------------------------------------------------------

let stopping = false;
async function interrupted(signal: NodeJS.Signals) {
  if (stopping) process.exit(130);
  stopping = true;
  console.error(`\ndemo: ${signal}: stopping the daemon`);
  await daemon.stop().catch(() => {});
  process.exit(130);
}
process.on('SIGINT', (s) => void interrupted(s));
process.on('SIGTERM', (s) => void interrupted(s));

async function main(): Promise<number> {
  if (argv.clean) {
    mkdirSync(dir, { recursive: true });
    await clean((l) => say(l));
    rmSync(dir, { recursive: true, force: true });
    say(`demo (${PREFIX}) cleaned up; \`npm run stack -- down\` stops the local broker and Prometheus`);
    return 0;
  }
  try {
    await demo();
    return 0;
  } catch (e) {
    console.error(`\ndemo FAILED: ${errText(e)}`);
    if (!(e instanceof DemoError) && e instanceof Error && e.stack) console.error(e.stack);
    if (daemon.pid !== undefined) console.error(`daemon logs: ${rel(daemonLog)}`);
    await daemon.stop().catch(() => {});
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`demo FAILED: ${errText(e)}`);
    process.exit(1);
  },
);
