import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn } from '../../../src/core/lsn.js';

describe('lsn', () => {
  it('parses padded and unpadded text alike', () => {
    expect(parseLsn('0/16B3748')).toBe(0x16b3748n);
    expect(parseLsn('00000000/016B3748')).toBe(0x16b3748n);
    expect(parseLsn('16/b374d848')).toBe((0x16n << 32n) | 0xb374d848n);
  });
  it('formats like the server (uppercase, unpadded)', () => {
    expect(formatLsn(0x16b3748n)).toBe('0/16B3748');
    expect(formatLsn(0xffffffffffffffffn)).toBe('FFFFFFFF/FFFFFFFF');
  });
  it('round-trips every 64-bit value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (n) => parseLsn(formatLsn(n)) === n),
    );
  });
  it('rejects what is not an LSN', () => {
    expect(() => parseLsn('12345')).toThrow(/not an LSN/);
    expect(() => parseLsn('1/123456789')).toThrow(/not an LSN/);
  });
});
