import pg from 'pg';
import { LegacyWorkload } from '../src/workload/legacy-workload.js';
import {
  benchStack,
  Daemon,
  freePort,
  freshBenchEnv,
  histogramQuantile,
  percentile,
  sleep,
} from './bench-env.js';
import { fmt, numberArg, report, stats } from './bench-report.js';

/**
 * `npm run bench:e2e`: legacy commit → V2 applied, through the source, Kafka and the sink (transforms in process).
 * - maximum sustained rate: a backlog of N booking inserts written while the daemon is stopped (its slot exists),
 *   then drained: changes/s until every one is applied, beside the capture rate (slot → Kafka) of the same run;
 * - latency at fixed offered loads (open loop: each insert is issued on schedule whatever earlier ones took):
 *   commit (as the client saw it) → applied (the sink's clock_timestamp in replicator.lineage), p50 and p99,
 *   and the same changes per hop from the daemon's replicator_stage_latency_seconds histogram: capture (legacy
 *   commit → produced to Kafka), queue (→ fetched by the sink), apply (→ committed in the target).
 */
const HOPS = ['capture', 'queue', 'apply'] as const;
const BACKLOG = numberArg('backlog', 20_000);
const RUNS = numberArg('runs', 3);
const SECONDS = numberArg('seconds', 10);
/** `--loads 1000,2000`: the offered loads of the latency runs; `--backlog 0` skips the max-rate runs. */
const LOADS = process.argv.includes('--loads')
  ? process.argv[process.argv.indexOf('--loads') + 1]!.split(',').map(Number)
  : [1000, 2000, 5000];
/**
 * `--identity default`: the legacy tables keep PostgreSQL's default replica identity instead of the shipped FULL,
 * so the sink keeps its TOAST image store (replicator.toast_images) — its cost, beside a FULL run.
 */
const IDENTITY = process.argv.includes('--identity')
  ? process.argv[process.argv.indexOf('--identity') + 1]!
  : 'full';
const ONLY_MAX = process.argv.includes('--max-only');

async function setIdentity(legacyUrl: string) {
  if (IDENTITY === 'full') return;
  const c = new pg.Client({ connectionString: legacyUrl });
  await c.connect();
  try {
    for (const t of ['bookings', 'customers_kv', 'bundle_discount_id', 'ai_fbt_bundles'])
      await c.query(`ALTER TABLE public.${t} REPLICA IDENTITY DEFAULT`);
  } finally {
    await c.end();
  }
}

const { admin, pgVersion } = await benchStack();

async function count(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return Number(
      (
        await c.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM replicator.lineage WHERE source_table = 'public.bookings'",
        )
      ).rows[0]!.n,
    );
  } finally {
    await c.end();
  }
}

async function waitFor(cond: () => Promise<boolean>, maxMs: number, what: string) {
  const deadline = Date.now() + maxMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function slotConfirmed(legacyUrl: string, slot: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: legacyUrl });
  await c.connect();
  try {
    return (
      (
        await c.query<{ l: string | null }>(
          'SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        )
      ).rows[0]?.l ?? null
    );
  } finally {
    await c.end();
  }
}

const lsnNum = (l: string) => {
  const [h, lo] = l.split('/') as [string, string];
  return (BigInt(`0x${h}`) << 32n) | BigInt(`0x${lo}`);
};

