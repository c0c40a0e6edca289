import { afterAll, describe, expect, it } from 'vitest';
import { changeTopic, dlqTopic, v2Topic } from '../../../src/contracts/topics.js';
import type { V2Unit } from '../../../src/contracts/v2-unit.js';
import { ensureTopics } from '../../../src/core/kafka-topics.js';
import { formatLsn } from '../../../src/core/lsn.js';
import { parseConfig } from '../../../src/pipeline/config/load-config.js';
import { ChildReplicator } from '../../helpers/child-source.js';
import { readTopics } from '../../helpers/kafka-read.js';
import { freshName, kafkaBrokers, testKafka } from '../../helpers/resources.js';

const EVENTS = 20_000;
const kafka = testKafka();
const children: ChildReplicator[] = [];
afterAll(async () => {
  for (const c of children) await c.kill9();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw booking change as the source publishes it; every 10th is invalid (bad email). */
function rawBooking(i: number) {
  const id = `00000000-0000-4000-8000-${String(i % 2000).padStart(12, '0')}`;
  const after = {
    id,
    bookingReference: `REF-${i % 2000}`,
    contactDetails: {
      email: i % 10 === 0 ? 'broken' : `user${i % 300}@example.com`,
      firstName: 'A',
      lastName: 'B',
    },
    status: ['PENDING', 'PAID', 'REFUNDED'][i % 3],
    finalAmount: '12.50',
    paymentDate: null,
    paymentMethod: null,
    createdAt: '2024-01-01T00:00:00.000000Z',
    updatedAt: '2024-01-01T00:00:00.000000Z',
  };
  return {
    key: JSON.stringify({ id }),
    value: JSON.stringify({
      before: null,
      after,
      op: 'u',
      source: {
        connector: 'replicator',
        db: 'legacy',
        schema: 'public',
        table: 'bookings',
        lsn: formatLsn(BigInt(i + 1) * 100n),
        commitLsn: formatLsn(BigInt(i + 1) * 100n),
        txId: i + 1,
        commitTs: '2024-01-01T00:00:00.000000Z',
        ts_ms: 0,
        snapshot: false,
        seq: 0,
      },
      ts_ms: 0,
    }),
  };
}

describe('transform stage', () => {
  it('killed with kill -9 mid-transaction five times and restarted: no duplicate or lost V2 message for a read_committed consumer', async () => {
    const config = parseConfig(
      {
        source: { url: 'postgres://unused@127.0.0.1/unused', tables: ['public.bookings'] },
        kafka: { brokers: [kafkaBrokers()], topicPrefix: freshName('raw'), partitions: 3 },
        transform: {
          topicPrefix: freshName('v2'),
          groupId: freshName('tgroup'),
          instanceId: 'a',
          sessionTimeoutMs: 6000,
        },
      },
      {},
    );
    const raw = changeTopic(config.kafka.topicPrefix, 'public', 'bookings');
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ topic: raw, partitions: 3, replicationFactor: 1 }]);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let from = 0; from < EVENTS; from += 1000) {
      await producer.send({
        topic: raw,
        acks: -1,
        messages: Array.from({ length: Math.min(1000, EVENTS - from) }, (_, j) => rawBooking(from + j)),
      });
    }
    await producer.disconnect();

    const v2 = v2Topic(config.transform.topicPrefix, 'bookings');
    const committedCount = async () => {
      const offsets = await admin
        .fetchOffsets({ groupId: config.transform.groupId, topics: [raw] })
        .catch(() => []);
      return offsets.flatMap((t) => t.partitions).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
    };
    let stage = new ChildReplicator(config, 'transform');
    children.push(stage);
    stage.start();
    try {
      // Kill it five times while it works: each time after it committed some progress, at a varying moment.
      for (let k = 0; k < 5; k++) {
        const before = await committedCount();
        for (let i = 0; i < 600 && (await committedCount()) <= before; i++) await sleep(50);
        await sleep(37 * k);
        await stage.kill9();
        stage = new ChildReplicator(config, 'transform');
        children.push(stage);
        stage.start();
      }
      await stage.waitForLog(/transform stage consuming/, 60_000);
      for (let i = 0; i < 1200 && (await committedCount()) < EVENTS; i++) await sleep(100);
      expect(await committedCount()).toBe(EVENTS);
      expect(await stage.stop()).toBe(0);

      const units = await readTopics(kafka, [v2], (m) => m.length >= EVENTS, 60_000, 3_000);
      const dead = await readTopics(
        kafka,
        [dlqTopic(config.kafka.topicPrefix)],
        (m) => m.length >= EVENTS / 10,
        60_000,
        3_000,
      );
      const ids = units.map((m) => {
        const u = JSON.parse(m.value!) as V2Unit;
        return u.source.commitLsn;
      });
      expect(ids).toHaveLength(EVENTS);
      expect(new Set(ids).size).toBe(EVENTS);
      expect(dead).toHaveLength(EVENTS / 10);
      expect(new Set(dead.map((m) => m.headers['source.offset'] + m.headers['source.partition'])).size).toBe(
        EVENTS / 10,
      );
      expect(dead.every((m) => m.headers['error.code'] === 'BOOKING_INVALID_EMAIL')).toBe(true);
      expect(children.length).toBe(6);
    } finally {
      await stage.kill9();
      await admin.disconnect();
    }
  }, 300_000);
});
