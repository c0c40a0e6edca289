import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawJson } from '../../../../src/contracts/event-value.js';
import type { JsonRow, V2Entity } from '../../../../src/contracts/transform-api.js';
import { textTypes } from '../../../../src/core/pg-text-types.js';
import { quoteIdent } from '../../../../src/core/sql.js';
import {
  canonicalDecimal,
  canonicalRow,
  canonicalTimestamptz,
  canonicalValue,
  displayJson,
  type EntityShape,
  exactJson,
  hashLine,
  hashRowSql,
  jsonbText,
  keyText,
  plainNumber,
} from '../../../../src/ops/verify/canonical-row.js';
import { TARGET_OPTIONS } from '../../../../src/ops/verify/recheck-drift.js';
import { readEntityShapes } from '../../../../src/ops/verify/verify.js';
import { V2_DDL } from '../../../../transforms/v2-schema.js';
import { freshDatabase } from '../../../helpers/resources.js';

describe('comparison forms', () => {
  it('numerics without insignificant zeros', () => {
    expect(canonicalDecimal('10.10')).toBe('10.1');
    expect(canonicalDecimal('010.00')).toBe('10');
    expect(canonicalDecimal('-0.00')).toBe('0');
    expect(canonicalDecimal('.5')).toBe('0.5');
    expect(canonicalDecimal('-12.340')).toBe('-12.34');
    expect(canonicalDecimal('NaN')).toBe('NaN');
  });

  it('timestamptz as the UTC instant with microseconds, however written', () => {
    const utc = '2024-01-02T03:04:05.100000Z';
    for (const t of [
      '2024-01-02 03:04:05.1+00',
      '2024-01-02T03:04:05.1Z',
      '2024-01-02T05:04:05.1+02:00',
      '2024-01-01T22:04:05.100000-05',
      '2024-01-02T03:04:05.0999996Z',
    ]) {
      expect(canonicalTimestamptz(t), t).toBe(utc);
    }
    expect(canonicalTimestamptz('infinity')).toBe('infinity');
  });

  it('numbers as numeric prints them; jsonb key order (length, then bytes)', () => {
    expect(plainNumber(1e21)).toBe('1000000000000000000000');
    expect(plainNumber(1.5e-7)).toBe('0.00000015');
    expect(plainNumber(-2.5e-7)).toBe('-0.00000025');
    expect(plainNumber(1.25e22)).toBe('12500000000000000000000');
    expect(plainNumber(0.1)).toBe('0.1');
    expect(jsonbText({ bb: 1, a: [true, null, 'x'], ccc: { z: 1, y: 2 } })).toBe(
      '{"a": [true, null, "x"], "bb": 1, "ccc": {"y": 2, "z": 1}}',
    );
  });

  it('JSON exactly: numbers as decimals (the target’s text, not a double), strings as written, keys sorted', () => {
    const json = (text: string) => canonicalValue('json', new RawJson(text) as never);
    // A transform's JS value and the target's text of it compare equal however jsonb spells the number.
    expect(json('{"b": 1.50, "a": [1e21, -0, 0.1]}')).toBe(
      canonicalValue('json', { a: [1e21, -0, 0.1], b: 1.5 }),
    );
    expect(exactJson(new RawJson('1.5E-7'))).toBe('0.00000015');
    // Beyond a double's precision: distinct, though both read as the double 0.613.
    expect(json('{"confidence": 0.61300000000000000001}')).not.toBe(
      canonicalValue('json', { confidence: 0.613 }),
    );
    expect(json('{"confidence": 0.613}')).toBe(canonicalValue('json', { confidence: 0.613 }));
    // A timestamp-shaped string is a string, at the top or nested.
    for (const [a, b] of [
      ['"2024-01-02T03:04:05Z"', '"2024-01-02 03:04:05+00"'],
      ['{"at": "2024-01-02T03:04:05Z"}', '{"at": "2024-01-02 03:04:05+00"}'],
      ['[{"at": "2024-01-02T03:04:05Z"}]', '[{"at": "2024-01-02 03:04:05+00"}]'],
    ]) {
      expect(json(a!), a).not.toBe(json(b!));
      expect(json(a!), a).toBe(canonicalValue('json', JSON.parse(a!)));
    }
    // A number is not the string of its digits.
    expect(json('{"n": 1}')).not.toBe(canonicalValue('json', { n: '1' }));
    // Reports: a number a double cannot hold is shown as its text.
    expect(displayJson(new RawJson('{"c": 0.61300000000000000001, "d": 0.613, "e": [1.0]}'))).toEqual({
      c: '0.61300000000000000001',
      d: 0.613,
      e: [1],
    });
  });

  it('a one-column text key is its text; other keys are JSON', () => {
    expect(keyText(['6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f'])).toBe('6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f');
    expect(keyText(['b', 3])).toBe('["b",3]');
  });
});

