import { describe, expect, it } from 'vitest';
import {
  emptyHistory,
  perSecond,
  pushSample,
  type StatusSample,
  sampleOf,
  seriesOf,
} from '../../../../src/ops/status/status-history.js';
import { report } from './status-report-fixture.js';

const sample = (at: number, o: Parameters<typeof report>[0]): StatusSample => sampleOf(report(o), at);

describe('status history', () => {
  it('samples the gauges and counters of a report', () => {
    expect(
      sampleOf(
        report({ lagBytes: 100, lagSeconds: 1.5, published: 40, applied: 38, dlq: 2, phase: 'draining' }),
        5,
      ),
    ).toEqual({
      at: 5,
      healthy: true,
      problems: [],
      warnings: [],
      sourceLagBytes: 100,
      lagSeconds: 1.5,
      published: 40,
      applied: 38,
      dlq: 2,
      cutoverPhase: 'draining',
    });
    const unread = report({});
    unread.target = undefined;
    unread.cutover = { state: 'unknown' };
    expect(sampleOf(unread, 0)).toMatchObject({
      sourceLagBytes: null,
      lagSeconds: null,
      applied: null,
      cutoverPhase: null,
    });
    expect(sampleOf(report({}), 0).cutoverPhase).toBe('none');
  });

  it('rates a counter per second between two readings', () => {
    expect(perSecond({ at: 0, value: 10 }, { at: 2000, value: 30 })).toBe(10);
    expect(perSecond({ at: 0, value: 10 }, { at: 500, value: 10 })).toBe(0);
    // Unknown, no time passed, or a counter that went down (topics recreated): no rate.
    expect(perSecond({ at: 0, value: null }, { at: 1000, value: 3 })).toBeNull();
    expect(perSecond({ at: 1000, value: 1 }, { at: 1000, value: 3 })).toBeNull();
    expect(perSecond({ at: 0, value: 9 }, { at: 1000, value: 3 })).toBeNull();
  });

  it('keeps the last `keep` samples and the one before them, without changing the history it was given', () => {
    let h = emptyHistory();
    for (let i = 0; i < 10; i++) h = pushSample(h, sample(i * 1000, { published: i * 5 }), 4);
    expect(h.samples.map((s) => s.at)).toEqual([5000, 6000, 7000, 8000, 9000]);
    const before = h;
    const after = pushSample(h, sample(10_000, {}), 4);
    expect(before.samples).toHaveLength(5);
    expect(after.samples.at(-1)!.at).toBe(10_000);
  });

  it('derives the series: rates from successive samples (none for the first), phases as numbers', () => {
    let h = emptyHistory();
    h = pushSample(h, sample(0, { published: 0, applied: 0, dlq: 0, lagSeconds: 0.5 }));
    h = pushSample(h, sample(1000, { published: 20, applied: 10, dlq: 1, lagSeconds: 2, phase: 'draining' }));
    h = pushSample(
      h,
      sample(3000, { published: 20, applied: 30, dlq: 1, lagSeconds: 0.1, phase: 'flipped' }),
    );
    const s = seriesOf(h);
    expect(s.publishedPerSecond).toEqual([null, 20, 0]);
    expect(s.appliedPerSecond).toEqual([null, 10, 10]);
    expect(s.dlq).toEqual([0, 1, 1]);
    expect(s.lagSeconds).toEqual([0.5, 2, 0.1]);
    expect(s.cutoverPhase).toEqual([null, 3, 8]);
  });
});
