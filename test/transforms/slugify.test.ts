import { describe, expect, it } from 'vitest';
import { slugify } from '../../transforms/slugify.js';

describe('slugify', () => {
  it.each([
    ['Summer Sale', 'summer-sale'],
    ['Summer  Sale (2024)!', 'summer-sale-2024'],
    ['--Kit & Co--', 'kit-co'],
    ['  Already-slugged  ', 'already-slugged'],
    ['ALLCAPS123', 'allcaps123'],
    ['Crème Brûlée', 'cr-me-br-l-e'],
    ['a_b.c/d', 'a-b-c-d'],
    ['!!!', ''],
    ['', ''],
  ])('%j → %j', (text, slug) => {
    expect(slugify(text)).toBe(slug);
  });
});
