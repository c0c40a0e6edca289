import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareTimestamps, instantOf } from '../../transforms/compare-timestamps.js';

describe('compareTimestamps', () => {
  it('orders by instant across offsets and precisions', () => {
    expect(compareTimestamps('2024-01-02T03:04:05.000001Z', '2024-01-02T03:04:05Z')).toBe(1);
    expect(compareTimestamps('2024-01-02T05:04:05+02:00', '2024-01-02T03:04:06.000000Z')).toBe(-1);
    expect(compareTimestamps('2024-01-02T03:04:05.5Z', '2024-01-02T03:04:05.499999Z')).toBe(1);
  });

  it('breaks ties of one instant written two ways by text, and is 0 only for equal text', () => {
    const a = '2024-01-02T05:04:05.000000+02:00';
    const b = '2024-01-02T03:04:05.000000Z';
    expect(instantOf(a)).toBe(instantOf(b));
    // '…T05…+02:00' sorts after '…T03…Z' as text.
    expect(compareTimestamps(a, b)).toBe(1);
    expect(compareTimestamps(b, a)).toBe(-1);
    expect(compareTimestamps(b, b)).toBe(0);
  });

  it('handles years before 100 and rejects non-timestamps', () => {
    expect(instantOf('0099-01-01T00:00:00Z')).toBeLessThan(instantOf('0100-01-01T00:00:00Z'));
    expect(instantOf('1970-01-01T00:00:01.000000Z')).toBe(1_000_000_000n);
    expect(() => instantOf('infinity')).toThrow(RangeError);
  });
});

describe('compareTimestamps fast path (same UTC layout, compared as text)', () => {
  it('agrees with the order of instants', () => {
    const stamp = fc
      .tuple(fc.integer({ min: 0, max: 253_402_300_799_999 }), fc.integer({ min: 0, max: 999 }))
      .map(([ms, us]) => `${new Date(ms).toISOString().slice(0, 23)}${String(us).padStart(3, '0')}Z`);
    fc.assert(
      fc.property(stamp, stamp, (a, b) => {
        const ia = instantOf(a);
        const ib = instantOf(b);
        expect(Math.sign(compareTimestamps(a, b))).toBe(ia < ib ? -1 : ia > ib ? 1 : 0);
      }),
    );
  });
});
