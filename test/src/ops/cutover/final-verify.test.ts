import { describe, expect, it } from 'vitest';
import { whyFullFinalVerify } from '../../../../src/ops/cutover/final-verify.js';

describe('whyFullFinalVerify (the cutover final verify: delta or full)', () => {
  const base = { changed: 50, rows: 10_000 };

  it('the delta when a clean full verify is the base and few rows changed since (auto and delta)', () => {
    expect(whyFullFinalVerify({ mode: 'auto', base })).toBeUndefined();
    expect(whyFullFinalVerify({ mode: 'delta', base })).toBeUndefined();
  });

  it('auto: the full one once more than a tenth of the rows changed (it is then the quicker); delta keeps the delta', () => {
    expect(whyFullFinalVerify({ mode: 'auto', base: { changed: 1_001, rows: 10_000 } })).toBe(
      '1001 of ~10000 legacy rows changed since the last verify',
    );
    expect(whyFullFinalVerify({ mode: 'auto', base: { changed: 1_000, rows: 10_000 } })).toBeUndefined();
    expect(whyFullFinalVerify({ mode: 'delta', base: { changed: 9_000, rows: 10_000 } })).toBeUndefined();
  });

  it('the full one when asked, for a shop, with dead letters (changes the lineage does not record), or without a base', () => {
    expect(whyFullFinalVerify({ mode: 'full', base })).toBe('asked for');
    expect(whyFullFinalVerify({ mode: 'auto', full: true, base })).toBe('asked for');
    expect(whyFullFinalVerify({ mode: 'delta', shop: 'shop-1', base })).toBe('shop shop-1');
    expect(whyFullFinalVerify({ mode: 'delta', deadLetters: 2, base })).toBe('2 dead letter(s)');
    expect(whyFullFinalVerify({ mode: 'delta' })).toMatch(/^no clean full verify to start from/);
  });
});
