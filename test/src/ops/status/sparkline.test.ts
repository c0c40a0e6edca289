import { describe, expect, it } from 'vitest';
import { sparkline } from '../../../../src/ops/status/sparkline.js';

describe('sparkline', () => {
  it('draws one bar per value, scaled from 0 to the highest', () => {
    expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7])).toBe('▁▂▃▄▅▆▇█');
    expect(sparkline([0, 50, 100])).toBe('▁▅█');
  });

  it('draws a steady non-zero series as full bars and all zeros as the lowest bar', () => {
    expect(sparkline([3, 3, 3])).toBe('███');
    expect(sparkline([0, 0])).toBe('▁▁');
  });

  it('keeps the newest `width` values', () => {
    expect(sparkline([7, 0, 7, 0], 2)).toBe('█▁');
    expect(sparkline([1, 2, 3], 10)).toHaveLength(3);
    expect(sparkline([1, 2, 3], 0)).toBe('');
  });

  it('leaves a space for an unknown value and scales negatives from the lowest', () => {
    expect(sparkline([null, 0, 7])).toBe(' ▁█');
    expect(sparkline([null, null])).toBe('  ');
    expect(sparkline([])).toBe('');
    expect(sparkline([-2, 0, 5])).toBe('▁▃█');
  });
});
