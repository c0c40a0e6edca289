import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isNegativeDecimal, sumDecimals } from '../../transforms/decimal.js';

describe('sumDecimals', () => {
  it('is exact where floats are not', () => {
    expect(0.1 + 0.2).not.toBe(0.3);
    expect(sumDecimals(['0.10', '0.20'], 2)).toBe('0.30');
    expect(sumDecimals(['0.1', '0.2'], 2)).toBe('0.30');
  });

  it('formats with exactly the scale', () => {
    expect(sumDecimals([], 2)).toBe('0.00');
    expect(sumDecimals(['5'], 2)).toBe('5.00');
    expect(sumDecimals(['0.05'], 2)).toBe('0.05');
    expect(sumDecimals(['1.50', '-2.00'], 2)).toBe('-0.50');
    expect(sumDecimals(['12.500'], 2)).toBe('12.50');
  });

  it('sums large amounts without rounding', () => {
    expect(sumDecimals(Array(100).fill('9999999999.99'), 2)).toBe('999999999999.00');
    expect(sumDecimals(['9007199254740993.01', '0.01'], 2)).toBe('9007199254740993.02');
  });

  it('refuses values it would have to round', () => {
    expect(() => sumDecimals(['0.005'], 2)).toThrow(RangeError);
    expect(() => sumDecimals(['NaN'], 2)).toThrow(RangeError);
  });

  it('agrees with integer arithmetic on cents', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: -(10n ** 14n), max: 10n ** 14n })), (cents) => {
        const text = (c: bigint) => {
          const a = (c < 0n ? -c : c).toString().padStart(3, '0');
          return `${c < 0n ? '-' : ''}${a.slice(0, -2)}.${a.slice(-2)}`;
        };
        expect(sumDecimals(cents.map(text), 2)).toBe(text(cents.reduce((s, c) => s + c, 0n)));
      }),
    );
  });
});

describe('isNegativeDecimal', () => {
  it.each([
    ['-0.01', true],
    ['-5', true],
    ['-0.00', false],
    ['0.00', false],
    ['12.50', false],
  ])('%s → %s', (text, negative) => {
    expect(isNegativeDecimal(text)).toBe(negative);
  });
});
