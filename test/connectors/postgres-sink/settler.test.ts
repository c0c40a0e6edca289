import { describe, expect, it } from 'vitest';
import { merge, type Settlement, Settler } from '../../../connectors/postgres-sink/settler.js';
import { ErrorCodes, ReplicatorError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';

const work = (keys: string[], ids: string[], newestTs?: string, newestLsn?: bigint): Settlement => ({
  keys,
  ids,
  newestTs,
  newestLsn,
});

describe('merge', () => {
  it('deduplicates keys, keeps every queued id and the newest position of all', () => {
    expect(
      merge([
        work(['a', 'b'], ['1', '2'], '2026-01-01T00:00:02Z', 20n),
        work(['b', 'c'], ['3'], '2026-01-01T00:00:01Z', 30n),
        work([], [], undefined, undefined),
      ]),
    ).toEqual(work(['a', 'b', 'c'], ['1', '2', '3'], '2026-01-01T00:00:02Z', 30n));
  });
});

describe('Settler', () => {
  it('sweeps first, then settles what was handed over while it was busy in one merged settlement', async () => {
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const settler = new Settler({
      sweep: async () => {
        calls.push('sweep');
        await gate;
      },
      settle: async (w) => {
        calls.push(`settle ${w.keys.join(',')} ids ${w.ids.join(',')}`);
      },
      logger: silentLogger(),
    });
    const stop = new AbortController();
    const running = settler.run(stop.signal);
    // Handed over while the sweep runs: both wait and go together.
    await settler.submit(work(['a', 'b'], ['1']));
    await settler.submit(work(['b', 'c'], ['2']));
    release();
    await settler.idle();
    expect(calls).toEqual(['sweep', 'settle a,b,c ids 1,2']);
    stop.abort();
    await running;
  });

  it('retries a transient failure with the work kept', async () => {
    const settled: string[][] = [];
    let failures = 1;
    const settler = new Settler({
      sweep: async () => {},
      settle: async (w) => {
        if (failures-- > 0) throw Object.assign(new Error('connection terminated'), { code: 'ECONNRESET' });
        settled.push(w.keys);
      },
      logger: silentLogger(),
    });
    const stop = new AbortController();
    const running = settler.run(stop.signal);
    await settler.submit(work(['x'], ['9']));
    await settler.idle();
    expect(settled).toEqual([['x']]);
    stop.abort();
    await running;
  });

  it('an error retrying cannot fix fails the settler (the session ends) instead of looping', async () => {
    const bug = new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'not retryable');
    const settler = new Settler({
      sweep: async () => {},
      settle: async () => {
        throw bug;
      },
      logger: silentLogger(),
    });
    const running = settler.run(new AbortController().signal);
    await settler.submit(work(['x'], ['1']));
    await expect(settler.failed).rejects.toBe(bug);
    await running;
    await expect(settler.submit(work(['y'], ['2']))).rejects.toBe(bug);
  });

  it('holds a submitter back while more keys than allowed wait to be settled', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const settler = new Settler({
      sweep: async () => {},
      settle: () => gate,
      logger: silentLogger(),
      maxPendingKeys: 2,
    });
    const stop = new AbortController();
    const running = settler.run(stop.signal);
    await settler.submit(work(['a', 'b'], ['1']));
    let returned = false;
    const blocked = settler.submit(work(['c'], ['2'])).then(() => {
      returned = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(returned).toBe(false);
    release();
    await blocked;
    expect(returned).toBe(true);
    stop.abort();
    await running;
  });
});
