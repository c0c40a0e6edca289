import { expect, it } from 'vitest';
import { readSlot } from '../../../connectors/pgoutput-source/preflight.js';
import { EVENT_TOO_LARGE } from '../../../src/contracts/dead-letter.js';
import { dlqTopic } from '../../../src/contracts/topics.js';
import { parseLsn } from '../../../src/core/lsn.js';
import { waitFor } from '../../helpers/daemon.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, startSource, topicOf } from '../../helpers/source-harness.js';

const kafka = testKafka();
const MB = 1024 * 1024;

/**
 * A 50 MB row, far over the broker's default 1 MB max.message.bytes: before, the source retried it forever while
 * WAL piled up. Now it is dead-lettered as a summary naming its table, key, size and position, and the rows after
 * it are published and acknowledged.
 */
it('a change larger than its topic allows is dead-lettered with table, key, size and LSN; later rows flow and the slot moves past it', async () => {
  const db = await freshDatabase('oversized');
  await withClient(db.url, (c) => c.query('CREATE TABLE t (id int PRIMARY KEY, payload text)'));
  const config = sourceConfig(db.url, ['public.t'], { snapshot: 'never', heartbeatIntervalMs: 0 });
  const topic = topicOf(config, 't');
  const dlq = dlqTopic(config.kafka.topicPrefix);
  const source = startSource(config, kafka);
  try {
    await waitFor('the slot to stream', () =>
      withClient(db.url, async (c) => ((await readSlot(c, config.source.slot)).active ? true : undefined)),
    );
    await withClient(db.url, async (c) => {
      await c.query("INSERT INTO t VALUES (1, 'small')");
      await c.query('INSERT INTO t VALUES (2, repeat($1, $2))', ['x', 50 * MB]);
      await c.query("INSERT INTO t VALUES (3, 'after')");
    });

    const changes = events(await readTopics(kafka, [topic], (m) => m.length >= 2, 60_000, 1_000));
    expect(changes.map((e) => (e.event.after as { id: number }).id).sort()).toEqual([1, 3]);

    const letters = await readTopics(kafka, [dlq], (m) => m.length >= 1, 30_000, 500);
    expect(letters).toHaveLength(1);
    const letter = letters[0]!;
    expect(JSON.parse(letter.key!)).toEqual({ id: 2 });
    expect(letter.headers).toMatchObject({
      'error.code': EVENT_TOO_LARGE,
      stage: 'source',
      'source.table': 'public.t',
      'source.topic': topic,
    });
    const summary = JSON.parse(letter.value!) as {
      table: string;
      bytes: number;
      limit: number;
      position: string;
    };
    expect(summary.table).toBe('public.t');
    expect(summary.bytes).toBeGreaterThan(50 * MB);
    expect(summary.limit).toBeLessThan(summary.bytes);
    expect(summary.position).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(letter.headers['error.message']).toContain(`${summary.bytes} bytes exceeds max.message.bytes`);
    expect(letter.value!.length).toBeLessThan(1024);

    // The stream moved on: the slot is acknowledged up to the commit of the row after the big one.
    const after = changes.find((e) => (e.event.after as { id: number }).id === 3)!;
    const afterCommit = parseLsn(after.event.source.commitLsn);
    expect(afterCommit).toBeGreaterThan(parseLsn(summary.position));
    await waitFor('the slot to pass the oversized row', () =>
      withClient(db.url, async (c) =>
        parseLsn((await readSlot(c, config.source.slot)).confirmedFlushLsn!) >= afterCommit
          ? true
          : undefined,
      ),
    );
  } finally {
    await source.stop();
    await dropSlot(db.url, config.source.slot);
  }
}, 180_000);
