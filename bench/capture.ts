import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { quoteIdent } from '../src/core/sql.js';
import { benchStack, createBenchRows, dbUrl, insertBenchRows, runCaptureWorker } from './bench-env.js';
import { fmt, numberArg, report, stats } from './bench-report.js';

/**
 * `npm run bench:capture [-- --rows N --runs R]`: changes/s from the slot into Kafka, beside pg_recvlogical
 * (PostgreSQL's own client: the decoding limit) on the same WAL. Both slots are created before the rows are
 * written, then each drains the same backlog alone. Second mode: one 1,000,000-row transaction, peak RSS.
 */
const run = promisify(execFile);
const ROWS = numberArg('rows', 500_000);
const RUNS = numberArg('runs', 3);
const BIG_TX_ROWS = numberArg('big-tx-rows', 1_000_000);
const HEAP_MB = numberArg('heap-mb', 160);

const { admin, pgVersion } = await benchStack();

async function oneRun(i: number, mode: 'backlog' | 'big-tx') {
  const name = `bench_capture_${process.pid}_${i}`;
  await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  const url = dbUrl(name);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await createBenchRows(c, 'bench_pub');
    await c.query("SELECT pg_create_logical_replication_slot('bench_src', 'pgoutput')");
    await c.query("SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')");
    const rows = mode === 'backlog' ? ROWS : BIG_TX_ROWS;
    await insertBenchRows(c, 1, rows, mode === 'backlog' ? 1000 : rows);
    const end = (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;

    // pg_recvlogical first, then ours, each alone on the machine.
    const t0 = process.hrtime.bigint();
    await run('pg_recvlogical', [
      '-d',
      url,
      '--slot',
      'bench_recv',
      '--start',
      '--endpos',
      end,
      '--no-loop',
      '-o',
      'proto_version=1',
      '-o',
      'publication_names=bench_pub',
      '-f',
      '/dev/null',
    ]);
    const recvSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

    const worker = await runCaptureWorker({
      url,
      slot: 'bench_src',
      publication: 'bench_pub',
      tables: ['public.bench_rows'],
      topicPrefix: `bench${process.pid}x${i}`,
      partitions: 6,
      endLsn: end,
      heapMb: HEAP_MB,
    });
    return { rows, recvSeconds, ...worker, topicPrefix: `bench${process.pid}x${i}` };
  } finally {
    await c.end();
    await admin.query(`DROP DATABASE ${quoteIdent(name)} WITH (FORCE)`);
  }
}

const backlog = [];
for (let i = 0; i < RUNS; i++) {
  const r = await oneRun(i, 'backlog');
  const line = `run ${i + 1}/${RUNS}: source ${fmt(r.rows / r.seconds)} changes/s, pg_recvlogical ${fmt(r.rows / r.recvSeconds)} changes/s, peak RSS ${fmt(r.peakRssMb)} MB`;
  console.log(line);
  backlog.push(r);
}
const bigTx = [];
for (let i = 0; i < RUNS; i++) {
  const r = await oneRun(100 + i, 'big-tx');
  console.log(
    `1M-row transaction run ${i + 1}/${RUNS}: ${fmt(r.rows / r.seconds)} changes/s, peak RSS ${fmt(r.peakRssMb)} MB`,
  );
  bigTx.push(r);
}
await admin.end();

const capture = stats(backlog.map((r) => r.rows / r.seconds));
const recv = stats(backlog.map((r) => r.rows / r.recvSeconds));
const ratio = stats(backlog.map((r) => r.recvSeconds / r.seconds));
const rss = stats(backlog.map((r) => r.peakRssMb));
const bigRss = stats(bigTx.map((r) => r.peakRssMb));
const bigRate = stats(bigTx.map((r) => r.rows / r.seconds));
const span = (s: { min: number; max: number }, d = 0) => `${fmt(s.min, d)}–${fmt(s.max, d)}`;
report({
  title: `Capture: slot → Kafka vs pg_recvlogical (${fmt(ROWS)} rows, ~200 B, ${RUNS} runs)`,
  command: `npm run bench:capture -- --rows ${ROWS} --runs ${RUNS}`,
  pgVersion,
  table: [
    ['figure', 'median', 'spread (min–max)'],
    ['capture rate, changes/s (source → Kafka, acks=all)', fmt(capture.median), span(capture)],
    ['pg_recvlogical, changes/s (physical limit, same WAL)', fmt(recv.median), span(recv)],
    ['ratio capture / pg_recvlogical (target ≥ 0.5)', fmt(ratio.median, 2), span(ratio, 2)],
    ['peak RSS of the source process, MB', fmt(rss.median), span(rss)],
    [
      `one ${fmt(BIG_TX_ROWS)}-row transaction: peak RSS, MB (target < 256)`,
      fmt(bigRss.median),
      span(bigRss),
    ],
    [`one ${fmt(BIG_TX_ROWS)}-row transaction: changes/s`, fmt(bigRate.median), span(bigRate)],
  ],
  notes: [
    'Both slots are created before the rows are written; pg_recvlogical (pgoutput, -f /dev/null) and the source then drain the same backlog one after the other.',
    `The source runs with --max-old-space-size=${HEAP_MB} (the heap cap recommended for the daemon).`,
    'The source time runs from leadership (lock taken, before preflight and topic creation) to the moment its durable (Kafka-acknowledged) LSN reaches the end of the writes.',
  ],
});
console.log(
  JSON.stringify({
    captureRate: Math.round(capture.median),
    recvlogicalRate: Math.round(recv.median),
    ratio: Number(ratio.median.toFixed(3)),
    peakRssMb: Math.round(rss.median),
    bigTxPeakRssMb: Math.round(bigRss.median),
    bigTxRate: Math.round(bigRate.median),
  }),
);
