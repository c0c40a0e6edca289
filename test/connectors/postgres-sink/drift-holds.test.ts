import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type DriftHold,
  DriftHolds,
  type TopicPartition,
} from '../../../connectors/postgres-sink/drift-holds.js';
import type { DriftedChange } from '../../../connectors/postgres-sink/raw-change.js';
import { createLogger } from '../../../src/core/logger.js';

const drifted = (table: string, message = `${table}: column "x" is missing`): DriftedChange =>
  ({
    change: { op: 'c', table, key: { id: 1 }, before: null, after: {} },
    source: {} as DriftedChange['source'],
    module: {} as DriftedChange['module'],
    columns: ['x'],
    message,
  }) as DriftedChange;

function harness() {
  const calls: string[] = [];
  const records: [string, DriftHold | null][] = [];
  const gauge = new Map<string, number>();
  const tpText = (tp: TopicPartition) => `${tp.topic}/${tp.partition}`;
  const holds = new DriftHolds({
    pause: (tp, offset) => calls.push(`pause ${tpText(tp)} @${offset}`),
    resume: (tp) => calls.push(`resume ${tpText(tp)}`),
    record: async (tp, hold) => {
      records.push([tpText(tp), hold]);
    },
    onChange: (table, n) => gauge.set(table, n),
    logger: createLogger({ level: 'silent' }),
    probeMs: 1000,
  });
  return { holds, calls, records, gauge };
}

afterEach(() => vi.useRealTimers());

describe('DriftHolds', () => {
  it('holds a partition at the drifted change, probes it, and lets it flow once a batch passes', async () => {
    vi.useFakeTimers();
    const { holds, calls, records, gauge } = harness();
    const bookings0 = { topic: 'raw.bookings', partition: 0 };
    holds.start();
    holds.hold(bookings0, '17', drifted('public.bookings'));
    expect(calls).toEqual(['pause raw.bookings/0 @17']);
    expect(holds.blocks(bookings0)).toBe(true);
    expect(gauge.get('public.bookings')).toBe(1);

    // A probe resumes it; the drift still there holds it again at the same change: no second finding.
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls.at(-1)).toBe('resume raw.bookings/0');
    expect(holds.blocks(bookings0)).toBe(false);
    holds.hold(bookings0, '17', drifted('public.bookings'));
    expect(holds.blocks(bookings0)).toBe(true);

    // Other partitions are untouched; a batch that passes releases the hold and clears the finding.
    expect(holds.blocks({ topic: 'raw.bookings', partition: 1 })).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    holds.passed(bookings0);
    expect(holds.blocks(bookings0)).toBe(false);
    expect(gauge.get('public.bookings')).toBe(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(records.map(([tp, h]) => [tp, h?.offset ?? null])).toEqual([
      ['raw.bookings/0', '17'],
      ['raw.bookings/0', null],
    ]);
    expect(records[0]![1]).toMatchObject({ table: 'public.bookings', columns: ['x'] });
    holds.stop();
  });

  it('on a new assignment forgets every hold, resumes those still owned and clears their findings', async () => {
    const { holds, calls, records, gauge } = harness();
    const a = { topic: 'raw.bookings', partition: 0 };
    const b = { topic: 'raw.bookings', partition: 1 };
    holds.hold(a, '5', drifted('public.bookings'));
    holds.hold(b, '9', drifted('public.bookings'));
    expect(gauge.get('public.bookings')).toBe(2);
    holds.reset([a]);
    expect(calls.slice(2)).toEqual(['resume raw.bookings/0']);
    expect(holds.blocks(a)).toBe(false);
    expect(holds.blocks(b)).toBe(false);
    expect(gauge.get('public.bookings')).toBe(0);
    await new Promise((r) => setTimeout(r, 0));
    expect(records.at(-1)).toEqual(['raw.bookings/0', null]);
  });
});
