import { describe, expect, it } from 'vitest';
import { whyFullFinalVerify } from '../../../../src/ops/cutover/final-verify.js';

describe('whyFullFinalVerify (the cutover final verify: delta or full)', () => {
  const base = { changed: 50, rows: 10_000, users: 5_000 };

  it('the delta when a clean full verify is the base and few rows changed since (auto and delta)', () => {
    expect(whyFullFinalVerify({ mode: 'auto', base })).toBeUndefined();
    expect(whyFullFinalVerify({ mode: 'delta', base })).toBeUndefined();
  });

  it('auto: the full one once the delta would read more than a tenth of the rows — changed rows and their users’ other rows', () => {
    // 2 rows per user: each changed row brings ~2 more (its user's), so 334 × 3 > 1,000.
    expect(whyFullFinalVerify({ mode: 'auto', base: { changed: 334, rows: 10_000, users: 5_000 } })).toBe(
      '334 of ~10000 legacy rows changed since the last verify, ~2 per user: the full verify is the quicker',
    );
    expect(
      whyFullFinalVerify({ mode: 'auto', base: { changed: 333, rows: 10_000, users: 5_000 } }),
    ).toBeUndefined();
    // Users with thousands of rows each: a hundred changes mean reading (about) every row.
    expect(whyFullFinalVerify({ mode: 'auto', base: { changed: 100, rows: 1_000_000, users: 300 } })).toMatch(
      /~3333 per user: the full verify is the quicker$/,
    );
    // No users counted yet (never analyzed): every row could be one user's.
    expect(whyFullFinalVerify({ mode: 'auto', base: { changed: 1, rows: 10_000, users: 0 } })).toMatch(
      /quicker$/,
    );
    expect(
      whyFullFinalVerify({ mode: 'delta', base: { changed: 9_000, rows: 10_000, users: 10 } }),
    ).toBeUndefined();
  });

  it('the full one when asked, for a shop, with dead letters (changes the lineage does not record), or without a base', () => {
    expect(whyFullFinalVerify({ mode: 'full', base })).toBe('asked for');
    expect(whyFullFinalVerify({ mode: 'auto', full: true, base })).toBe('asked for');
    expect(whyFullFinalVerify({ mode: 'delta', shop: 'shop-1', base })).toBe('shop shop-1');
    expect(whyFullFinalVerify({ mode: 'delta', deadLetters: 2, base })).toBe('2 dead letter(s)');
    expect(whyFullFinalVerify({ mode: 'delta' })).toMatch(/^no clean full verify to start from/);
  });
});
