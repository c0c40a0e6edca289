import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotSessionName } from '../../../../connectors/pgoutput-source/index.js';
import { ensureReplicatorSchema } from '../../../../connectors/postgres-sink/index.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { sinkAppliedWaiter, sinkBacklog } from '../../../../src/ops/verify/sink-applied-waiter.js';
import {
  dropSlot,
  freshDatabase,
  freshName,
  freshTopic,
  testKafka,
  withClient,
} from '../../../helpers/resources.js';

let legacyUrl: string;
let targetUrl: string;
let topic: string;
const slot = freshName('slot').replace(/-/g, '_');
const group = freshName('group');
const kafka = testKafka();

const target = (sql: string, params: unknown[] = []) => withClient(targetUrl, (c) => c.query(sql, params));
const storeOffset = (partition: number, next: number) =>
  target(
    `INSERT INTO replicator.sink_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
     ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset`,
    [group, topic, partition, next],
  );

/** A waiter for `lsn` on a slot that gives up after a short wait (false: not applied yet). */
const appliedOn = (on: string, lsn: string) =>
  sinkAppliedWaiter({
    legacyUrl,
    targetUrl,
    slot: on,
    changeTopics: [topic],
    kafka,
    sinkGroupId: group,
    timeoutMs: 1_500,
    pollMs: 20,
    logger: silentLogger(),
  })(lsn);
const applied = (lsn: string) => appliedOn(slot, lsn);

beforeAll(async () => {
  legacyUrl = (await freshDatabase('waiter_legacy')).url;
  targetUrl = (await freshDatabase('waiter_v2')).url;
  await withClient(targetUrl, (c) => ensureReplicatorSchema(c));
  await withClient(legacyUrl, (c) =>
    c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]),
  );
  topic = await freshTopic('waiter', 2);
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic,
    acks: -1,
    messages: [
      { partition: 0, value: 'a' },
      { partition: 0, value: 'b' },
      { partition: 0, value: 'c' },
      { partition: 1, value: 'd' },
      { partition: 1, value: 'e' },
    ],
  });
  await producer.disconnect();
});

afterAll(async () => {
  await dropSlot(legacyUrl, slot);
  await dropSlot(legacyUrl, copying);
});

const copying = freshName('copying').replace(/-/g, '_');

describe('sinkAppliedWaiter', () => {
  it('is exact under a backlog: the slot past the position, every partition at its end offset, the users settled', async () => {
    // A position past the slot's (WAL written after it was created), then flushed by a commit.
    const lsn = await withClient(legacyUrl, async (c) => {
      await c.query("SELECT pg_logical_emit_message(false, 'waiter-test', 'x')");
      const l = (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
      await c.query('CREATE TABLE flushed ()');
      return l;
    });
    // The newest position the sink recorded is far ahead (what the old waiter read): one partition's heartbeat or
    // change can get there while another partition still has changes to apply.
    await target(
      "INSERT INTO replicator.applied (group_id, commit_ts, commit_lsn) VALUES ($1, now(), 'FFFFFFF/0')",
      [group],
    );
    await storeOffset(0, 3);
    await storeOffset(1, 2);

    // The source has not acknowledged the position to Kafka: Kafka may not hold every change before it.
    expect(await applied(lsn)).toBe(false);
    await withClient(legacyUrl, (c) =>
      c.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [slot, lsn]),
    );

    // Partition 1 applied up to its second-to-last message only.
    await storeOffset(1, 1);
    expect(await applied(lsn)).toBe(false);
    await storeOffset(1, 2);

    // Every offset reached, but a user those batches touched is still queued for its recompute.
    await target("INSERT INTO replicator.pending_derived (key) VALUES ('ada@example.com')");
    expect(await applied(lsn)).toBe(false);
    await target('DELETE FROM replicator.pending_derived');

    expect(await applied(lsn)).toBe(true);
  });

  it('sinkBacklog counts the changes in Kafka past the stored offsets, over every partition', async () => {
    const backlog = async () =>
      (await withClient(targetUrl, (c) => sinkBacklog(kafka, c, group, [topic]))).reduce(
        (n, [, l]) => n + l,
        0,
      );
    await storeOffset(0, 3);
    await storeOffset(1, 2);
    expect(await backlog()).toBe(0);
    await storeOffset(0, 1);
    expect(await backlog()).toBe(2);
    await storeOffset(1, 0);
    expect(await backlog()).toBe(4);
    // A partition with no stored offset yet is behind by everything it holds.
    await target('DELETE FROM replicator.sink_offsets WHERE group_id = $1 AND partition = 0', [group]);
    expect(await backlog()).toBe(5);
    await storeOffset(0, 3);
    await storeOffset(1, 2);
  });

  it('is not applied while the source copies its initial snapshot, though the new slot is past the position', async () => {
    // A position before the slot exists (the bench's "caught up?" right after starting a daemon).
    const lsn = await withClient(legacyUrl, async (c) => {
      const l = (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
      await c.query('CREATE TABLE before_copy ()');
      return l;
    });
    await storeOffset(0, 3);
    await storeOffset(1, 2);
    await target('DELETE FROM replicator.pending_derived');
    // The slot created as the source does, its exported snapshot held open while the rows are copied.
    const repl = new pg.Client({
      connectionString: legacyUrl,
      replication: 'database',
      application_name: snapshotSessionName(copying),
    } as pg.ClientConfig);
    await repl.connect();
    try {
      await repl.query(`CREATE_REPLICATION_SLOT ${copying} LOGICAL pgoutput (SNAPSHOT 'export')`);
      expect(await appliedOn(copying, lsn)).toBe(false);
    } finally {
      await repl.end();
    }
    // Copied (the exported snapshot's connection closed): the slot's position stands for what Kafka holds.
    expect(await appliedOn(copying, lsn)).toBe(true);
  });
});
