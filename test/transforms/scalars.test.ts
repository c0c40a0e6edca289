import { describe, expect, it } from 'vitest';
import { isJsonValue, jsonObjectSchema, jsonValueSchema } from '../../transforms/scalars.js';

describe('jsonValueSchema / jsonObjectSchema', () => {
  it.each([
    ['null', null],
    ['a boolean', false],
    ['a number', -12.5],
    ['a string', ''],
    ['nested arrays and objects', { a: [1, 'x', null, { b: [true, { c: [] }] }], d: {} }],
    ['an object without a prototype', Object.assign(Object.create(null), { a: 1 })],
  ])('accepts %s', (_, value) => {
    expect(isJsonValue(value)).toBe(true);
    expect(jsonValueSchema.safeParse(value).success).toBe(true);
  });

  it.each([
    ['undefined', undefined],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a bigint', 1n],
    ['a function', () => 1],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['undefined deep in an array', [1, [2, undefined]]],
    ['NaN deep in an object', { a: { b: { c: Number.NaN } } }],
    ['a Date as a member', { at: new Date(0) }],
  ])('rejects %s', (_, value) => {
    expect(isJsonValue(value)).toBe(false);
    expect(jsonValueSchema.safeParse(value).success).toBe(false);
  });

  it('an object schema takes only objects', () => {
    expect(jsonObjectSchema.safeParse({ a: [1] }).success).toBe(true);
    for (const v of [null, [1], 'x', 3]) expect(jsonObjectSchema.safeParse(v).success).toBe(false);
  });
});
