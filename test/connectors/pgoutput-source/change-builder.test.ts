import { describe, expect, it } from 'vitest';
import {
  ChangeBuilder,
  type ChangeBuilderOptions,
  isoFromMicros,
} from '../../../connectors/pgoutput-source/change-builder.js';
import {
  type DecodedMessage,
  type Relation,
  type Tuple,
  UNCHANGED_TOAST,
} from '../../../connectors/pgoutput-source/pgoutput-decoder.js';
import type { ChangeEvent } from '../../../src/contracts/change-event.js';
import { TypeCatalog } from '../../../src/contracts/event-value.js';
import type { OutMessage } from '../../../src/contracts/publisher.js';
import { changeTopic, heartbeatPrefix } from '../../../src/contracts/topics.js';
import { ErrorCodes, isReplicatorError } from '../../../src/core/errors.js';

const INT4 = 23;
const TEXT = 25;
const JSONB = 3802;
const NUMERIC = 1700;

const NOW = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const COMMIT_LSN = (0x16n << 32n) | 0xb374d848n;
const COMMIT_END_LSN = COMMIT_LSN + 0x30n;
/** 2024-01-02T03:04:05.123456Z in Unix microseconds. */
const COMMIT_US = BigInt(Date.UTC(2024, 0, 2, 3, 4, 5, 123)) * 1000n + 456n;
const XID = 4_294_967_280;

const orders: Relation = {
  relationOid: 16_384,
  schema: 'public',
  name: 'orders',
  replicaIdentity: 'default',
  columns: [
    { name: 'id', typeOid: INT4, typeMod: -1, isKey: true },
    { name: 'note', typeOid: TEXT, typeMod: -1, isKey: false },
    { name: 'doc', typeOid: JSONB, typeMod: -1, isKey: false },
    { name: 'price', typeOid: NUMERIC, typeMod: -1, isKey: false },
  ],
};

/** Primary key `id`, but replica identity on a unique index over `code`. */
const coded: Relation = {
  relationOid: 16_390,
  schema: 'shop',
  name: 'coded',
  replicaIdentity: 'index',
  columns: [
    { name: 'id', typeOid: INT4, typeMod: -1, isKey: false },
    { name: 'code', typeOid: TEXT, typeMod: -1, isKey: true },
    { name: 'note', typeOid: TEXT, typeMod: -1, isKey: false },
  ],
};

function builder(overrides: Partial<ChangeBuilderOptions> = {}): ChangeBuilder {
  const b = new ChangeBuilder({
    topicPrefix: 'legacy',
    database: 'legacydb',
    version: '9.9.9-test',
    catalog: new TypeCatalog(),
    partitionsOf: () => 1,
    now: () => NOW,
    ...overrides,
  });
  b.addRelation(orders, ['id']);
  return b;
}

const beginMsg: DecodedMessage = { tag: 'begin', commitLsn: COMMIT_LSN, commitTimeUs: COMMIT_US, xid: XID };
const commitMsg: DecodedMessage = {
  tag: 'commit',
  commitLsn: COMMIT_LSN,
  commitEndLsn: COMMIT_END_LSN,
  commitTimeUs: COMMIT_US,
};
const insertMsg = (relation: Relation, row: Tuple): DecodedMessage => ({ tag: 'insert', relation, new: row });
const updateMsg = (
  relation: Relation,
  row: Tuple,
  prior: { key?: Tuple; old?: Tuple } = {},
): DecodedMessage => ({ tag: 'update', relation, key: prior.key ?? null, old: prior.old ?? null, new: row });

/** The envelope as a consumer parses it (lsn a JSON number). */
type ParsedEvent = Omit<ChangeEvent, 'source'> & {
  source: Omit<ChangeEvent['source'], 'lsn'> & { lsn: number };
};
const eventOf = (m: OutMessage): ParsedEvent => JSON.parse(m.value as string) as ParsedEvent;

const row = (id: string, note: string | null = 'n'): Tuple => ({ id, note, doc: null, price: '1.00' });

