import { describe, expect, it } from 'vitest';
import {
  exactNumberText,
  markExactNumber,
  parseJsonExactly,
  stringifyJsonExactly,
} from '../../../src/contracts/exact-json.js';

describe('exact JSON numbers', () => {
  it('keeps numbers a double cannot hold as their text, and parses the rest as JSON.parse does', () => {
    const text =
      '{"id":12345678901234567890,"small":42,"price":0.61300000000000000001,"neg":-9007199254740993,' +
      '"sci":1e400,"round":1e22,"f":0.1,"float8":1.5550000000000002,"e":1.5e-7,"zeros":100.000,"s":"12345678901234567890","a":[9007199254740993,1.5],"o":{"x":null}}';
    const parsed = parseJsonExactly(text) as Record<string, unknown>;
    expect(parsed).toEqual({
      id: markExactNumber('12345678901234567890'),
      small: 42,
      price: markExactNumber('0.61300000000000000001'),
      neg: markExactNumber('-9007199254740993'),
      sci: markExactNumber('1e400'),
      round: 1e22,
      f: 0.1,
      // A double's full precision (PostgreSQL prints float8 with 17 digits) is a number: it is exact.
      float8: 1.5550000000000002,
      e: 1.5e-7,
      zeros: 100,
      s: '12345678901234567890',
      a: [markExactNumber('9007199254740993'), 1.5],
      o: { x: null },
    });
    expect(exactNumberText(parsed.id as string)).toBe('12345678901234567890');
    expect(exactNumberText('12345678901234567890')).toBeUndefined();
  });

  it('writes marked numbers back as the numbers they were, and leaves every other value as JSON.stringify does', () => {
    const text = '{"id":12345678901234567890,"p":[0.61300000000000000001,-1e400],"s":"a\\"b","n":1.25}';
    expect(stringifyJsonExactly(parseJsonExactly(text))).toBe(text);
    expect(stringifyJsonExactly({ s: 'no numbers', n: [1, 2] })).toBe(
      JSON.stringify({ s: 'no numbers', n: [1, 2] }),
    );
  });

  it('takes the slow path only where a number may be inexact, with the same result as JSON.parse elsewhere', () => {
    // Fifteen digits and a point: parsed by the exact parser (the pattern cannot tell), still a plain number.
    expect(parseJsonExactly('[12345678901234.5, "1234567890123456"]')).toEqual([
      12345678901234.5,
      '1234567890123456',
    ]);
    expect(parseJsonExactly('{"a":[1,{"b":true}]}')).toEqual({ a: [1, { b: true }] });
  });

  it('keeps a "__proto__" key as data, as JSON.parse does', () => {
    const parsed = parseJsonExactly('{"__proto__":{"x":12345678901234567890}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.hasOwn(parsed, '__proto__')).toBe(true);
    expect(stringifyJsonExactly(parsed)).toBe('{"__proto__":{"x":12345678901234567890}}');
  });

  it('rejects what is not JSON', () => {
    expect(() => parseJsonExactly('{"a":12345678901234567890,}')).toThrow(SyntaxError);
    expect(() => parseJsonExactly('[1234567890123456789] x')).toThrow(SyntaxError);
  });
});