describe('the chunk hash text: PostgreSQL prints exactly what hashLine writes', () => {
  let client: pg.Client;
  let shapes: Record<V2Entity, EntityShape>;

  beforeAll(async () => {
    const db = await freshDatabase('canonical');
    client = new pg.Client({ connectionString: db.url, types: textTypes, options: TARGET_OPTIONS });
    await client.connect();
    await client.query(V2_DDL);
    shapes = await readEntityShapes(client);
  });

  afterAll(async () => {
    await client?.end();
  });

  /** Inserts as the sink binds values (jsonb as JSON text), then compares both forms with what the target says. */
  async function roundTrip(entity: V2Entity, row: JsonRow) {
    const columns = Object.keys(row);
    const types = new Map(
      (
        await client.query<{ column_name: string; data_type: string }>(
          'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1',
          [entity],
        )
      ).rows.map((r) => [r.column_name, r.data_type]),
    );
    await client.query(
      `INSERT INTO ${quoteIdent(entity)} (${columns.map(quoteIdent).join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
      columns.map((c) => (types.get(c) === 'jsonb' && row[c] !== null ? JSON.stringify(row[c]) : row[c])),
    );
    const shape = shapes[entity];
    const key = shape.key[0]!.name;
    const back = (
      await client.query<JsonRow & { line: string }>(
        `SELECT t.*, ${hashRowSql(shape)} AS line FROM ${quoteIdent(entity)} t WHERE t.${quoteIdent(key)} = $1`,
        [row[key]],
      )
    ).rows[0]!;
    const { line, ...stored } = back;
    expect(line).toBe(hashLine(shape, row));
    expect(canonicalRow(shape, stored)).toBe(canonicalRow(shape, row));
  }

  it('users: nulls, numerics, timestamps with offsets and odd precision', async () => {
    await roundTrip('users', {
      id: '00000000-0000-5000-8000-000000000001',
      email: 'ada@example.com',
      first_name: 'Ada "the first" \\ Lovelace\u0001',
      last_name: null,
      phone: 'é ☃ 😀',
      company_name: '',
      customer_id: 'c1',
      plan: null,
      status: null,
      created_at: '2023-05-01T02:00:00.5+02:00',
      total_bookings: 3,
      total_spent: '30.30',
      first_booking_at: '2024-01-01T10:00:00Z',
      last_booking_at: null,
    });
  });

  it('bookings: a JSON column with nested values, unicode and control characters, long and short keys, odd numbers', async () => {
    await roundTrip('users', {
      id: '00000000-0000-5000-8000-000000000002',
      email: 'b@example.com',
      first_name: null,
      last_name: null,
      phone: null,
      company_name: null,
      customer_id: null,
      plan: null,
      status: null,
      created_at: '2024-01-01T00:00:00Z',
      total_bookings: 0,
      total_spent: '0',
      first_booking_at: null,
      last_booking_at: null,
    });
    await roundTrip('bookings', {
      id: '6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f',
      reference: 'REF-1',
      user_id: '00000000-0000-5000-8000-000000000002',
      status: 'PAID',
      amount: '10.10',
      contact: {
        email: 'b@example.com',
        zz: [1, 2.5, -0, 1e21, 1.5e-7, 'x\ty', { é: true, a: null }],
        a: 'line\nbreak\u007f',
        é: 'accent key',
        ab: { nested: { deeper: [[], {}] } },
      },
      booked_at: '2024-01-02T03:04:05.123456Z',
      updated_at: '2024-01-02 03:04:05+00',
    });
  });

  it('bundle discounts: booleans, a nullable numeric', async () => {
    await roundTrip('bundles', {
      id: '00000000-0000-5000-8000-0000000000b1',
      shop: 'shop-a',
      name: 'Set',
      title: 'Set',
      slug: 'set-1',
      type: 'FIXED',
      status: 'ACTIVE',
      source: 'AI',
      shopify_metaobject_id: null,
      metadata: { ai_bundle_id: 1, confidence: 0.123, support: 0.1, lift: 1.0000000000000002 },
      created_at: '2024-01-01T00:00:00Z',
    });
    await roundTrip('bundle_discounts', {
      bundle_id: '00000000-0000-5000-8000-0000000000b1',
      shopify_discount_id: 'd1',
      discount_type: 'automatic',
      percent: null,
      is_active: false,
    });
  });
});
