import { type Admin, ConfigResourceTypes } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { readSlot } from '../../../connectors/pgoutput-source/preflight.js';
import { changeTopic, stateTopic } from '../../../src/contracts/topics.js';
import { quoteIdent } from '../../../src/core/sql.js';
import type { ReplicatorConfig } from '../../../src/pipeline/config/load-config.js';
import { applyWrites, LegacyWorkload } from '../../../src/workload/legacy-workload.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { waitFor } from '../../helpers/daemon.js';
import { readTopics } from '../../helpers/kafka-read.js';
import { freshPipeline, LEGACY_TABLES, summary, waitForConvergence } from '../../helpers/pipeline-harness.js';
import { dropSlot, testKafka, withClient } from '../../helpers/resources.js';
import { isClean } from '../../helpers/v2-oracle.js';

/**
 * kill -9 of the whole daemon (`--role all`) during the initial snapshot, at three points, each checked to hold
 * (with the process frozen by SIGSTOP) before the kill lands: right after the slot is created, with nothing in
 * Kafka (the change topics refuse writes); in the middle of copying a table (frozen once part of it is in Kafka);
 * and after every row is in Kafka but before the completion marker (the state topic refuses the marker). Legacy rows the dead attempt had already copied are then deleted, others updated and inserted;
 * the restarted daemon must redo the snapshot and V2 must be exactly what the legacy rows make.
 */

const kafka = testKafka();
const children: ChildReplicator[] = [];
const BOOKINGS = 1_500;

afterAll(async () => {
  for (const c of children) await c.kill9();
});

async function setup(label: string, source: Partial<ReplicatorConfig['source']> = {}) {
  const env = await freshPipeline(label);
  const workload = new LegacyWorkload({
    seed: 11,
    customers: 80,
    shops: 2,
    invalidShare: 0.02,
    bigNotesBytes: 3000,
  });
  await withClient(env.legacyUrl, (c) => applyWrites(c, workload.seed(BOOKINGS)));
  // Small chunks: the copy takes many round trips, so a kill can land inside a table.
  const config: ReplicatorConfig = {
    ...env.config,
    source: { ...env.config.source, snapshotChunkRows: 5, ...source },
  };
  const topics = LEGACY_TABLES.map((t) => changeTopic(config.kafka.topicPrefix, t.schema, t.table));
  return { env, config, workload, topics };
}

