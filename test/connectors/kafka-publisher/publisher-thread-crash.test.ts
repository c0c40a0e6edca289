import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { PgoutputSource } from '../../../connectors/pgoutput-source/index.js';
import type { Publisher } from '../../../src/contracts/publisher.js';
import { isReplicatorError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import { sourceOptions } from '../../../src/pipeline/stage-options.js';
import { events, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, topicOf } from '../../helpers/source-harness.js';

/**
 * The publisher thread dies (terminated from outside, as an out-of-memory kill inside its resource limits would end
 * it) while changes stream: the source's session fails with a retryable error, a new session starts with a new
 * thread, and every committed change reaches Kafka — the process stays up and nothing is lost.
 */

const ROWS = 6_000;
const kafka = testKafka();
let cleanup: (() => Promise<void>) | undefined;

afterAll(async () => {
  await cleanup?.();
});

describe('publisher thread crash', () => {
  it('a terminated publisher thread fails its session, the next session streams on, and no change is lost', async () => {
    const db = await freshDatabase('thread_crash');
    await withClient(db.url, (c) => c.query('CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL)'));
    const config = sourceConfig(db.url, ['public.items'], { statusIntervalMs: 100 });
    const publishers: Publisher[] = [];
    const retried: unknown[] = [];
    const base = sourceOptions(config, kafka, silentLogger());
    const source = new PgoutputSource({
      ...base,
      createPublisher: (settings) => {
        const p = base.createPublisher(settings);
        publishers.push(p);
        return p;
      },
      onRetry: (e) => retried.push(e),
      standbyPollMs: 200,
      maxBackoffMs: 500,
    });
    const controller = new AbortController();
    let stopped = false;
    const running = source.run(controller.signal).finally(() => {
      stopped = true;
    });
    cleanup = async () => {
      controller.abort();
      await running.catch(() => {});
      await dropSlot(db.url, config.source.slot);
    };
    // Streaming (the slot attached), so every row below is streamed, not read by the initial snapshot.
    await withClient(db.url, async (c) => {
      for (let i = 0; i < 300; i++) {
        const { rows } = await c.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
          config.source.slot,
        ]);
        if (rows[0]?.active) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    });

    const insert = (from: number, to: number) =>
      withClient(db.url, async (c) => {
        for (let id = from; id < to; id += 200) {
          await c.query("INSERT INTO items SELECT g, 'row ' || g FROM generate_series($1::int, $2::int) g", [
            id,
            Math.min(id + 199, to - 1),
          ]);
        }
      });
    const topic = topicOf(config, 'items');
    await insert(0, ROWS / 2);
    // Half the rows are in Kafka through the first thread; then it dies while the other half is being written.
    await readTopics(kafka, [topic], (m) => m.length >= 1_000);
    expect(publishers).toHaveLength(1);
    const writing = insert(ROWS / 2, ROWS);
    // The thread as the publisher holds it: the test reaches in, as nothing outside should be able to kill it.
    await (publishers[0] as unknown as { worker: Worker }).worker.terminate();
    await writing;

    const all = events(
      await readTopics(kafka, [topic], (m) => new Set(m.map((x) => x.key)).size >= ROWS, 60_000),
    );
    // Streamed inserts only: the new session resumed from the slot (no snapshot redo, no truncate).
    expect(new Set(all.map((e) => e.event.op))).toEqual(new Set(['c']));
    const ids = new Set(all.map((e) => e.event.after?.id));
    expect(ids.size).toBe(ROWS);
    for (let id = 0; id < ROWS; id++) expect(ids.has(id)).toBe(true);
    // The session failed with a retryable error naming the thread, and a second session (a new thread) streamed on.
    expect(retried.length).toBeGreaterThanOrEqual(1);
    expect(retried.some((e) => isReplicatorError(e) && /publisher thread/.test(String(e)))).toBe(true);
    expect(publishers.length).toBeGreaterThanOrEqual(2);
    expect(stopped).toBe(false);
  }, 180_000);
});