describe('isoFromMicros', () => {
  it('writes ISO-8601 UTC with exactly six fractional digits', () => {
    expect(isoFromMicros(COMMIT_US)).toBe('2024-01-02T03:04:05.123456Z');
    expect(isoFromMicros(BigInt(Date.UTC(2024, 0, 2, 3, 4, 5)) * 1000n)).toBe('2024-01-02T03:04:05.000000Z');
    expect(isoFromMicros(BigInt(Date.UTC(2024, 0, 2, 3, 4, 5)) * 1000n + 7n)).toBe(
      '2024-01-02T03:04:05.000007Z',
    );
    expect(isoFromMicros(1n)).toBe('1970-01-01T00:00:00.000001Z');
    expect(isoFromMicros(BigInt(Date.UTC(2038, 0, 19, 3, 14, 7)) * 1000n + 999_999n)).toBe(
      '2038-01-19T03:14:07.999999Z',
    );
  });
});

describe('ChangeBuilder: transactions', () => {
  it('numbers the events of a transaction from 0 and gives them its commit LSN, xid and time', () => {
    const b = builder();
    expect(b.build(beginMsg, COMMIT_LSN - 0x100n)).toEqual({ messages: [] });
    expect(b.inTransaction).toBe(true);
    const walStarts = [COMMIT_LSN - 0xf0n, COMMIT_LSN - 0xa0n, COMMIT_LSN - 0x50n];
    const outs = [
      b.build(insertMsg(orders, row('1')), walStarts[0]!),
      b.build(insertMsg(orders, row('2')), walStarts[1]!),
      b.build(updateMsg(orders, row('1', 'changed')), walStarts[2]!),
    ];
    for (const o of outs) {
      expect(o.mark).toBeUndefined();
      expect(o.messages).toHaveLength(1);
    }
    const events = outs.map((o) => eventOf(o.messages[0]!));
    expect(events.map((e) => e.op)).toEqual(['c', 'c', 'u']);
    expect(events.map((e) => e.source.seq)).toEqual([0, 1, 2]);
    events.forEach((e, i) => {
      expect(e.source).toMatchObject({
        version: '9.9.9-test',
        connector: 'postgresql',
        name: 'legacy',
        db: 'legacydb',
        schema: 'public',
        table: 'orders',
        lsn: Number(walStarts[i]!),
        // No transaction committed yet in this session: Debezium's null last commit.
        sequence: `[null,"${walStarts[i]!}"]`,
        xmin: null,
        commitLsn: '16/B374D848',
        txId: XID,
        commitTs: '2024-01-02T03:04:05.123456Z',
        ts_ms: Date.UTC(2024, 0, 2, 3, 4, 5, 123),
        ts_us: Number(COMMIT_US),
        snapshot: 'false',
      });
      expect(e.transaction).toBeNull();
      expect(e.source.commitTs).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect(e.ts_ms).toBe(NOW);
    });
    expect(outs[0]!.messages[0]).toMatchObject({ topic: 'legacy.public.orders', key: '{"id":1}' });
    expect(events[0]!.after).toEqual({ id: 1, note: 'n', doc: null, price: '1.00' });
    expect(events[2]!.before).toBeNull();

    const done = b.build(commitMsg, COMMIT_LSN);
    expect(done).toEqual({ messages: [], mark: COMMIT_END_LSN });
    expect(b.inTransaction).toBe(false);
  });

  it('starts seq again at 0 in the next transaction', () => {
    const b = builder();
    b.build(beginMsg, 0n);
    b.build(insertMsg(orders, row('1')), 1n);
    b.build(commitMsg, 2n);
    b.build({ ...beginMsg, xid: 9 }, 3n);
    const e = eventOf(b.build(insertMsg(orders, row('2')), 4n).messages[0]!);
    expect(e.source.seq).toBe(0);
    expect(e.source.txId).toBe(9);
    // Debezium's sequence: where the last transaction's commit record ended, then this change's LSN.
    expect(e.source.sequence).toBe(`["${COMMIT_END_LSN}","4"]`);
  });

  it("fills Debezium's transaction block when asked: id, order in the transaction and in the table", () => {
    const b = builder({ transactionMetadata: true });
    b.addRelation(coded, ['id']);
    b.build(beginMsg, 0n);
    const events = [
      b.build(insertMsg(orders, row('1')), 1n),
      b.build(insertMsg(coded, { id: '1', code: 'a', note: null }), 2n),
      b.build(insertMsg(orders, row('2')), 3n),
    ].map((r) => eventOf(r.messages[0]!));
    expect(events.map((e) => e.transaction)).toEqual([
      { id: `${XID}:${COMMIT_LSN}`, total_order: 1, data_collection_order: 1 },
      { id: `${XID}:${COMMIT_LSN}`, total_order: 2, data_collection_order: 1 },
      { id: `${XID}:${COMMIT_LSN}`, total_order: 3, data_collection_order: 2 },
    ]);
  });

  it('gives a keepalive a mark only outside a transaction', () => {
    const b = builder();
    expect(b.keepalive(100n)).toEqual({ messages: [], mark: 100n });
    b.build(beginMsg, 0n);
    expect(b.keepalive(200n)).toEqual({ messages: [] });
    expect(b.keepalive(200n).mark).toBeUndefined();
    b.build(commitMsg, 0n);
    expect(b.keepalive(300n)).toEqual({ messages: [], mark: 300n });
  });

  it('ignores relation, type and origin messages', () => {
    const b = builder();
    expect(b.build({ tag: 'relation', relation: orders }, 0n)).toEqual({ messages: [] });
    expect(b.build({ tag: 'type', typeOid: 99_999, typeSchema: 'public', typeName: 'mood' }, 0n)).toEqual({
      messages: [],
    });
    expect(b.build({ tag: 'origin', originName: 'elsewhere' }, 0n)).toEqual({ messages: [] });
  });
});

