import { describe, expect, it } from 'vitest';
import { changeTopic } from '../../../../src/contracts/topics.js';
import { ensureTopics } from '../../../../src/core/kafka-topics.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { refText } from '../../../../src/ops/verify/expected-state.js';
import { repairDrift } from '../../../../src/ops/verify/repair-drift.js';
import { type ReadMessage, readTopics } from '../../../helpers/kafka-read.js';
import { freshDatabase, freshName, testKafka, withClient } from '../../../helpers/resources.js';

const kafka = testKafka();

/** A legacy table with rows 1 and 3; the repair is asked for keys 1, 2 and 3 (2 no longer exists). */
async function repairOf(label: string, tombstonesOnDelete?: boolean): Promise<ReadMessage[]> {
  const db = await freshDatabase(label);
  await withClient(db.url, async (c) => {
    await c.query('CREATE TABLE public.items (id int PRIMARY KEY, name text)');
    await c.query("INSERT INTO public.items VALUES (1, 'one'), (3, 'three')");
  });
  const topicPrefix = freshName(label);
  const topic = changeTopic(topicPrefix, 'public', 'items');
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [{ topic, partitions: 3, replicationFactor: 1 }]);
  } finally {
    await admin.disconnect();
  }
  const result = await repairDrift({
    legacyUrl: db.url,
    refs: [1, 2, 3].map((id) => refText('public.items', { id })),
    repair: { kafka, topicPrefix, ...(tombstonesOnDelete === undefined ? {} : { tombstonesOnDelete }) },
    logger: silentLogger(),
  });
  expect(result).toMatchObject({ reads: 2, deletes: 1, topics: [topic] });
  const expected = tombstonesOnDelete === false ? 3 : 4;
  const messages = await readTopics(kafka, [topic], (m) => m.length >= expected, 30_000, 500);
  expect(messages).toHaveLength(expected);
  return messages;
}

describe('verify --repair re-emitting legacy rows', () => {
  it("follows a re-emitted delete with a tombstone of its key, on its partition (the source's default)", async () => {
    const messages = await repairOf('repairtomb');
    const ofKey = (id: number) => messages.filter((m) => m.key === JSON.stringify({ id }));
    for (const id of [1, 3]) {
      const [read] = ofKey(id);
      expect(ofKey(id)).toHaveLength(1);
      expect(JSON.parse(read!.value!)).toMatchObject({
        op: 'r',
        after: { id, name: id === 1 ? 'one' : 'three' },
      });
    }
    const [del, tombstone] = ofKey(2);
    expect(ofKey(2)).toHaveLength(2);
    expect(JSON.parse(del!.value!)).toMatchObject({ op: 'd', before: { id: 2 }, after: null });
    expect(tombstone!.value).toBeNull();
    expect(tombstone!.partition).toBe(del!.partition);
    expect(tombstone!.offset).toBe(del!.offset + 1);
  });

  it('writes no tombstone when the source is configured without them', async () => {
    const messages = await repairOf('repairnotomb', false);
    expect(messages.filter((m) => m.value === null)).toEqual([]);
    expect(
      messages.filter((m) => m.key === JSON.stringify({ id: 2 })).map((m) => JSON.parse(m.value!).op),
    ).toEqual(['d']);
  });
});
