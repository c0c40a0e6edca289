import { describe, expect, it } from 'vitest';
import { compareText } from '../../transforms/compare-text.js';

describe('compareText', () => {
  it('orders by code point (COLLATE "C"), not by locale', () => {
    expect(compareText('B', 'a')).toBe(-1);
    expect(compareText('c10', 'c9')).toBe(-1);
    expect(compareText('ab', 'abc')).toBe(-1);
    expect(compareText('abc', 'abc')).toBe(0);
  });

  it('puts characters beyond U+FFFF after U+FFFF, unlike UTF-16 order', () => {
    expect('\u{1F600}' < '\uFFFD').toBe(true);
    expect(compareText('\u{1F600}', '\uFFFD')).toBe(1);
  });
});