describe('ChangeBuilder: heartbeats', () => {
  const heartbeat = (prefix: string, transactional = false): DecodedMessage => ({
    tag: 'message',
    transactional,
    messageLsn: COMMIT_LSN,
    prefix,
    content: Buffer.from('2026-01-01T00:00:00.000Z', 'utf8'),
  });

  it('turns a non-transactional `<topicPrefix>.heartbeat` message into a heartbeat and a mark', () => {
    const b = builder();
    expect(heartbeatPrefix('legacy')).toBe('legacy.heartbeat');
    const r = b.build(heartbeat('legacy.heartbeat'), COMMIT_LSN);
    expect(r.mark).toBe(COMMIT_LSN);
    expect(r.messages).toHaveLength(1);
    const m = r.messages[0]!;
    expect(m.topic).toBe('legacy.heartbeat');
    expect(m.key).toBe('legacydb');
    expect(JSON.parse(m.value as string)).toEqual({
      lsn: '16/B374D848',
      sentAt: '2026-01-01T00:00:00.000Z',
      ts_ms: NOW,
    });
  });

  it('ignores messages with other prefixes', () => {
    const b = builder();
    for (const prefix of ['other.heartbeat', 'legacy.heartbeatx', 'legacy', 'heartbeat', '']) {
      expect(b.build(heartbeat(prefix), COMMIT_LSN)).toEqual({ messages: [] });
    }
  });

  it('publishes but does not mark a heartbeat that is transactional or inside a transaction', () => {
    const b = builder();
    const transactional = b.build(heartbeat('legacy.heartbeat', true), COMMIT_LSN);
    expect(transactional.messages).toHaveLength(1);
    expect(transactional.mark).toBeUndefined();
    b.build(beginMsg, 0n);
    const inside = b.build(heartbeat('legacy.heartbeat'), COMMIT_LSN);
    expect(inside.messages).toHaveLength(1);
    expect(inside.mark).toBeUndefined();
  });
});