async function maxRateRun(i: number) {
  const env = await freshBenchEnv(admin, `e2emax${i}`);
  await setIdentity(env.legacyUrl);
  const slot = (env.config.source as { slot: string }).slot;
  const daemon = new Daemon(env.configFile);
  try {
    daemon.start();
    // The daemon creates its slot and topics, then goes idle; stop it to build a backlog behind the slot.
    await waitFor(async () => (await slotConfirmed(env.legacyUrl, slot)) !== null, 60_000, 'the slot');
    await sleep(3000);
    await daemon.stop();
    const w = new LegacyWorkload({ seed: i, customers: 2000, shops: 3, invalidShare: 0, bigNotesBytes: 0 });
    const c = new pg.Client({ connectionString: env.legacyUrl });
    await c.connect();
    for (let n = 0; n < BACKLOG; n += 500) {
      const batch = Array.from({ length: Math.min(500, BACKLOG - n) }, () => w.insertBooking());
      await c.query('BEGIN');
      for (const b of batch) await c.query(b.sql, b.params);
      await c.query('COMMIT');
    }
    const end = (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
    await c.end();
    const startLsn = lsnNum((await slotConfirmed(env.legacyUrl, slot))!);
    daemon.start();
    // Clocks start at the first sign of work (the slot moving; the first row applied), not at process start.
    let captureStart: number | undefined;
    let captured: number | undefined;
    let applyStart: { at: number; n: number } | undefined;
    await waitFor(
      async () => {
        const l = await slotConfirmed(env.legacyUrl, slot);
        if (captureStart === undefined && l && lsnNum(l) > startLsn) captureStart = Date.now();
        if (captured === undefined && l && lsnNum(l) >= lsnNum(end)) captured = Date.now();
        const n = await count(env.targetUrl);
        if (applyStart === undefined && n > 0) applyStart = { at: Date.now(), n };
        return n >= BACKLOG;
      },
      600_000,
      'the backlog to be applied',
    );
    const applied = Date.now();
    const a = applyStart!;
    return {
      e2eRate: (BACKLOG - a.n) / Math.max(0.001, (applied - a.at) / 1000),
      captureRate: BACKLOG / Math.max(0.001, ((captured ?? applied) - (captureStart ?? applied)) / 1000),
    };
  } finally {
    await daemon.stop();
    await env.drop();
  }
}

async function latencyRun(load: number, i: number) {
  const env = await freshBenchEnv(admin, `e2elat${load}_${i}`);
  await setIdentity(env.legacyUrl);
  const slot = (env.config.source as { slot: string }).slot;
  const daemon = new Daemon(env.configFile, 'all', await freePort());
  const pool = new pg.Pool({ connectionString: env.legacyUrl, max: 24 });
  try {
    daemon.start();
    await waitFor(async () => (await slotConfirmed(env.legacyUrl, slot)) !== null, 60_000, 'the slot');
    await sleep(3000);
    const w = new LegacyWorkload({
      seed: load + i,
      customers: 2000,
      shops: 3,
      invalidShare: 0,
      bigNotesBytes: 0,
    });
    const committed = new Map<string, number>();
    const pending: Promise<unknown>[] = [];
    let late = 0;
    const start = Date.now();
    const total = load * SECONDS;
    for (let n = 0; n < total; n++) {
      const due = start + (n * 1000) / load;
      const now = Date.now();
      if (due > now) await sleep(due - now);
      else if (now - due > 100) late++;
      const write = w.insertBooking();
      const id = write.params[0] as string;
      pending.push(pool.query(write.sql, write.params).then(() => committed.set(id, Date.now())));
    }
    await Promise.all(pending);
    const offered = total / ((Date.now() - start) / 1000);
    await waitFor(async () => (await count(env.targetUrl)) >= total, 600_000, 'all writes applied');
    const c = new pg.Client({ connectionString: env.targetUrl });
    await c.connect();
    const { rows } = await c.query<{ key: string; at: string }>(
      "SELECT source_key AS key, (extract(epoch FROM applied_at) * 1000)::float8::text AS at FROM replicator.lineage WHERE source_table = 'public.bookings'",
    );
    await c.end();
    const lat = rows
      .map((r) => Number(r.at) - (committed.get((JSON.parse(r.key) as { id: string }).id) ?? Number.NaN))
      .filter((x) => Number.isFinite(x))
      .sort((a, b) => a - b);
    const text = await daemon.metrics();
    const hops = Object.fromEntries(
      HOPS.map((h) => [
        h,
        {
          p50: histogramQuantile(text, 'replicator_stage_latency_seconds', `stage="${h}"`, 0.5) * 1000,
          p99: histogramQuantile(text, 'replicator_stage_latency_seconds', `stage="${h}"`, 0.99) * 1000,
        },
      ]),
    ) as Record<(typeof HOPS)[number], { p50: number; p99: number }>;
    return { p50: percentile(lat, 50), p99: percentile(lat, 99), offered, late, hops };
  } finally {
    await pool.end();
    await daemon.stop();
    await env.drop();
  }
}

const maxRuns = [];
for (let i = 0; i < (BACKLOG > 0 ? RUNS : 0); i++) {
  const r = await maxRateRun(i);
  console.log(
    `max-rate run ${i + 1}/${RUNS}: end-to-end ${fmt(r.e2eRate)} changes/s, capture ${fmt(r.captureRate)} changes/s`,
  );
  maxRuns.push(r);
}
type LatencyRun = Awaited<ReturnType<typeof latencyRun>>;
const latency = new Map<number, LatencyRun[]>();
for (const load of ONLY_MAX ? [] : LOADS) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await latencyRun(load, i);
    console.log(
      `${load}/s run ${i + 1}/${RUNS}: offered ${fmt(r.offered)}/s, p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms; ${HOPS.map((h) => `${h} ${fmt(r.hops[h].p50)}/${fmt(r.hops[h].p99)}`).join(', ')} ms (p50/p99)`,
    );
    runs.push(r);
  }
  latency.set(load, runs);
}
await admin.end();

