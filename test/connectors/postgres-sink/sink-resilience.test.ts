import { afterAll, describe, expect, it } from 'vitest';
import { changeTopics, dlqTopic, heartbeatPrefix } from '../../../src/contracts/topics.js';
import { listDeadLetters } from '../../../src/ops/dlq/dead-letters.js';
import { slotPassed } from '../../../src/ops/verify/sink-applied-waiter.js';
import { LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { freshPipeline, startPipeline, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../helpers/resources.js';
import { expectedLetters, waitForOpenApplyTransaction } from '../../helpers/sink-probes.js';
import { isClean } from '../../helpers/v2-oracle.js';

const children: ChildReplicator[] = [];
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of children) await c.kill9();
  for (const s of stops) await s();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `writes` live writes against the legacy database, calling `during(i)` between them. */
async function workload(
  url: string,
  seed: number,
  seedRows: number,
  writes: number,
  during?: (i: number) => Promise<void>,
) {
  const w = new LegacyWorkload({ seed, customers: 25, shops: 2, invalidShare: 0.02, bigNotesBytes: 5000 });
  await withClient(url, async (c) => {
    for (const write of w.seed(seedRows)) await c.query(write.sql, write.params);
    for (let i = 0; i < writes; i++) {
      const write = w.next();
      await c.query(write.sql, write.params);
      await during?.(i);
    }
  });
}

async function snapshotTarget(url: string) {
  return withClient(url, async (c) => {
    const out: Record<string, unknown[]> = {};
    for (const t of [
      'users',
      'customer_profiles',
      'bookings',
      'payments',
      'bundles',
      'bundle_components',
      'bundle_discounts',
    ]) {
      out[t] = (await c.query(`SELECT to_jsonb(x)::text AS j FROM ${t} x ORDER BY 1`)).rows.map((r) => r.j);
    }
    out.lineage = (
      await c.query(
        'SELECT source_table, source_key, commit_lsn::text, seq, outputs::text FROM replicator.lineage ORDER BY 1, 2',
      )
    ).rows;
    return out;
  });
}

/** The target's stored offsets: `topic/partition` → next offset. */
const storedOffsets = (url: string) =>
  withClient(url, async (c) =>
    Object.fromEntries(
      (
        await c.query<{ t: string; n: string }>(
          "SELECT topic || '/' || partition AS t, next_offset::text AS n FROM replicator.sink_offsets ORDER BY (topic || '/' || partition) COLLATE \"C\"",
        )
      ).rows.map((r) => [r.t, r.n]),
    ),
  );

/** End offsets of the partitions that hold messages, as `topic/partition` → offset (sorted like storedOffsets). */
async function endOffsets(topics: string[]): Promise<Record<string, string>> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    const out: [string, string][] = [];
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (Number(p.high) > 0) out.push([`${topic}/${p.partition}`, p.high]);
      }
    }
    return Object.fromEntries(out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  } finally {
    await admin.disconnect();
  }
}

/** Seeds legacy, waits until V2 matches it, stops the sink; returns a writer of further changes. */
async function seedThenStop(
  env: Awaited<ReturnType<typeof freshPipeline>>,
  sink: ChildReplicator,
  seed: number,
  invalidShare: number,
): Promise<(writes: number) => Promise<void>> {
  const w = new LegacyWorkload({ seed, customers: 25, shops: 2, invalidShare, bigNotesBytes: 5000 });
  await withClient(env.legacyUrl, async (c) => {
    for (const write of w.seed(60)) await c.query(write.sql, write.params);
  });
  const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
  expect(isClean(diff), summary(diff)).toBe(true);
  expect(await sink.stop()).toBe(0);
  return (writes) =>
    withClient(env.legacyUrl, async (c) => {
      for (let i = 0; i < writes; i++) {
        const write = w.next();
        await c.query(write.sql, write.params);
      }
    });
}

/** Waits until a committed batch's users are queued and not yet recomputed (the sink holds 400 ms there). */
async function waitForUnsettledBatch(targetUrl: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const queued = await withClient(targetUrl, async (c) =>
      (await c.query("SELECT to_regclass('replicator.pending_derived') AS t")).rows[0].t
        ? (await c.query('SELECT 1 FROM replicator.pending_derived LIMIT 1')).rowCount
        : 0,
    );
    if (queued) return;
    await sleep(20);
  }
  throw new Error('no batch waiting for its recompute within 12 s');
}