describe('ChangeBuilder: updates and deletes', () => {
  it('emits a delete of the old key then a create of the new one when the key changes (old tuple)', () => {
    const b = builder();
    b.build(beginMsg, 0n);
    const r = b.build(updateMsg(orders, row('2', 'moved'), { old: row('1', 'before') }), 10n);
    expect(r.messages).toHaveLength(3);
    const [del, tombstone, create] = r.messages as [OutMessage, OutMessage, OutMessage];
    // The old key's tombstone sits between them, on its partition (same key), as Debezium's.
    expect(tombstone).toMatchObject({ topic: 'legacy.public.orders', key: '{"id":1}', value: null });
    expect(del.key).toBe('{"id":1}');
    expect(create.key).toBe('{"id":2}');
    expect(del.topic).toBe('legacy.public.orders');
    expect(create.topic).toBe('legacy.public.orders');
    const [d, c] = [eventOf(del), eventOf(create)];
    expect(d.op).toBe('d');
    expect(d.before).toEqual({ id: 1, note: 'before', doc: null, price: '1.00' });
    expect(d.after).toBeNull();
    expect(c.op).toBe('c');
    expect(c.before).toBeNull();
    expect(c.after).toEqual({ id: 2, note: 'moved', doc: null, price: '1.00' });
    expect([d.source.seq, c.source.seq]).toEqual([0, 1]);
  });

  it('emits a delete then a create when the key tuple holds another id', () => {
    const b = builder();
    b.build(beginMsg, 0n);
    const r = b.build(updateMsg(orders, row('2'), { key: { id: '1' } }), 10n);
    expect(r.messages.map((m) => [m.value === null ? null : eventOf(m).op, m.key])).toEqual([
      ['d', '{"id":1}'],
      [null, '{"id":1}'],
      ['c', '{"id":2}'],
    ]);
    expect(eventOf(r.messages[0]!).before).toEqual({ id: 1 });
  });

  it('emits one update when the key is the same', () => {
    const b = builder();
    b.build(beginMsg, 0n);
    const withOld = b.build(updateMsg(orders, row('1', 'after'), { old: row('1', 'before') }), 10n);
    expect(withOld.messages).toHaveLength(1);
    const u = eventOf(withOld.messages[0]!);
    expect(u.op).toBe('u');
    expect(u.before).toEqual({ id: 1, note: 'before', doc: null, price: '1.00' });
    expect(withOld.messages[0]!.key).toBe('{"id":1}');
    const withKey = b.build(updateMsg(orders, row('1', 'again'), { key: { id: '1' } }), 11n);
    expect(withKey.messages.map((m) => eventOf(m).op)).toEqual(['u']);
  });

  it('keys a delete by its old row', () => {
    const b = builder();
    b.build(beginMsg, 0n);
    const r = b.build({ tag: 'delete', relation: orders, key: { id: '5' }, old: null }, 10n);
    expect(r.messages).toHaveLength(2);
    expect(r.messages[0]!.key).toBe('{"id":5}');
    expect(eventOf(r.messages[0]!)).toMatchObject({ op: 'd', before: { id: 5 }, after: null });
    expect(r.messages[1]).toMatchObject({ key: '{"id":5}', value: null, table: 'public.orders' });
    const without = builder({ tombstones: false });
    without.build(beginMsg, 0n);
    const d = without.build({ tag: 'delete', relation: orders, key: { id: '5' }, old: null }, 10n);
    expect(d.messages.map((m) => eventOf(m).op)).toEqual(['d']);
  });

  it('refuses a delete with neither key nor old row', () => {
    const b = builder();
    let e: unknown;
    try {
      b.build({ tag: 'delete', relation: orders, key: null, old: null }, 10n);
    } catch (err) {
      e = err;
    }
    expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
  });

  it('refuses a change for a relation that was not registered', () => {
    const b = builder();
    let e: unknown;
    try {
      b.build(insertMsg(coded, { id: '1', code: 'A', note: null }), 10n);
    } catch (err) {
      e = err;
    }
    expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
  });
});

