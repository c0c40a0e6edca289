import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type ChangeEvent,
  type ChangeSource,
  parseChangeEventJson,
  type Row,
  serializeEvent,
  serializeKey,
  serializeRow,
} from '../../../src/contracts/change-event.js';
import { RawJson } from '../../../src/contracts/event-value.js';
import { markExactNumber } from '../../../src/contracts/exact-json.js';
import { ErrorCodes, isReplicatorError } from '../../../src/core/errors.js';
import {
  DEBEZIUM_ENVELOPE_FIELDS,
  DEBEZIUM_SOURCE_FIELDS,
  OWN_SOURCE_FIELDS,
} from '../../helpers/debezium-envelope.js';

const source: ChangeSource = {
  version: '0.1.0',
  connector: 'postgresql',
  name: 'legacy',
  ts_ms: 1704164645123,
  ts_us: 1704164645123456,
  snapshot: 'false',
  db: 'legacy',
  sequence: '["23811912","23811912"]',
  schema: 'public',
  table: 'orders',
  txId: 731,
  lsn: 0x16b3748n,
  xmin: null,
  origin: null,
  origin_lsn: null,
  commitLsn: '0/16B3800',
  seq: 2,
  commitTs: '2024-01-02T03:04:05.123456Z',
  unchangedToast: ['notes'],
};

const tricky = 'ünïcødé ✓ 😀 "quoted" \\ back\nnew\tline \u0000 \u001f \u2028 \ud800';

/** The envelope as a Debezium consumer parses it: lsn a number, ts_us and ts_ns beside each ts_ms. */
function parsedForm(e: ChangeEvent): unknown {
  const { lsn, ts_us, ...rest } = e.source;
  const nanos = (us: number) => Number(BigInt(us) * 1000n);
  return {
    before: e.before,
    after: e.after,
    source: { ...rest, ts_us, ts_ns: nanos(ts_us), lsn: Number(lsn) },
    transaction: e.transaction,
    op: e.op,
    ts_ms: e.ts_ms,
    ts_us: e.ts_ms * 1000,
    ts_ns: nanos(e.ts_ms * 1000),
  };
}

describe('envelope serializer', () => {
  it("writes every ChangeSource field, in Debezium's order (a new field must be added to serializeSource)", () => {
    expectTypeOf<keyof ChangeSource>().toEqualTypeOf<
      | 'version'
      | 'connector'
      | 'name'
      | 'ts_ms'
      | 'ts_us'
      | 'snapshot'
      | 'db'
      | 'sequence'
      | 'schema'
      | 'table'
      | 'txId'
      | 'lsn'
      | 'xmin'
      | 'origin'
      | 'origin_lsn'
      | 'commitLsn'
      | 'seq'
      | 'commitTs'
      | 'unchangedToast'
    >();
    const e: ChangeEvent = { before: null, after: { id: 1 }, source, transaction: null, op: 'c', ts_ms: 1 };
    const text = serializeEvent(e);
    const parsed = JSON.parse(text);
    expect(Object.keys(parsed)).toEqual(DEBEZIUM_ENVELOPE_FIELDS);
    expect(Object.keys(parsed.source)).toEqual([...DEBEZIUM_SOURCE_FIELDS, ...OWN_SOURCE_FIELDS]);
    // Exact digits where a double would round: ns of a commit time, an LSN beyond 2^53.
    expect(text).toContain('"ts_ns":1704164645123456000,');
    const far = serializeEvent({ ...e, source: { ...source, lsn: (1n << 60n) + 1n } });
    expect(far).toContain(`"lsn":${(1n << 60n) + 1n},`);
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
    const e: ChangeEvent = { before, after, source, transaction: null, op: 'u', ts_ms: 1704164645999 };
    expect(JSON.parse(serializeEvent(e))).toEqual(parsedForm(e));
  });

  it('parses back for snapshot, delete, truncate and transaction-metadata shapes', () => {
    const snapshotSource: ChangeSource = {
      ...source,
      snapshot: 'last',
      sequence: '[null,"23811912"]',
      txId: null,
      commitTs: null,
      seq: 0,
    };
    delete snapshotSource.unchangedToast;
    const events: ChangeEvent[] = [
      { before: null, after: { id: 1 }, source: snapshotSource, transaction: null, op: 'r', ts_ms: 5 },
      { before: { id: 1 }, after: null, source, transaction: null, op: 'd', ts_ms: 6 },
      {
        before: null,
        after: null,
        source: { ...source, unchangedToast: [] },
        transaction: null,
        op: 't',
        ts_ms: 7,
      },
      {
        before: null,
        after: { id: 2 },
        source,
        transaction: { id: '731:23812096', total_order: 3, data_collection_order: 2 },
        op: 'c',
        ts_ms: 8,
      },
    ];
    for (const e of events) expect(JSON.parse(serializeEvent(e))).toEqual(parsedForm(e));
  });

  it('inserts RawJson verbatim, so 20-digit integers are not rounded', () => {
    const doc = new RawJson('{"id": 12345678901234567890, "list": [1, 2.50]}');
    const e: ChangeEvent = {
      before: null,
      after: { id: 1, doc, docs: [doc, null] },
      source,
      transaction: null,
      op: 'c',
      ts_ms: 1,
    };
    const text = serializeEvent(e);
    expect(text).toContain('"doc":{"id": 12345678901234567890, "list": [1, 2.50]}');
    expect(text).toContain('"docs":[{"id": 12345678901234567890, "list": [1, 2.50]},null]');
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it("reads back with the images' numbers exact and the envelope's own numbers as plain numbers", () => {
    // A json value that even holds the source block's opening: only the envelope's own (the last) counts.
    const doc = new RawJson('{"x":1,"source":{"n":98765432109876543210},"big":12345678901234567890}');
    const e: ChangeEvent = {
      before: null,
      after: { id: 1, doc },
      source,
      transaction: null,
      op: 'c',
      ts_ms: 1,
    };
    const parsed = parseChangeEventJson(serializeEvent(e)) as {
      after: { doc: { source: { n: unknown }; big: unknown } };
      source: { ts_ns: unknown; ts_us: unknown };
      ts_ns: unknown;
    };
    expect(parsed.after.doc.big).toBe(markExactNumber('12345678901234567890'));
    expect(parsed.after.doc.source.n).toBe(markExactNumber('98765432109876543210'));
    expect(parsed.source.ts_us).toBe(source.ts_us);
    expect(typeof parsed.source.ts_ns).toBe('number');
    expect(typeof parsed.ts_ns).toBe('number');
    // Without RawJson nothing is marked: the same object JSON.parse gives.
    const plain: ChangeEvent = { ...e, after: { id: 1, price: '12.50' } };
    expect(parseChangeEventJson(serializeEvent(plain))).toEqual(JSON.parse(serializeEvent(plain)));
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
