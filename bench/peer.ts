import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTopics } from '../src/core/kafka-topics.js';
import { kafkaBrokers } from '../src/stack/stack.js';
import {
  type CaptureRun,
  createBenchRows,
  insertBenchRows,
  runCaptureWorker,
  settings,
  sleep,
} from './bench-env.js';
import { fmt, numberArg, report, stats } from './bench-report.js';
import { besideDebezium, DEBEZIUM_VERSION, startDebezium } from './debezium-connect.js';

/**
 * `npm run bench:peer [-- --rows N --rounds R]`: this source and Debezium's PostgreSQL connector (Kafka Connect
 * standalone, stock settings, JSON without schemas, acks=all) drain the same backlog from their own slots into
 * the same broker, alternating which goes first, R rounds. Debezium is timed from its task's start (its JVM's
 * start-up excluded), ours from leadership; both until Kafka has acknowledged the last change.
 */
const ROWS = numberArg('rows', 500_000);
const ROUNDS = numberArg('rounds', 5);
const HEAP_MB = numberArg('heap-mb', 160);
const PARTITIONS = 6;

const side = await besideDebezium('bench_peer');
const { pgVersion, libs, kafkaAdmin, url, client: c } = side;
await createBenchRows(c, 'bench_pub');

interface PeerRun {
  rate: number;
  /** Rate from the process's start (JVM or Node), for what a restart costs. */
  rateFromStart: number;
  cpuSeconds: number;
  peakRssMb: number;
}

async function debezium(round: number): Promise<PeerRun> {
  const prefix = `peerdbz${process.pid}x${round}`;
  const topic = `${prefix}.public.bench_rows`;
  // The broker refuses auto-creation, and creating it inside the timing would cost Debezium.
  await ensureTopics(kafkaAdmin, [{ topic, partitions: PARTITIONS, replicationFactor: 1 }]);
  const started = Date.now();
  const run = await startDebezium({
    libs,
    dir: mkdtempSync(join(tmpdir(), 'bench-debezium-')),
    brokers: kafkaBrokers(settings),
    pgUrl: url,
    slot: `peer_dbz_${round}`,
    publication: 'bench_pub',
    tables: ['public.bench_rows'],
    topicPrefix: prefix,
  });
  try {
    const deadline = Date.now() + 15 * 60_000;
    for (;;) {
      run.usage();
      const offsets = await kafkaAdmin.fetchTopicOffsets(topic);
      if (offsets.reduce((n, p) => n + Number(p.high), 0) >= ROWS) break;
      if (Date.now() > deadline) throw new Error(`Debezium did not finish in 15 min; see ${run.log}`);
      await sleep(20);
    }
    const done = Date.now();
    const { cpuSeconds, peakRssMb } = run.usage();
    const taskStart = run.taskStartedAt();
    if (taskStart === undefined) throw new Error(`no task start in ${run.log}`);
    return {
      rate: ROWS / ((done - taskStart) / 1000),
      rateFromStart: ROWS / ((done - started) / 1000),
      cpuSeconds,
      peakRssMb,
    };
  } finally {
    await run.stop();
    await kafkaAdmin.deleteTopics({ topics: [topic] }).catch(() => {});
  }
}

async function ours(round: number, endLsn: string): Promise<PeerRun> {
  const prefix = `peerours${process.pid}x${round}`;
  const r: CaptureRun = await runCaptureWorker({
    url,
    slot: `peer_src_${round}`,
    publication: 'bench_pub',
    tables: ['public.bench_rows'],
    topicPrefix: prefix,
    partitions: PARTITIONS,
    endLsn,
    heapMb: HEAP_MB,
  });
  const topics = (await kafkaAdmin.listTopics()).filter((t) => t.startsWith(prefix));
  await kafkaAdmin.deleteTopics({ topics }).catch(() => {});
  return {
    rate: ROWS / r.seconds,
    rateFromStart: ROWS / r.totalSeconds,
    cpuSeconds: r.cpuSeconds,
    peakRssMb: r.peakRssMb,
  };
}

