import { describe, expect, it } from 'vitest';
import { isNormalizedEmail, normalizeEmail } from '../../transforms/email.js';

describe('normalizeEmail', () => {
  it('lower-cases and trims', () => {
    expect(normalizeEmail('  Ada.Lovelace@Example.COM \t\n')).toBe('ada.lovelace@example.com');
    expect(normalizeEmail('ADA@EXAMPLE.COM')).toBe('ada@example.com');
  });

  it.each([
    ['', 'empty'],
    ['   ', 'blank'],
    ['ada', 'no @'],
    ['ada@example', 'no dot in the domain'],
    ['@example.com', 'no local part'],
    ['ada@.com', 'nothing between @ and the dot'],
    ['ada@example.', 'nothing after the dot'],
    ['ada lovelace@example.com', 'inner space'],
    ['ada@@example.com', 'two @'],
    ['ada@exa mple.com', 'space in the domain'],
  ])('rejects %j (%s)', (raw) => {
    expect(normalizeEmail(raw)).toBeNull();
  });

  it('makes the composed and decomposed spellings one email (NFC)', () => {
    const composed = 'zo\u00eb@ex\u00e4mple.com';
    const decomposed = 'zoe\u0308@exa\u0308mple.com';
    expect(decomposed).not.toBe(composed);
    expect(normalizeEmail(decomposed)).toBe(composed);
    expect(normalizeEmail(composed.toUpperCase())).toBe(composed);
  });

  it('lower-cases a dotted capital I to a plain i, composed or not, independent of the locale', () => {
    expect(normalizeEmail('\u0130STANBUL@example.com')).toBe('istanbul@example.com');
    expect(normalizeEmail('I\u0307STANBUL@example.com')).toBe('istanbul@example.com');
    expect(normalizeEmail('ISTANBUL@example.com')).toBe('istanbul@example.com');
  });

  it('accepts what the rule accepts, however odd', () => {
    expect(normalizeEmail('a+tag@b.c')).toBe('a+tag@b.c');
    expect(normalizeEmail('a@b.c.d')).toBe('a@b.c.d');
    expect(normalizeEmail('"x"@b.co')).toBe('"x"@b.co');
  });

  it('treats non-strings as missing', () => {
    for (const raw of [null, undefined, 42, true, ['a@b.co'], { email: 'a@b.co' }]) {
      expect(normalizeEmail(raw)).toBeNull();
    }
  });

  it('isNormalizedEmail holds only for normalizeEmail output', () => {
    expect(isNormalizedEmail('ada@example.com')).toBe(true);
    expect(isNormalizedEmail('Ada@example.com')).toBe(false);
    expect(isNormalizedEmail(' ada@example.com')).toBe(false);
    expect(isNormalizedEmail('ada')).toBe(false);
  });
});
