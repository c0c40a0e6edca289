import { describe, expect, it } from 'vitest';
import { PartitionQueues, type TopicPartition } from '../../../connectors/postgres-sink/partition-queues.js';

/** An apply that records its calls and completes only when the test releases it. */
function harness(o: { concurrency: number; maxBatch?: number; highWater?: number; maxBytes?: number }) {
  const calls: { tp: string; items: number[]; release: () => void; fail: (e: unknown) => void }[] = [];
  const events: string[] = [];
  let active = 0;
  let maxActive = 0;
  const q = new PartitionQueues<{ offset: string }>({
    concurrency: o.concurrency,
    maxBatch: o.maxBatch ?? 1000,
    highWater: o.highWater ?? 1000,
    // Each item weighs its offset (in bytes), so a test picks what a push adds.
    ...(o.maxBytes !== undefined
      ? { maxBytes: o.maxBytes, size: (x: { offset: string }) => Number(x.offset) }
      : {}),
    apply: (tp, batch) =>
      new Promise<void>((resolve, reject) => {
        active++;
        maxActive = Math.max(maxActive, active);
        calls.push({
          tp: `${tp.topic}/${tp.partition}`,
          items: batch.map((x) => Number(x.offset)),
          release: () => {
            active--;
            resolve();
          },
          fail: (e) => {
            active--;
            reject(e);
          },
        });
      }),
    pause: (tp) => events.push(`pause ${tp.topic}/${tp.partition}`),
    resume: (tp) => events.push(`resume ${tp.topic}/${tp.partition}`),
  });
  const tick = () => new Promise((r) => setImmediate(r));
  const push = (tp: TopicPartition, offsets: number[]) =>
    q.push(
      tp,
      offsets.map((n) => ({ offset: String(n) })),
    );
  return { q, push, calls, events, tick, maxActive: () => maxActive };
}

const a: TopicPartition = { topic: 't', partition: 0 };
const b: TopicPartition = { topic: 't', partition: 1 };
const c: TopicPartition = { topic: 't', partition: 2 };

