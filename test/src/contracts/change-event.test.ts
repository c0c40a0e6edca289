import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type ChangeEvent,
  type ChangeSource,
  type Row,
  serializeEvent,
  serializeKey,
  serializeRow,
} from '../../../src/contracts/change-event.js';
import { RawJson } from '../../../src/contracts/event-value.js';
import { ErrorCodes, isReplicatorError } from '../../../src/core/errors.js';

const source: ChangeSource = {
  connector: 'replicator',
  db: 'legacy',
  schema: 'public',
  table: 'orders',
  lsn: '0/16B3748',
  commitLsn: '0/16B3800',
  txId: 731,
  commitTs: '2024-01-02T03:04:05.123456Z',
  ts_ms: 1704164645123,
  snapshot: false,
  seq: 2,
  unchangedToast: ['notes'],
};

const tricky = 'ünïcødé ✓ 😀 "quoted" \\ back\nnew\tline \u0000 \u001f \u2028 \ud800';

describe('envelope serializer', () => {
  it('writes every ChangeSource field (a new field must be added to serializeSource)', () => {
    expectTypeOf<keyof ChangeSource>().toEqualTypeOf<
      | 'connector'
      | 'db'
      | 'schema'
      | 'table'
      | 'lsn'
      | 'commitLsn'
      | 'txId'
      | 'commitTs'
      | 'ts_ms'
      | 'snapshot'
      | 'seq'
      | 'unchangedToast'
    >();
    const e: ChangeEvent = { before: null, after: { id: 1 }, op: 'c', source, ts_ms: 1 };
    expect(Object.keys(JSON.parse(serializeEvent(e)).source)).toEqual(Object.keys(source));
  });

  it('parses back to the event for values without RawJson', () => {
    const before: Row = { id: 7, name: 'old', price: '12.50', tags: ['a', null, 'b,c'], ok: true };
    const after: Row = {
      id: 7,
      name: tricky,
      price: '12.60',
      tags: [
        ['x', 'y'],
        ['z', null],
      ],
      ok: false,
      f: -1.5e-7,
      nothing: null,
    };
    const e: ChangeEvent = { before, after, op: 'u', source, ts_ms: 1704164645999 };
    const text = serializeEvent(e);
    expect(JSON.parse(text)).toEqual(e);
    expect(text).toBe(JSON.stringify(e));
  });

  it('matches JSON.stringify for snapshot, delete and truncate shapes with null source fields', () => {
    const snapshotSource: ChangeSource = {
      connector: 'replicator',
      db: 'legacy',
      schema: 'public',
      table: 'orders',
      lsn: '0/16B3748',
      commitLsn: '0/16B3748',
      txId: null,
      commitTs: null,
      ts_ms: null,
      snapshot: true,
      seq: 0,
    };
    const events: ChangeEvent[] = [
      { before: null, after: { id: 1 }, op: 'r', source: snapshotSource, ts_ms: 5 },
      { before: { id: 1 }, after: null, op: 'd', source, ts_ms: 6 },
      { before: null, after: null, op: 't', source: { ...source, unchangedToast: [] }, ts_ms: 7 },
    ];
    for (const e of events) expect(serializeEvent(e)).toBe(JSON.stringify(e));
  });

  it('inserts RawJson verbatim, so 20-digit integers are not rounded', () => {
    const doc = new RawJson('{"id": 12345678901234567890, "list": [1, 2.50]}');
    const e: ChangeEvent = {
      before: null,
      after: { id: 1, doc, docs: [doc, null] },
      op: 'c',
      source,
      ts_ms: 1,
    };
    const text = serializeEvent(e);
    expect(text).toContain('"doc":{"id": 12345678901234567890, "list": [1, 2.50]}');
    expect(text).toContain('"docs":[{"id": 12345678901234567890, "list": [1, 2.50]},null]');
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it('escapes strings exactly as JSON.stringify', () => {
    const row: Row = { [tricky]: tricky, plain: 'x', list: [tricky] };
    expect(serializeRow(row)).toBe(JSON.stringify(row));
    expect(serializeRow(null)).toBe('null');
    expect(serializeRow({})).toBe('{}');
  });

  it('keeps the row key order', () => {
    const row: Row = { z: 1, a: 2, m: 3 };
    expect(serializeRow(row)).toBe('{"z":1,"a":2,"m":3}');
  });

  it('writes only the key columns, in keyColumns order', () => {
    const row: Row = {
      a: 1,
      name: 'n',
      b: 'two "2"',
      c: null,
      doc: new RawJson('{"n":12345678901234567890}'),
    };
    expect(serializeKey(row, ['b', 'a'])).toBe('{"b":"two \\"2\\"","a":1}');
    expect(serializeKey(row, ['a', 'b'])).toBe('{"a":1,"b":"two \\"2\\""}');
    expect(serializeKey(row, ['c'])).toBe('{"c":null}');
    expect(serializeKey(row, ['doc'])).toBe('{"doc":{"n":12345678901234567890}}');
    expect(serializeKey(row, [])).toBe('{}');
  });

  it('refuses a key column absent from the row', () => {
    let error: unknown;
    try {
      serializeKey({ a: 1 }, ['a', 'toString']);
    } catch (e) {
      error = e;
    }
    expect(isReplicatorError(error, ErrorCodes.KEY_COLUMN_MISSING)).toBe(true);
  });
});