const span = (s: { min: number; max: number }, d = 0) => `${fmt(s.min, d)}–${fmt(s.max, d)}`;
const table = [['figure', 'median', 'spread (min–max)']];
const json: Record<string, number> = {};
if (maxRuns.length > 0) {
  const e2e = stats(maxRuns.map((r) => r.e2eRate));
  const cap = stats(maxRuns.map((r) => r.captureRate));
  table.push(
    [
      `max sustained end-to-end rate, changes/s (backlog of ${fmt(BACKLOG)} inserts; target ≥ 20,000)`,
      fmt(e2e.median),
      span(e2e),
    ],
    ['capture rate in the same runs, changes/s (slot → Kafka)', fmt(cap.median), span(cap)],
  );
  json.e2eMaxRate = Math.round(e2e.median);
  json.captureRate = Math.round(cap.median);
}
for (const [load, runs] of latency) {
  const p50 = stats(runs.map((r) => r.p50));
  const p99 = stats(runs.map((r) => r.p99));
  const offered = stats(runs.map((r) => r.offered));
  table.push([
    `commit → applied p50 at ${fmt(load)}/s offered (achieved ${fmt(offered.median)}/s), ms`,
    fmt(p50.median),
    span(p50),
  ]);
  table.push([
    `commit → applied p99 at ${fmt(load)}/s offered, ms${load === 2000 ? ' (target < 250)' : ''}`,
    fmt(p99.median),
    span(p99),
  ]);
  json[`p50At${load}`] = Math.round(p50.median);
  json[`p99At${load}`] = Math.round(p99.median);
  for (const h of HOPS) {
    const hp50 = stats(runs.map((r) => r.hops[h].p50));
    const hp99 = stats(runs.map((r) => r.hops[h].p99));
    table.push([
      `  hop ${h} at ${fmt(load)}/s: p50 / p99, ms (from the stage histogram's buckets)`,
      `${fmt(hp50.median)} / ${fmt(hp99.median)}`,
      `${span(hp50)} / ${span(hp99)}`,
    ]);
    json[`${h}P99At${load}`] = Math.round(hp99.median);
  }
}
report({
  title: `End to end: legacy commit → V2 applied (${RUNS} runs each; replica identity ${IDENTITY})`,
  command: `npm run bench:e2e -- --backlog ${BACKLOG} --runs ${RUNS} --seconds ${SECONDS}${IDENTITY === 'full' ? '' : ` --identity ${IDENTITY}`}${ONLY_MAX ? ' --max-only' : ''}${process.argv.includes('--loads') ? ` --loads ${LOADS.join(',')}` : ''}`,
  pgVersion,
  table,
  notes: [
    'The daemon runs as one process (`replicator start --role all`, --max-old-space-size=256) beside PostgreSQL and the broker on the same 2 cores; the load generator is a fourth process.',
    'Each change is a booking insert: one raw event → its transform in the sink → booking + payment + user recompute, in a share of one target transaction.',
    'Hop quantiles are interpolated within the histogram buckets (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 … s), as Prometheus’s histogram_quantile does.',
    `Latency runs offer the load for ${SECONDS} s from 24 connections, open loop; "achieved" is what the generator managed to issue.`,
  ],
});
console.log(JSON.stringify(json));