describe('PartitionQueues', () => {
  it('applies one batch per partition at a time, in order, and takes everything queued meanwhile as the next batch', async () => {
    const h = harness({ concurrency: 2 });
    h.push(a, [1, 2]);
    await h.tick();
    h.push(a, [3]);
    h.push(a, [4, 5]);
    await h.tick();
    expect(h.calls.map((x) => x.items)).toEqual([[1, 2]]);
    h.calls[0]!.release();
    await h.tick();
    expect(h.calls.map((x) => x.items)).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
    h.calls[1]!.release();
    await h.q.idle();
  });

  it('never runs more partitions at once than its concurrency, and serves waiting partitions round robin', async () => {
    const h = harness({ concurrency: 2 });
    h.push(a, [1]);
    h.push(b, [2]);
    h.push(c, [3]);
    await h.tick();
    expect(h.calls.map((x) => x.tp)).toEqual(['t/0', 't/1']);
    h.push(a, [4]);
    h.calls[0]!.release();
    await h.tick();
    // t/2 waited longest: it goes before t/0's second batch.
    expect(h.calls.map((x) => x.tp)).toEqual(['t/0', 't/1', 't/2']);
    h.calls[1]!.release();
    await h.tick();
    expect(h.calls.map((x) => x.tp)).toEqual(['t/0', 't/1', 't/2', 't/0']);
    for (const x of h.calls.slice(2)) x.release();
    await h.q.idle();
    expect(h.maxActive()).toBe(2);
  });

  it('caps a batch at maxBatch', async () => {
    const h = harness({ concurrency: 1, maxBatch: 3 });
    h.push(a, [1, 2, 3, 4, 5, 6, 7]);
    await h.tick();
    h.calls[0]!.release();
    await h.tick();
    h.calls[1]!.release();
    await h.tick();
    h.calls[2]!.release();
    await h.q.idle();
    expect(h.calls.map((x) => x.items)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('pauses a partition above the high-water mark and resumes it once drained to half', async () => {
    const h = harness({ concurrency: 1, maxBatch: 4, highWater: 4 });
    h.push(a, [1, 2, 3, 4, 5]);
    await h.tick();
    h.push(a, [6, 7, 8, 9]);
    expect(h.events).toEqual(['pause t/0']);
    h.calls[0]!.release();
    await h.tick();
    expect(h.events).toEqual(['pause t/0']);
    h.calls[1]!.release();
    await h.tick();
    expect(h.events).toEqual(['pause t/0', 'resume t/0']);
    h.calls[2]!.release();
    await h.q.idle();
  });

  it('pauses the partitions that queue past the byte budget (over all of them) and resumes them at half of it', async () => {
    const h = harness({ concurrency: 1, maxBatch: 10, maxBytes: 100 });
    h.push(a, [40]);
    await h.tick();
    // 40 being applied; b's 25 and 26 queue (91 of 100), c's 50 goes over: c pauses, b does not.
    h.push(b, [25]);
    h.push(b, [26]);
    h.push(c, [50]);
    expect(h.events).toEqual(['pause t/2']);
    h.push(b, [27]);
    expect(h.events).toEqual(['pause t/2', 'pause t/1']);
    // a's batch done: 128 left, above half the budget, so nothing resumes.
    h.calls[0]!.release();
    await h.tick();
    expect(h.events).toEqual(['pause t/2', 'pause t/1']);
    // b's batch (78) done: 50 left, at half: both resume.
    h.calls[1]!.release();
    await h.tick();
    expect(h.events).toEqual(['pause t/2', 'pause t/1', 'resume t/1', 'resume t/2']);
    expect(h.q.queuedBytes).toBe(50);
    h.calls[2]!.release();
    await h.q.idle();
    expect(h.q.queuedBytes).toBe(0);
    expect(h.calls.map((x) => x.items)).toEqual([[40], [25, 26, 27], [50]]);
  });

  it('resumes partitions paused for the byte budget when a revoked partition takes its queue away', async () => {
    const h = harness({ concurrency: 1, maxBatch: 10, maxBytes: 100 });
    h.push(a, [10]);
    await h.tick();
    h.push(a, [60, 61]);
    h.push(b, [5]);
    expect(h.events).toEqual(['pause t/0', 'pause t/1']);
    // b's 5 waits behind a's batch; a is revoked: 131 → 15 bytes, and both partitions fetch again.
    h.q.revoke(a);
    expect(h.events).toEqual(['pause t/0', 'pause t/1', 'resume t/0', 'resume t/1']);
    h.calls[0]!.release();
    await h.tick();
    h.calls[1]!.release();
    await h.q.idle();
    expect(h.calls.map((x) => x.items)).toEqual([[10], [5]]);
    expect(h.q.queuedBytes).toBe(0);
  });

  it('after a rejoin pauses again what is over the budget or its mark, and lets the rest fetch', async () => {
    // A group kafkajs restarted after a crash has nothing paused, whatever the lanes believe.
    const h = harness({ concurrency: 1, maxBatch: 10, maxBytes: 100 });
    h.push(a, [10]);
    await h.tick();
    h.push(a, [60, 61]);
    h.push(b, [5]);
    expect(h.events).toEqual(['pause t/0', 'pause t/1']);
    h.q.rejoined();
    expect(h.events.slice(2)).toEqual(['pause t/0', 'pause t/1']);
    for (let i = 0; i < 3; i++) {
      h.calls[i]!.release();
      await h.tick();
    }
    await h.q.idle();
    // Drained: both resumed; a rejoin now lets both fetch.
    expect(h.events.slice(4).sort()).toEqual(['resume t/0', 'resume t/1']);
    h.q.rejoined();
    expect(h.events.slice(6).sort()).toEqual(['resume t/0', 'resume t/1']);

    const w = harness({ concurrency: 1, maxBatch: 2, highWater: 2 });
    w.push(a, [1, 2]);
    await w.tick();
    w.push(a, [3, 4, 5]);
    w.push(b, [7]);
    w.q.rejoined();
    expect(w.events).toEqual(['pause t/0', 'pause t/0', 'resume t/1']);
    w.calls[0]!.release();
    await w.tick();
    w.calls[1]!.release();
    await w.tick();
    w.calls[2]!.release();
    await w.tick();
    w.calls[3]!.release();
    await w.q.idle();
  });

  it('drops what is queued for a revoked partition; an apply under way finishes', async () => {
    const h = harness({ concurrency: 1 });
    h.push(a, [1]);
    await h.tick();
    h.push(a, [2, 3]);
    h.q.revoke(a);
    h.calls[0]!.release();
    await h.q.idle();
    expect(h.calls.map((x) => x.items)).toEqual([[1]]);
  });

  it('queues a message fetched again (after a seek back or a rejoin) once', async () => {
    const h = harness({ concurrency: 1 });
    h.push(a, [1, 2, 3]);
    await h.tick();
    h.push(a, [2, 3, 4, 5]);
    h.calls[0]!.release();
    await h.tick();
    h.calls[1]!.release();
    await h.q.idle();
    expect(h.calls.map((x) => x.items)).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('revokes the partitions a rebalance took away, keeps the others', async () => {
    const h = harness({ concurrency: 1 });
    h.push(a, [1]);
    await h.tick();
    h.push(a, [2]);
    h.push(b, [7]);
    h.q.retain((tp) => tp.partition === 0);
    h.calls[0]!.release();
    await h.tick();
    h.calls[1]!.release();
    await h.q.idle();
    expect(h.calls.map((x) => `${x.tp}:${x.items}`)).toEqual(['t/0:1', 't/0:2']);
  });

  it('reports the first failed apply and starts nothing after it', async () => {
    const h = harness({ concurrency: 1 });
    h.push(a, [1]);
    h.push(b, [2]);
    await h.tick();
    h.calls[0]!.fail(new Error('boom'));
    await expect(h.q.failed).rejects.toThrow('boom');
    await h.tick();
    expect(h.calls.length).toBe(1);
  });
});
