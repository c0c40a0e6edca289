import { afterAll, describe, expect, it } from 'vitest';
import { ChildReplicator } from '../../helpers/child-source.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, topicOf } from '../../helpers/source-harness.js';

const kafka = testKafka();
const children: ChildReplicator[] = [];
afterAll(async () => {
  for (const c of children) await c.kill9();
});

describe('source leader election', () => {
  it('a second source stands by, and takes over within seconds when the leader is killed', async () => {
    const db = await freshDatabase('ha');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
    const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never' });
    const topic = topicOf(config, 't');
    const first = new ChildReplicator(config);
    const second = new ChildReplicator(config);
    children.push(first, second);
    try {
      first.start();
      await first.waitForLog(/"msg":"streaming"/);
      second.start();
      await second.waitForLog(/standing by/);
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
      await readTopics(kafka, [topic], (m) => m.length >= 1);
      expect(second.log()).not.toMatch(/"msg":"streaming"/);

      await first.kill9();
      await second.waitForLog(/"msg":"source is the leader"/, 15_000);
      await second.waitForLog(/"msg":"streaming"/);
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (2)'));
      const ids = events(
        await readTopics(
          kafka,
          [topic],
          (m) => m.some((x) => x.value?.includes('"id":1')) && m.some((x) => x.value?.includes('"id":2')),
        ),
      ).map((e) => (e.event.after as { id: number }).id);
      expect(ids).toContain(1);
      expect(ids).toContain(2);
      expect(await second.stop()).toBe(0);
    } finally {
      await first.kill9();
      await second.kill9();
      await dropSlot(db.url, config.source.slot);
    }
  }, 120_000);
});