async function legacyRows(url: string): Promise<number> {
  return withClient(url, async (c) => {
    let n = 0;
    for (const t of LEGACY_TABLES)
      n += (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteIdent(t.table)}`)).rows[0]!.n;
    return n;
  });
}

/** Messages in these topics (sum of the partitions' high watermarks; a topic not created yet has none). */
async function messages(topics: readonly string[]): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    let n = 0;
    for (const t of topics) {
      if (!existing.has(t)) continue;
      for (const p of await admin.fetchTopicOffsets(t)) n += Number(p.high);
    }
    return n;
  } finally {
    await admin.disconnect();
  }
}

/** The message count once it no longer changes (what a killed process had already sent may still arrive). */
async function settledCount(topics: readonly string[]): Promise<number> {
  let last = await messages(topics);
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await messages(topics);
    if (now === last) return now;
    last = now;
  }
}

/** Booking ids the dead attempt put in Kafka (snapshot rows of the bookings topic), in id order. */
async function copiedBookings(topic: string, count: number): Promise<string[]> {
  const read = await readTopics(kafka, [topic], (m) => m.length >= count, 30_000);
  return read
    .filter((m) => m.value !== null)
    .map((m) => (JSON.parse(m.key!) as { id: string }).id)
    .sort();
}

/** Writes while the daemon is down: deletes of rows it had copied, updates and inserts (the workload's mix). */
async function writesWhileDown(url: string, workload: LegacyWorkload, deleteIds: readonly string[]) {
  await withClient(url, async (c) => {
    if (deleteIds.length > 0) await c.query('DELETE FROM bookings WHERE id = ANY($1::uuid[])', [deleteIds]);
    await applyWrites(
      c,
      Array.from({ length: 60 }, () => workload.next()),
    );
  });
}

/** The restarted daemon redoes the snapshot, then V2 is exactly what the legacy rows make. */
async function restartAndConverge(
  config: ReplicatorConfig,
  legacyUrl: string,
  targetUrl: string,
  mine: ChildReplicator[],
) {
  const child = spawn(config, mine);
  await child.waitForLog(/"msg":"initial snapshot complete"/, 120_000);
  expect(child.log()).toMatch(
    /"msg":"slot exists but its snapshot never completed; dropping it to start over"/,
  );
  await child.waitForLog(/"msg":"streaming"/, 60_000);
  const diff = await waitForConvergence(legacyUrl, targetUrl, 180_000);
  expect(isClean(diff), summary(diff)).toBe(true);
  expect(await child.stop()).toBe(0);
}

async function slotExists(url: string, slot: string): Promise<boolean> {
  return withClient(url, async (c) => (await readSlot(c, slot)).exists);
}

describe('kill -9 during the initial snapshot: the restarted daemon redoes it, V2 exact', () => {
  it('right after the slot is created, before any row reaches Kafka (the change topics refuse writes)', async () => {
    const { env, config, workload, topics } = await setup('snapkill_slot');
    const mine: ChildReplicator[] = [];
    const admin = kafka.admin();
    await admin.connect();
    try {
      // The change topics exist already and refuse every write: the publisher retries, nothing lands.
      await refuseWrites(admin, topics, 3);
      const child = spawn(config, mine);
      await child.waitForLog(/"msg":"initial snapshot started"/, 60_000);
      process.kill(child.pid!, 'SIGSTOP');
      // Where the kill lands (the process frozen): the slot exists; nothing is in Kafka, no marker.
      expect(await slotExists(env.legacyUrl, config.source.slot)).toBe(true);
      expect(await messages([...topics, stateTopic(config.kafka.topicPrefix)])).toBe(0);
      expect(child.log()).not.toMatch(/initial snapshot complete|source session ended|never completed/);
      await child.kill9();
      await acceptWrites(admin, topics);
      const doomed = await withClient(env.legacyUrl, async (c) =>
        (await c.query<{ id: string }>('SELECT id FROM bookings ORDER BY id LIMIT 5')).rows.map((r) => r.id),
      );
      await writesWhileDown(env.legacyUrl, workload, doomed);
      await restartAndConverge(config, env.legacyUrl, env.targetUrl, mine);
    } finally {
      await admin.disconnect();
      await cleanUp(mine, env.legacyUrl, config.source.slot);
    }
  }, 300_000);

  it('in the middle of copying a table (the process frozen once part of the table is in Kafka)', async () => {
    // A row per read and a small publish buffer: the copy advances with Kafka's acknowledgements, a few rows at a
    // time, so the process can be frozen with the table partly in Kafka.
    const { env, config, workload, topics } = await setup('snapkill_mid', {
      snapshotChunkRows: 1,
      maxBufferedEvents: 100,
    });
    const mine: ChildReplicator[] = [];
    const bookingsTopic = topics[0]!;
    try {
      const child = spawn(config, mine);
      await waitFor(
        'part of the bookings table in Kafka',
        async () => ((await messages([bookingsTopic])) >= 50 ? true : undefined),
        60_000,
        10,
      );
      process.kill(child.pid!, 'SIGSTOP');
      expect(child.log()).not.toMatch(/initial snapshot complete|source session ended|never completed/);
      await child.kill9();
      // Where the kill landed: once what the dead process had sent is stored, part of the table is in Kafka, not
      // all of it, and no marker.
      const copied = await settledCount([bookingsTopic]);
      expect(copied).toBeGreaterThan(0);
      expect(copied).toBeLessThan(BOOKINGS);
      expect(await messages([stateTopic(config.kafka.topicPrefix)])).toBe(0);
      // Rows the dead attempt copied are deleted; the new snapshot will not have them.
      const ids = await copiedBookings(bookingsTopic, copied);
      expect(ids.length).toBeGreaterThan(0);
      await writesWhileDown(env.legacyUrl, workload, ids.slice(0, 5));
      await restartAndConverge(config, env.legacyUrl, env.targetUrl, mine);
    } finally {
      await cleanUp(mine, env.legacyUrl, config.source.slot);
    }
  }, 300_000);

  it('after every row is in Kafka, before the completion marker (the state topic refuses the write)', async () => {
    const { env, config, workload, topics } = await setup('snapkill_marker');
    const mine: ChildReplicator[] = [];
    const state = stateTopic(config.kafka.topicPrefix);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await refuseWrites(admin, [state], 1, true);
      const total = await legacyRows(env.legacyUrl);
      const child = spawn(config, mine);
      await waitFor(
        'every row in Kafka',
        async () => ((await messages(topics)) === total ? true : undefined),
        120_000,
        20,
      );
      process.kill(child.pid!, 'SIGSTOP');
      // Where the kill lands (the process frozen): every row in Kafka, no marker, the first attempt still on.
      expect(await messages(topics)).toBe(total);
      expect(await messages([state])).toBe(0);
      expect(child.log()).not.toMatch(/initial snapshot complete|source session ended|never completed/);
      await child.kill9();
      await acceptWrites(admin, [state], true);
      const ids = await copiedBookings(topics[0]!, BOOKINGS);
      await writesWhileDown(env.legacyUrl, workload, ids.slice(0, 5));
      await restartAndConverge(config, env.legacyUrl, env.targetUrl, mine);
    } finally {
      await admin.disconnect();
      await cleanUp(mine, env.legacyUrl, config.source.slot);
    }
  }, 300_000);
});

function spawn(config: ReplicatorConfig, mine: ChildReplicator[]): ChildReplicator {
  const child = new ChildReplicator(config, 'all');
  children.push(child);
  mine.push(child);
  child.start();
  return child;
}

/** The test's daemons killed first (a live one would keep the slot active), then the slot dropped. */
async function cleanUp(mine: ChildReplicator[], url: string, slot: string) {
  for (const c of mine) await c.kill9();
  if (await slotExists(url, slot)) await dropSlot(url, slot);
}

/**
 * Topics that refuse every write: one replica, two required in sync, so an acks=all produce fails with
 * NOT_ENOUGH_REPLICAS (retried by the writer, never stored).
 */
async function refuseWrites(admin: Admin, topics: readonly string[], partitions: number, compact = false) {
  await admin.createTopics({
    waitForLeaders: true,
    topics: topics.map((topic) => ({
      topic,
      numPartitions: partitions,
      replicationFactor: 1,
      configEntries: [
        ...(compact ? [{ name: 'cleanup.policy', value: 'compact' }] : []),
        { name: 'min.insync.replicas', value: '2' },
      ],
    })),
  });
}

async function acceptWrites(admin: Admin, topics: readonly string[], compact = false) {
  await admin.alterConfigs({
    validateOnly: false,
    resources: topics.map((name) => ({
      type: ConfigResourceTypes.TOPIC,
      name,
      configEntries: [
        ...(compact ? [{ name: 'cleanup.policy', value: 'compact' }] : []),
        { name: 'min.insync.replicas', value: '1' },
      ],
    })),
  });
}
