import { afterAll, describe, expect, it } from 'vitest';
import { ChildReplicator } from '../../helpers/child-source.js';
import { ANY_PORT, daemonUrl, getJson, scrape, waitReady } from '../../helpers/daemon.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, topicOf } from '../../helpers/source-harness.js';

const kafka = testKafka();
const children: ChildReplicator[] = [];
afterAll(async () => {
  for (const c of children) await c.kill9();
});

describe('replicator start --role source, twice', () => {
  it('the second waits as standby, /readyz and replicator_leader say so, and it takes over when the first is killed', async () => {
    const db = await freshDatabase('standby');
    await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY)'));
    const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never' });
    const first = new ChildReplicator(config, 'source', ANY_PORT);
    const second = new ChildReplicator(config, 'source', ANY_PORT);
    children.push(first, second);
    try {
      first.start();
      const firstUrl = await daemonUrl(first);
      expect(await waitReady(firstUrl, 'leader')).toEqual({
        ready: true,
        role: 'leader',
        stages: { source: 'leader' },
      });
      await first.waitForLog(/"msg":"streaming"/);

      second.start();
      const secondUrl = await daemonUrl(second);
      expect(await waitReady(secondUrl, 'standby')).toEqual({
        ready: true,
        role: 'standby',
        stages: { source: 'standby' },
      });
      expect((await getJson(`${secondUrl}/readyz`)).status).toBe(200);
      await second.waitForLog(/standing by/);
      const label = `slot="${config.source.slot}"`;
      expect(await scrape(firstUrl, 'replicator_leader', label)).toBe(1);
      expect(await scrape(secondUrl, 'replicator_leader', label)).toBe(0);

      await first.kill9();
      await waitReady(secondUrl, 'leader', 30_000);
      expect(await scrape(secondUrl, 'replicator_leader', label)).toBe(1);
      await second.waitForLog(/"msg":"streaming"/);
      await withClient(db.url, (c) => c.query('INSERT INTO t VALUES (1)'));
      const ids = events(
        await readTopics(kafka, [topicOf(config, 't')], (m) => m.some((x) => x.value?.includes('"id":1'))),
      ).map((e) => (e.event.after as { id: number }).id);
      expect(ids).toContain(1);
      expect(await second.stop()).toBe(0);
    } finally {
      await first.kill9();
      await second.kill9();
      await dropSlot(db.url, config.source.slot);
    }
  }, 180_000);
});