const rounds: { ours: PeerRun; debezium: PeerRun }[] = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    // Both slots exist before the writes, so both read the same WAL.
    await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [`peer_dbz_${i}`]);
    await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [`peer_src_${i}`]);
    await insertBenchRows(c, i * ROWS + 1, (i + 1) * ROWS, 1000);
    const end = (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
    await c.query('CHECKPOINT');
    let d: PeerRun;
    let o: PeerRun;
    // Alternate which drains first: the second one reads a WAL the first already brought into the page cache.
    if (i % 2 === 0) {
      d = await debezium(i);
      o = await ours(i, end);
    } else {
      o = await ours(i, end);
      d = await debezium(i);
    }
    for (const slot of [`peer_dbz_${i}`, `peer_src_${i}`])
      await c.query('SELECT pg_drop_replication_slot($1)', [slot]);
    rounds.push({ ours: o, debezium: d });
    console.log(
      `round ${i + 1}/${ROUNDS} (${i % 2 === 0 ? 'Debezium first' : 'ours first'}): ours ${fmt(o.rate)}/s ` +
        `(${fmt(o.cpuSeconds, 1)} CPU s, ${fmt(o.peakRssMb)} MB), Debezium ${fmt(d.rate)}/s ` +
        `(${fmt(d.cpuSeconds, 1)} CPU s, ${fmt(d.peakRssMb)} MB), ratio ${fmt(o.rate / d.rate, 2)}`,
    );
  }
} finally {
  await side.close();
}

const pick = (f: (r: PeerRun) => number) => ({
  ours: stats(rounds.map((r) => f(r.ours))),
  debezium: stats(rounds.map((r) => f(r.debezium))),
});
const rate = pick((r) => r.rate);
const fromStart = pick((r) => r.rateFromStart);
const cpuUs = pick((r) => (r.cpuSeconds / ROWS) * 1e6);
const rss = pick((r) => r.peakRssMb);
const ratio = stats(rounds.map((r) => r.ours.rate / r.debezium.rate));
const span = (s: { min: number; max: number }, d = 0) => `${fmt(s.min, d)}–${fmt(s.max, d)}`;
const row = (
  name: string,
  s: { ours: ReturnType<typeof stats>; debezium: ReturnType<typeof stats> },
  d = 0,
) => [
  name,
  `${fmt(s.ours.median, d)} (${span(s.ours, d)})`,
  `${fmt(s.debezium.median, d)} (${span(s.debezium, d)})`,
];
report({
  title: `Capture beside Debezium ${DEBEZIUM_VERSION}: same backlog of ${fmt(ROWS)} rows, ${ROUNDS} alternating rounds`,
  command: `npm run bench:peer -- --rows ${ROWS} --rounds ${ROUNDS}`,
  pgVersion,
  table: [
    ['figure (median, min–max)', 'this source', `Debezium ${DEBEZIUM_VERSION} (stock)`],
    row('changes/s into Kafka (acks=all)', rate),
    row('changes/s counting process start-up', fromStart),
    row('CPU µs per change (whole process)', cpuUs, 1),
    row('peak RSS, MB', rss),
    ['ratio this source / Debezium (target ≥ 2.0)', fmt(ratio.median, 2), span(ratio, 2)],
    ...rounds.map((r, i) => [
      `round ${i + 1} (${i % 2 === 0 ? 'Debezium first' : 'ours first'})`,
      `${fmt(r.ours.rate)}/s`,
      `${fmt(r.debezium.rate)}/s`,
    ]),
  ],
  notes: [
    `Debezium: io.debezium:debezium-connector-postgres:${DEBEZIUM_VERSION} in Kafka Connect 4.3.0 standalone (JVM -Xmx1g), JsonConverter with schemas.enable=false, producer.acks=all, plugin.discovery=service_load, pgoutput, snapshot.mode=no_data, decimal.handling.mode=string; otherwise stock. Its topic (${PARTITIONS} partitions) is created before it starts.`,
    `This source: --max-old-space-size=${HEAP_MB}, ${PARTITIONS} partitions, idempotent acks=all producer, JSON envelope.`,
    "Debezium's rate runs from the line its worker logs when the source task has started (JVM start-up, plugin loading and connecting excluded) to the moment the topic's end offsets reach the row count (polled every 20 ms); ours from taking the leader lock to the moment its Kafka-acknowledged position reaches the end of the writes.",
    'CPU seconds and peak RSS are those of the whole process (/proc), start-up included.',
  ],
});
console.log(
  JSON.stringify({
    ratio: Number(ratio.median.toFixed(3)),
    oursRate: Math.round(rate.ours.median),
    debeziumRate: Math.round(rate.debezium.median),
    oursCpuUsPerChange: Number(cpuUs.ours.median.toFixed(1)),
    debeziumCpuUsPerChange: Number(cpuUs.debezium.median.toFixed(1)),
    oursPeakRssMb: Math.round(rss.ours.median),
    debeziumPeakRssMb: Math.round(rss.debezium.median),
  }),
);
