import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { AsyncQueue } from '../../../src/core/async-queue.js';

/** Settles after every already-queued promise reaction has run. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function queue<T>(highWater = 4) {
  const onHigh = vi.fn();
  const onLow = vi.fn();
  return { q: new AsyncQueue<T>(highWater, onHigh, onLow), onHigh, onLow };
}

async function take<T>(q: AsyncQueue<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const r = await q.next();
    if (r.done) throw new Error('ended early');
    out.push(r.value);
  }
  return out;
}

describe('AsyncQueue', () => {
  it('hands items out in the order they were pushed', async () => {
    const { q } = queue<number>(1_000);
    for (let i = 0; i < 10; i++) q.push(i);
    expect(q.size).toBe(10);
    expect(await take(q, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(q.size).toBe(0);
  });

  it('keeps the order across its internal compaction (more than 4096 items)', async () => {
    const { q } = queue<number>(1_000_000);
    const n = 20_000;
    const seen: number[] = [];
    for (let i = 0; i < n; i++) {
      q.push(i);
      // Interleave so the read position passes 4096 while items remain.
      if (i % 3 === 2) seen.push(...(await take(q, 2)));
    }
    seen.push(...(await take(q, q.size)));
    expect(seen).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('gives a pending next() the next pushed item', async () => {
    const { q } = queue<string>();
    const pending = q.next();
    q.push('a');
    await expect(pending).resolves.toEqual({ value: 'a', done: false });
    expect(q.size).toBe(0);
  });

  it('calls onHigh once when the size reaches the high-water mark', () => {
    const { q, onHigh, onLow } = queue<number>(4);
    q.push(1);
    q.push(2);
    q.push(3);
    expect(onHigh).not.toHaveBeenCalled();
    q.push(4);
    expect(onHigh).toHaveBeenCalledTimes(1);
    for (let i = 5; i < 20; i++) q.push(i);
    expect(onHigh).toHaveBeenCalledTimes(1);
    expect(onLow).not.toHaveBeenCalled();
  });

  it('calls onLow once when draining to half the high-water mark, then onHigh again on the next crossing', async () => {
    const { q, onHigh, onLow } = queue<number>(4);
    for (let i = 0; i < 6; i++) q.push(i);
    expect(onHigh).toHaveBeenCalledTimes(1);
    await take(q, 3); // 3 left: above half of 4
    expect(onLow).not.toHaveBeenCalled();
    await take(q, 1); // 2 left: half
    expect(onLow).toHaveBeenCalledTimes(1);
    await take(q, 2); // empty
    expect(onLow).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 4; i++) q.push(i);
    expect(onHigh).toHaveBeenCalledTimes(2);
    await take(q, 2);
    expect(onLow).toHaveBeenCalledTimes(2);
  });

  it('does not count items handed straight to a waiting consumer', async () => {
    const { q, onHigh } = queue<number>(1);
    const pending = q.next();
    q.push(1);
    await pending;
    expect(q.size).toBe(0);
    expect(onHigh).not.toHaveBeenCalled();
  });

  it('close() ends a pending next() with done', async () => {
    const { q } = queue<number>();
    const pending = q.next();
    q.close();
    await expect(pending).resolves.toEqual({ value: undefined, done: true });
    await expect(q.next()).resolves.toMatchObject({ done: true });
  });

  it('close() lets the consumer take what was queued first, and ignores later pushes', async () => {
    const { q } = queue<number>();
    q.push(1);
    q.push(2);
    q.close();
    q.push(3);
    expect(await take(q, 2)).toEqual([1, 2]);
    await expect(q.next()).resolves.toMatchObject({ done: true });
  });

  it('fail() rejects a pending next()', async () => {
    const { q } = queue<number>();
    const pending = q.next();
    const boom = new Error('stream lost');
    q.fail(boom);
    await expect(pending).rejects.toBe(boom);
  });

  it('fail() makes every later next() reject at once, dropping queued items', async () => {
    const { q } = queue<number>();
    q.push(1);
    q.push(2);
    const boom = new Error('stream lost');
    q.fail(boom);
    q.fail(new Error('second')); // the first error wins
    q.push(3);
    await expect(q.next()).rejects.toBe(boom);
    await expect(q.next()).rejects.toBe(boom);
    expect(q.size).toBe(0);
  });

  it('a close() after fail() leaves the failure in place', async () => {
    const { q } = queue<number>();
    const boom = new Error('stream lost');
    q.fail(boom);
    q.close();
    await expect(q.next()).rejects.toBe(boom);
  });

  it('a pending next() stays pending while nothing happens', async () => {
    const { q } = queue<number>();
    let settled = false;
    void q.next().then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await tick();
    expect(settled).toBe(false);
    q.close();
    await tick();
    expect(settled).toBe(true);
  });

  it('behaves like a FIFO with hysteresis for any sequence of pushes and takes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.oneof(fc.constant('take' as const), fc.nat({ max: 5 })), { maxLength: 200 }),
        async (highWater, ops) => {
          const { q, onHigh, onLow } = queue<number>(highWater);
          const model: number[] = [];
          let over = false;
          let highs = 0;
          let lows = 0;
          let next = 0;
          for (const op of ops) {
            if (op === 'take') {
              if (model.length === 0) continue;
              const expected = model.shift();
              const r = await q.next();
              if (r.done || r.value !== expected) return false;
              if (over && model.length <= highWater / 2) {
                over = false;
                lows++;
              }
            } else {
              for (let i = 0; i <= op; i++) {
                q.push(next);
                model.push(next++);
                if (!over && model.length >= highWater) {
                  over = true;
                  highs++;
                }
              }
            }
            if (q.size !== model.length) return false;
            if (onHigh.mock.calls.length !== highs || onLow.mock.calls.length !== lows) return false;
          }
          return true;
        },
      ),
    );
  });
});