describe('sink resilience', () => {
  it('kill -9 of the sink mid-batch, five times during a workload: V2 exactly as expected after the drain; consuming everything again changes nothing', async () => {
    const env = await freshPipeline('sinkkill');
    const upstream = startPipeline(env.config, 'source');
    stops.push(upstream.stop);
    // Each apply transaction is held open 400 ms before COMMIT, so a kill can be shown to land inside one; and
    // 400 ms between its commit and its users' recompute, so a kill can land between the two.
    const hold = { REPLICATOR_FAULT_HOLD_APPLY_MS: '400', REPLICATOR_FAULT_HOLD_SETTLE_MS: '400' };
    let sink = new ChildReplicator(env.config, 'sink', hold);
    children.push(sink);
    sink.start();
    try {
      const writes = workload(env.legacyUrl, 7, 200, 4000);
      // Five kills: three inside an open apply transaction (seen in pg_stat_activity just before the kill), two
      // between a committed batch and its users' recompute (its keys still queued in replicator.pending_derived).
      for (let k = 0; k < 5; k++) {
        await sink.waitForLog(/sink starting/);
        if (k % 2 === 0) await waitForOpenApplyTransaction(env.targetUrl, 12_000);
        else await waitForUnsettledBatch(env.targetUrl);
        await sink.kill9();
        sink = new ChildReplicator(env.config, 'sink', k < 4 ? hold : {});
        children.push(sink);
        sink.start();
      }
      await writes;
      const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
      expect(isClean(diff), summary(diff)).toBe(true);
      expect(children.filter((c) => c.log().includes('sink starting')).length).toBeGreaterThanOrEqual(6);
      // The dead letters are exactly those of a crash-free run: a letter and the offsets that pass it commit
      // together or the replay's copy is the same letter.
      const expected = await expectedLetters(env.config);
      expect(expected.length).toBeGreaterThan(0);
      const letters = await listDeadLetters(testKafka(), dlqTopic(env.config.kafka.topicPrefix));
      expect(
        letters.map((d) => `${d.sourceTopic}/${d.sourcePartition}/${d.sourceOffset}/${d.code}`).sort(),
      ).toEqual(expected);

      // Quiesce: the source stops, the sink applies up to the end of every topic, then stops.
      await upstream.stop();
      const inputs = [
        ...changeTopics({ rawPrefix: env.config.kafka.topicPrefix, tables: env.config.source.tables }),
        heartbeatPrefix(env.config.kafka.topicPrefix),
      ];
      const ends = await endOffsets(inputs);
      let caughtUp: Record<string, string> = {};
      for (let i = 0; i < 600 && JSON.stringify(caughtUp) !== JSON.stringify(ends); i++) {
        caughtUp = await storedOffsets(env.targetUrl);
        await sleep(100);
      }
      expect(caughtUp).toEqual(ends);
      expect(await sink.stop()).toBe(0);
      // Offsets reset: the target's own and the group's. Every change is applied again; nothing may change.
      const offsetsBefore = await storedOffsets(env.targetUrl);
      const before = await snapshotTarget(env.targetUrl);
      await withClient(env.targetUrl, (c) => c.query('DELETE FROM replicator.sink_offsets'));
      const admin = testKafka().admin();
      await admin.connect();
      for (const topic of inputs) {
        await admin.resetOffsets({ groupId: env.config.sink.groupId, topic, earliest: true });
      }
      await admin.disconnect();
      sink = new ChildReplicator(env.config, 'sink');
      children.push(sink);
      sink.start();
      // The replay reached the end when every stored offset is back at its value before the reset.
      let offsetsAfter: Record<string, string> = {};
      for (let i = 0; i < 600; i++) {
        offsetsAfter = await storedOffsets(env.targetUrl);
        if (JSON.stringify(offsetsAfter) === JSON.stringify(offsetsBefore)) break;
        await sleep(200);
      }
      expect(offsetsAfter).toEqual(offsetsBefore);
      expect(await snapshotTarget(env.targetUrl)).toEqual(before);
      expect(await sink.stop()).toBe(0);
    } finally {
      await sink.kill9();
      await upstream.stop();
      await dropSlot(env.legacyUrl, env.config.source.slot);
    }
  }, 300_000);

  it('changes Kafka deleted before the sink applied them: a CHANGES_LOST letter per gap, and the sink goes on', async () => {
    const env = await freshPipeline('lost');
    const upstream = startPipeline(env.config, 'source');
    stops.push(upstream.stop);
    let sink = new ChildReplicator(env.config, 'sink');
    children.push(sink);
    sink.start();
    const kafka = testKafka();
    const admin = kafka.admin();
    await admin.connect();
    try {
      const write = await seedThenStop(env, sink, 21, 0.02);
      // The sink is down while changes go on reaching Kafka; the source then stops with all of them there.
      await write(300);
      const written = await withClient(
        env.legacyUrl,
        async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l,
      );
      let passed = false;
      for (let i = 0; i < 600 && !passed; i++) {
        passed = Boolean(
          (await withClient(env.legacyUrl, (c) => slotPassed(c, env.config.source.slot, written)))?.passed,
        );
        if (!passed) await sleep(100);
      }
      expect(passed).toBe(true);
      await upstream.stop();

      // Kafka's retention deletes the first unapplied change of every partition holding two or more. A partition
      // the group never applied starts at its log's start (as a Kafka group without an offset): no letter there.
      const tables = changeTopics({
        rawPrefix: env.config.kafka.topicPrefix,
        tables: env.config.source.tables,
      });
      const stored = await storedOffsets(env.targetUrl);
      const gaps: string[] = [];
      let unapplied = 0;
      for (const topic of tables) {
        for (const p of await admin.fetchTopicOffsets(topic)) {
          const next = stored[`${topic}/${p.partition}`];
          const from = BigInt(next ?? p.low);
          if (BigInt(p.high) - from < 2n) continue;
          await admin.deleteTopicRecords({
            topic,
            partitions: [{ partition: p.partition, offset: String(from + 1n) }],
          });
          if (next === undefined) unapplied++;
          else gaps.push(`${topic}/${p.partition}/${next}`);
        }
      }
      expect(gaps.length).toBeGreaterThan(0);
      expect(unapplied).toBeGreaterThan(0);

      sink = new ChildReplicator(env.config, 'sink');
      children.push(sink);
      sink.start();
      // It applies everything after each gap: every stored offset reaches its partition's end.
      const ends = await endOffsets([...tables, heartbeatPrefix(env.config.kafka.topicPrefix)]);
      let reached: Record<string, string> = {};
      for (let i = 0; i < 600 && JSON.stringify(reached) !== JSON.stringify(ends); i++) {
        reached = await storedOffsets(env.targetUrl);
        await sleep(100);
      }
      expect(reached).toEqual(ends);
      const letters = (await listDeadLetters(kafka, dlqTopic(env.config.kafka.topicPrefix))).filter(
        (d) => d.code === 'CHANGES_LOST',
      );
      expect(letters.map((d) => `${d.sourceTopic}/${d.sourcePartition}/${d.sourceOffset}`).sort()).toEqual(
        gaps.sort(),
      );
      for (const d of letters) {
        expect(d.message).toMatch(/^Kafka deleted offsets \d+–\d+ of .* verify --repair/);
        expect(d.value).toBeNull();
      }
      expect(await sink.stop()).toBe(0);
    } finally {
      await admin.disconnect();
      await sink.kill9();
      await upstream.stop();
      await dropSlot(env.legacyUrl, env.config.source.slot);
    }
  }, 300_000);

  it('a partition that ends before its stored offset (topic recreated, log truncated) is applied from its start', async () => {
    const env = await freshPipeline('stale');
    const upstream = startPipeline(env.config, 'source');
    stops.push(upstream.stop);
    let sink = new ChildReplicator(env.config, 'sink');
    children.push(sink);
    sink.start();
    try {
      const write = await seedThenStop(env, sink, 31, 0);
      // The offsets the target stored belong to a log that is gone: every partition now ends before them.
      await withClient(env.targetUrl, (c) =>
        c.query('UPDATE replicator.sink_offsets SET next_offset = next_offset + 1000'),
      );
      await write(200);
      sink = new ChildReplicator(env.config, 'sink');
      children.push(sink);
      sink.start();
      const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
      expect(isClean(diff), summary(diff)).toBe(true);
      expect(sink.log()).toMatch(/ends before the offset the sink stored/);
      expect(await sink.stop()).toBe(0);
    } finally {
      await sink.kill9();
      await upstream.stop();
      await dropSlot(env.legacyUrl, env.config.source.slot);
    }
  }, 300_000);

  it('two sink instances in one group during a workload of shared-email bookings: totals exact', async () => {
    const env = await freshPipeline('twosinks');
    const upstream = startPipeline(env.config, 'source');
    stops.push(upstream.stop);
    const a = new ChildReplicator(env.config, 'sink');
    const b = new ChildReplicator(env.config, 'sink');
    children.push(a, b);
    a.start();
    b.start();
    try {
      // 25 customers shared by thousands of bookings: every batch touches users the other instance touches too.
      await workload(env.legacyUrl, 11, 300, 3000);
      const diff = await waitForConvergence(env.legacyUrl, env.targetUrl, 120_000);
      expect(isClean(diff), summary(diff)).toBe(true);
      expect(a.log()).toMatch(/sink starting/);
      expect(b.log()).toMatch(/sink starting/);
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
    } finally {
      await a.kill9();
      await b.kill9();
      await upstream.stop();
      await dropSlot(env.legacyUrl, env.config.source.slot);
    }
  }, 300_000);
});