describe('ChangeBuilder: truncate', () => {
  it('sends one event per partition, with explicit partitions and a null key', () => {
    const partitions: Record<string, number> = { 'legacy.public.orders': 3, 'legacy.shop.coded': 2 };
    const b = builder({ partitionsOf: (topic) => partitions[topic] ?? 1 });
    b.addRelation(coded, ['id']);
    b.build(beginMsg, 0n);
    const r = b.build(
      { tag: 'truncate', relations: [orders, coded], cascade: false, restartIdentity: false },
      7n,
    );
    expect(r.mark).toBeUndefined();
    expect(r.messages.map((m) => [m.topic, m.partition, m.key])).toEqual([
      ['legacy.public.orders', 0, null],
      ['legacy.public.orders', 1, null],
      ['legacy.public.orders', 2, null],
      ['legacy.shop.coded', 0, null],
      ['legacy.shop.coded', 1, null],
    ]);
    for (const m of r.messages) {
      const e = eventOf(m);
      expect(e.op).toBe('t');
      expect(e.before).toBeNull();
      expect(e.after).toBeNull();
      expect(e.source.txId).toBe(XID);
    }
    expect(eventOf(r.messages[0]!).source.table).toBe('orders');
    expect(eventOf(r.messages[3]!).source.table).toBe('coded');
  });
});

describe('ChangeBuilder: Kafka keys', () => {
  it('keys by the primary key given to addRelation, not by the replica identity', () => {
    const b = builder();
    b.addRelation(coded, ['id']);
    const r = b.build(insertMsg(coded, { id: '7', code: 'A-1', note: 'x' }), 1n);
    expect(r.messages[0]!.key).toBe('{"id":7}');
    expect(r.messages[0]!.topic).toBe(changeTopic('legacy', 'shop', 'coded'));
    expect(r.messages[0]!.topic).toBe('legacy.shop.coded');
  });

  it('keys by the replica identity (isKey) columns when there is no primary key', () => {
    const b = builder();
    b.addRelation(coded, []);
    const r = b.build(insertMsg(coded, { id: '7', code: 'A-1', note: 'x' }), 1n);
    expect(r.messages[0]!.key).toBe('{"code":"A-1"}');
  });

  it('keys in primary-key order for composite keys', () => {
    const b = builder();
    b.addRelation(coded, ['code', 'id']);
    const r = b.build(insertMsg(coded, { id: '7', code: 'A-1', note: 'x' }), 1n);
    expect(r.messages[0]!.key).toBe('{"code":"A-1","id":7}');
  });

  it('refuses to key a delete whose key tuple lacks the primary key (identity index without it)', () => {
    const b = builder();
    b.addRelation(coded, ['id']);
    let e: unknown;
    try {
      // REPLICA IDENTITY USING INDEX on (code): pgoutput's key tuple holds `code` only.
      b.build({ tag: 'delete', relation: coded, key: { code: 'A-1' }, old: null }, 1n);
    } catch (err) {
      e = err;
    }
    // A coded error rather than a message on the wrong partition.
    expect(isReplicatorError(e, ErrorCodes.KEY_COLUMN_MISSING)).toBe(true);
  });

  it('follows a later addRelation (a primary key changed by ALTER TABLE)', () => {
    const b = builder();
    b.addRelation(coded, []);
    b.addRelation(coded, ['id']);
    const r = b.build(insertMsg(coded, { id: '7', code: 'A-1', note: 'x' }), 1n);
    expect(r.messages[0]!.key).toBe('{"id":7}');
  });
});

describe('ChangeBuilder: values', () => {
  // Column names are the table's, not ours: they must never be looked up on Object.prototype.
  const odd: Relation = {
    relationOid: 16_400,
    schema: 'public',
    name: 'odd',
    replicaIdentity: 'default',
    columns: [
      { name: 'id', typeOid: INT4, typeMod: -1, isKey: true },
      { name: 'constructor', typeOid: TEXT, typeMod: -1, isKey: false },
      { name: 'toString', typeOid: INT4, typeMod: -1, isKey: false },
    ],
  };

  it('leaves non-key columns named like Object.prototype members out of a key-only before row', () => {
    const b = builder();
    b.addRelation(odd, ['id']);
    // A key tuple ('K', replica identity default) as the decoder gives it: the key columns only.
    const r = b.build({ tag: 'delete', relation: odd, key: { id: '5' }, old: null }, 1n);
    expect(r.messages).toHaveLength(2);
    expect(r.messages[0]!.key).toBe('{"id":5}');
    expect(eventOf(r.messages[0]!).before).toEqual({ id: 5 });
  });

  it('keeps a column named __proto__ (a legal PostgreSQL column name)', () => {
    const b = builder();
    const proto: Relation = {
      ...odd,
      relationOid: 16_401,
      columns: [
        { name: 'id', typeOid: INT4, typeMod: -1, isKey: true },
        { name: '__proto__', typeOid: TEXT, typeMod: -1, isKey: false },
      ],
    };
    b.addRelation(proto, ['id']);
    const tuple: Tuple = Object.fromEntries([
      ['id', '1'],
      ['__proto__', 'kept'],
    ]);
    const text = b.build(insertMsg(proto, tuple), 1n).messages[0]!.value as string;
    expect(text).toContain('"after":{"id":1,"__proto__":"kept"}');
  });

  it('leaves unchanged TOAST columns out of `after` and lists them in source.unchangedToast', () => {
    const b = builder();
    b.build(beginMsg, 0n);
    const r = b.build(
      updateMsg(orders, { id: '1', note: UNCHANGED_TOAST, doc: UNCHANGED_TOAST, price: '2.00' }),
      10n,
    );
    expect(r.messages).toHaveLength(1);
    const text = r.messages[0]!.value as string;
    const e = eventOf(r.messages[0]!);
    expect(e.op).toBe('u');
    expect(e.after).toEqual({ id: 1, price: '2.00' });
    expect(Object.hasOwn(e.after!, 'note')).toBe(false);
    expect(Object.hasOwn(e.after!, 'doc')).toBe(false);
    expect(e.source.unchangedToast).toEqual(['note', 'doc']);
    expect(text).toContain('"after":{"id":1,"price":"2.00"}');
    expect(text).toContain('"unchangedToast":["note","doc"]');
  });

  it('writes no unchangedToast field when every column was sent', () => {
    const b = builder();
    const e = eventOf(b.build(insertMsg(orders, row('1')), 1n).messages[0]!);
    expect('unchangedToast' in e.source).toBe(false);
  });

  it('keeps a 20-digit integer inside jsonb verbatim in the serialized value', () => {
    const b = builder();
    const doc = '{"n": 12345678901234567890, "f": 0.1000000000000000055511151231257827}';
    const r = b.build(insertMsg(orders, { id: '1', note: null, doc, price: '123456789012345678901.5' }), 1n);
    const text = r.messages[0]!.value as string;
    expect(text).toContain(`"doc":${doc}`);
    expect(text).toContain('12345678901234567890');
    expect(text).toContain('"price":"123456789012345678901.5"');
    expect(text).not.toContain('12345678901234567000');
  });

  it('decodes by column type: int4 to a number, numeric and text to strings, SQL NULL to null', () => {
    const b = builder();
    const e = eventOf(
      b.build(insertMsg(orders, { id: '42', note: '42', doc: null, price: '42' }), 1n).messages[0]!,
    );
    expect(e.after).toEqual({ id: 42, note: '42', doc: null, price: '42' });
  });

  it('outside a transaction uses the change LSN as commitLsn, null transaction fields and the time read', () => {
    const b = builder();
    const e = eventOf(b.build(insertMsg(orders, row('1')), COMMIT_LSN).messages[0]!);
    expect(e.source).toMatchObject({
      lsn: Number(COMMIT_LSN),
      commitLsn: '16/B374D848',
      txId: null,
      commitTs: null,
      ts_ms: NOW,
      ts_us: NOW * 1000,
      seq: 0,
    });
  });
});
