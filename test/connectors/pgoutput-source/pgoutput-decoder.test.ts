import { describe, expect, it } from 'vitest';
import {
  type DecodedMessage,
  PgoutputDecoder,
  UNCHANGED_TOAST,
} from '../../../connectors/pgoutput-source/pgoutput-decoder.js';
import { ErrorCodes, isReplicatorError } from '../../../src/core/errors.js';

/**
 * pgoutput protocol-v1 messages built by hand, following
 * https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
 */

/** Microseconds between the Unix epoch and PostgreSQL's. */
const PG_EPOCH_US = 946_684_800_000_000n;

class Writer {
  private readonly parts: Buffer[] = [];

  byte(c: string | number): this {
    this.parts.push(Buffer.from([typeof c === 'string' ? c.charCodeAt(0) : c]));
    return this;
  }

  int16(n: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    this.parts.push(b);
    return this;
  }

  /** Writes the 32 bits of n, whether given signed or unsigned. */
  int32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }

  int64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, n));
    this.parts.push(b);
    return this;
  }

  cstring(s: string): this {
    this.parts.push(Buffer.from(`${s}\0`, 'utf8'));
    return this;
  }

  bytes(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A column in TupleData: text, SQL NULL, or an unchanged TOAST datum ('u'). */
type Col = string | null | typeof UNCHANGED_TOAST;

function tupleData(w: Writer, cols: readonly Col[]): Writer {
  w.int16(cols.length);
  for (const c of cols) {
    if (c === null) w.byte('n');
    else if (c === UNCHANGED_TOAST) w.byte('u');
    else {
      const b = Buffer.from(c, 'utf8');
      w.byte('t').int32(b.length).bytes(b);
    }
  }
  return w;
}

const begin = (finalLsn: bigint, commitTimePgUs: bigint, xid: number) =>
  new Writer().byte('B').int64(finalLsn).int64(commitTimePgUs).int32(xid).done();

const commit = (commitLsn: bigint, endLsn: bigint, commitTimePgUs: bigint) =>
  new Writer().byte('C').byte(0).int64(commitLsn).int64(endLsn).int64(commitTimePgUs).done();

interface ColDef {
  flags: number;
  name: string;
  typeOid: number;
  typeMod: number;
}

function relationMsg(oid: number, schema: string, name: string, identity: string, cols: ColDef[]): Buffer {
  const w = new Writer().byte('R').int32(oid).cstring(schema).cstring(name).byte(identity).int16(cols.length);
  for (const c of cols) w.byte(c.flags).cstring(c.name).int32(c.typeOid).int32(c.typeMod);
  return w.done();
}

const insert = (oid: number, cols: readonly Col[]) =>
  tupleData(new Writer().byte('I').int32(oid).byte('N'), cols).done();

function update(
  oid: number,
  newCols: readonly Col[],
  prior?: { kind: 'K' | 'O'; cols: readonly Col[] },
): Buffer {
  const w = new Writer().byte('U').int32(oid);
  if (prior) tupleData(w.byte(prior.kind), prior.cols);
  return tupleData(w.byte('N'), newCols).done();
}

const del = (oid: number, kind: 'K' | 'O', cols: readonly Col[]) =>
  tupleData(new Writer().byte('D').int32(oid).byte(kind), cols).done();

function truncate(oids: number[], flags: number): Buffer {
  const w = new Writer().byte('T').int32(oids.length).byte(flags);
  for (const oid of oids) w.int32(oid);
  return w.done();
}

const message = (flags: number, lsn: bigint, prefix: string, content: Buffer) =>
  new Writer().byte('M').byte(flags).int64(lsn).cstring(prefix).int32(content.length).bytes(content).done();

const ITEMS_OID = 16_385;
const ITEMS_COLUMNS: ColDef[] = [
  { flags: 1, name: 'id', typeOid: 23, typeMod: -1 },
  { flags: 0, name: 'note', typeOid: 25, typeMod: -1 },
  { flags: 0, name: 'created', typeOid: 1184, typeMod: -1 },
  { flags: 0, name: 'price', typeOid: 1700, typeMod: (10 << 16) + 2 + 4 },
  { flags: 0, name: 'big', typeOid: 25, typeMod: -1 },
];

/** A decoder that has seen the relation of `items` (replica identity default: key = id). */
function decoderWithItems(identity = 'd'): PgoutputDecoder {
  const d = new PgoutputDecoder();
  d.decode(relationMsg(ITEMS_OID, 'public', 'items', identity, ITEMS_COLUMNS));
  return d;
}

function as<T extends DecodedMessage['tag']>(m: DecodedMessage, tag: T): Extract<DecodedMessage, { tag: T }> {
  if (m.tag !== tag) throw new Error(`expected ${tag}, got ${m.tag}`);
  return m as Extract<DecodedMessage, { tag: T }>;
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

const LSN_1 = (0x16n << 32n) | 0xb374d848n;
const LSN_2 = (0x16n << 32n) | 0xb374d9a0n;
/** 2024-01-02T03:04:05.123456Z */
const COMMIT_UNIX_US = BigInt(Date.UTC(2024, 0, 2, 3, 4, 5, 123)) * 1000n + 456n;
const COMMIT_PG_US = COMMIT_UNIX_US - PG_EPOCH_US;

describe('pgoutput decoder: transaction framing', () => {
  it('decodes Begin: LSN as a bigint, commit time in Unix microseconds, xid', () => {
    const m = as(new PgoutputDecoder().decode(begin(LSN_1, COMMIT_PG_US, 731)), 'begin');
    expect(m).toEqual({ tag: 'begin', commitLsn: LSN_1, commitTimeUs: COMMIT_UNIX_US, xid: 731 });
    expect(typeof m.commitLsn).toBe('bigint');
  });

  it('reads an xid of 2^31 or more as unsigned, not negative', () => {
    const d = new PgoutputDecoder();
    expect(as(d.decode(begin(LSN_1, COMMIT_PG_US, 0xfffffff0)), 'begin').xid).toBe(4294967280);
    expect(as(d.decode(begin(LSN_1, COMMIT_PG_US, 0x80000000)), 'begin').xid).toBe(2147483648);
    expect(as(d.decode(begin(LSN_1, COMMIT_PG_US, 0xffffffff)), 'begin').xid).toBe(4294967295);
  });

  it('decodes Commit: commit and end LSNs as bigints', () => {
    const m = as(new PgoutputDecoder().decode(commit(LSN_1, LSN_2, COMMIT_PG_US)), 'commit');
    expect(m).toEqual({ tag: 'commit', commitLsn: LSN_1, commitEndLsn: LSN_2, commitTimeUs: COMMIT_UNIX_US });
    expect(typeof m.commitEndLsn).toBe('bigint');
  });

  it('keeps LSNs that use the high 32 bits and LSNs of zero', () => {
    const high = 0xfedcba9876543210n;
    const m = as(new PgoutputDecoder().decode(commit(high, 0n, 0n)), 'commit');
    expect(m.commitLsn).toBe(high);
    expect(m.commitEndLsn).toBe(0n);
    expect(m.commitTimeUs).toBe(PG_EPOCH_US);
  });
});

describe('pgoutput decoder: relations', () => {
  it('decodes a Relation with key flags, unsigned type oids and type modifiers', () => {
    const d = new PgoutputDecoder();
    const m = as(
      d.decode(
        relationMsg(ITEMS_OID, 'shop', 'items', 'i', [
          ...ITEMS_COLUMNS,
          // A type created after the OID counter passed 2^31 (an enum, say).
          { flags: 0, name: 'mood', typeOid: 0x80000001, typeMod: -1 },
        ]),
      ),
      'relation',
    );
    expect(m.relation).toEqual({
      relationOid: ITEMS_OID,
      schema: 'shop',
      name: 'items',
      replicaIdentity: 'index',
      columns: [
        { name: 'id', typeOid: 23, typeMod: -1, isKey: true },
        { name: 'note', typeOid: 25, typeMod: -1, isKey: false },
        { name: 'created', typeOid: 1184, typeMod: -1, isKey: false },
        { name: 'price', typeOid: 1700, typeMod: (10 << 16) + 6, isKey: false },
        { name: 'big', typeOid: 25, typeMod: -1, isKey: false },
        { name: 'mood', typeOid: 2147483649, typeMod: -1, isKey: false },
      ],
    });
  });

  it('maps each replica identity letter', () => {
    const d = new PgoutputDecoder();
    const cases = [
      ['d', 'default'],
      ['n', 'nothing'],
      ['f', 'full'],
      ['i', 'index'],
    ] as const;
    for (const [letter, identity] of cases) {
      const m = as(d.decode(relationMsg(1, 'public', 't', letter, ITEMS_COLUMNS)), 'relation');
      expect(m.relation.replicaIdentity).toBe(identity);
    }
  });
});

describe('pgoutput decoder: row changes keep the server text', () => {
  it('keeps an int4 as the string "42" and a timestamptz as its text (no pg type parsers)', () => {
    const d = decoderWithItems();
    const m = as(
      d.decode(insert(ITEMS_OID, ['42', 'héllo ✓', '2024-01-02 03:04:05.123456+00', '12.50', null])),
      'insert',
    );
    expect(m.relation.name).toBe('items');
    expect(m.new).toEqual({
      id: '42',
      note: 'héllo ✓',
      created: '2024-01-02 03:04:05.123456+00',
      price: '12.50',
      big: null,
    });
    expect(typeof m.new.id).toBe('string');
    expect(typeof m.new.created).toBe('string');
  });

  it('keeps the text also for relations announced again (after ALTER TABLE)', () => {
    const d = decoderWithItems();
    d.decode(
      relationMsg(ITEMS_OID, 'public', 'items', 'd', [{ flags: 1, name: 'id', typeOid: 20, typeMod: -1 }]),
    );
    const m = as(d.decode(insert(ITEMS_OID, ['9223372036854775807'])), 'insert');
    expect(m.new).toEqual({ id: '9223372036854775807' });
    expect(m.relation.columns.map((c) => c.name)).toEqual(['id']);
  });

  it('keeps a column named __proto__ as an own property of the tuple', () => {
    const d = new PgoutputDecoder();
    d.decode(
      relationMsg(16_401, 'public', 'odd', 'd', [
        { flags: 1, name: 'id', typeOid: 23, typeMod: -1 },
        { flags: 0, name: '__proto__', typeOid: 25, typeMod: -1 },
        { flags: 0, name: 'constructor', typeOid: 25, typeMod: -1 },
      ]),
    );
    const m = as(d.decode(insert(16_401, ['1', 'kept', 'c'])), 'insert');
    expect(Object.keys(m.new)).toEqual(['id', '__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(m.new, '__proto__')?.value).toBe('kept');
    expect(m.new.constructor).toBe('c');
  });

  it("makes an unchanged TOAST value ('u') the UNCHANGED_TOAST marker when there is no old tuple", () => {
    const d = decoderWithItems();
    const m = as(d.decode(update(ITEMS_OID, ['1', 'new note', null, '1.00', UNCHANGED_TOAST])), 'update');
    expect(m.key).toBeNull();
    expect(m.old).toBeNull();
    expect(m.new).toEqual({ id: '1', note: 'new note', created: null, price: '1.00', big: UNCHANGED_TOAST });
    expect(Object.hasOwn(m.new, 'big')).toBe(true);
  });

  it("keeps the marker with a key tuple ('K'), and reads the key's columns only", () => {
    const d = decoderWithItems();
    const m = as(
      d.decode(
        update(ITEMS_OID, ['2', 'n', null, '1.00', UNCHANGED_TOAST], {
          kind: 'K',
          cols: ['1', null, null, null, null],
        }),
      ),
      'update',
    );
    expect(m.key).toEqual({ id: '1' });
    expect(m.old).toBeNull();
    expect(m.new.id).toBe('2');
    expect(m.new.big).toBe(UNCHANGED_TOAST);
  });

  it("fills an unchanged TOAST value from the old tuple ('O', replica identity full)", () => {
    const d = decoderWithItems('f');
    const long = 'x'.repeat(5000);
    const m = as(
      d.decode(
        update(ITEMS_OID, ['1', 'after', null, '2.00', UNCHANGED_TOAST], {
          kind: 'O',
          cols: ['1', 'before', null, '1.00', long],
        }),
      ),
      'update',
    );
    expect(m.key).toBeNull();
    expect(m.old).toEqual({ id: '1', note: 'before', created: null, price: '1.00', big: long });
    expect(m.new).toEqual({ id: '1', note: 'after', created: null, price: '2.00', big: long });
  });

  it("decodes a Delete with a key tuple ('K') and with an old tuple ('O')", () => {
    const d = decoderWithItems();
    const byKey = as(d.decode(del(ITEMS_OID, 'K', ['7', null, null, null, null])), 'delete');
    expect(byKey.key).toEqual({ id: '7' });
    expect(byKey.old).toBeNull();
    const byOld = as(d.decode(del(ITEMS_OID, 'O', ['7', 'n', null, '3.50', 'b'])), 'delete');
    expect(byOld.key).toBeNull();
    expect(byOld.old).toEqual({ id: '7', note: 'n', created: null, price: '3.50', big: 'b' });
  });

  it('decodes a Truncate of several relations with its flags', () => {
    const d = decoderWithItems();
    d.decode(
      relationMsg(16_400, 'public', 'other', 'd', [{ flags: 1, name: 'k', typeOid: 25, typeMod: -1 }]),
    );
    const m = as(d.decode(truncate([ITEMS_OID, 16_400], 0b11)), 'truncate');
    expect(m.relations.map((r) => r.name)).toEqual(['items', 'other']);
    expect(m.cascade).toBe(true);
    expect(m.restartIdentity).toBe(true);
    const plain = as(d.decode(truncate([ITEMS_OID], 0)), 'truncate');
    expect(plain.cascade).toBe(false);
    expect(plain.restartIdentity).toBe(false);
  });
});

describe('pgoutput decoder: logical messages', () => {
  it("decodes a Message ('M'): transactional flag, LSN as a bigint, prefix and content", () => {
    const d = new PgoutputDecoder();
    const content = Buffer.from('2024-01-02T03:04:05.000Z', 'utf8');
    const raw = message(0, LSN_1, 'legacy.heartbeat', content);
    const m = as(d.decode(raw), 'message');
    expect(m).toEqual({
      tag: 'message',
      transactional: false,
      messageLsn: LSN_1,
      prefix: 'legacy.heartbeat',
      content,
    });
    // A copy: the replication chunk it came from may be reused.
    raw.fill(0);
    expect(m.content.toString('utf8')).toBe('2024-01-02T03:04:05.000Z');
    expect(as(d.decode(message(1, LSN_2, 'p', Buffer.alloc(0))), 'message')).toMatchObject({
      transactional: true,
      messageLsn: LSN_2,
      prefix: 'p',
    });
  });
});

describe('pgoutput decoder: protocol errors', () => {
  it("turns an unknown tag byte ('Z') into REPLICATION_PROTOCOL", () => {
    const d = new PgoutputDecoder();
    for (const raw of [Buffer.from('Z\0\0\0\0', 'latin1'), Buffer.from('S', 'latin1'), Buffer.alloc(0)]) {
      const e = thrownBy(() => d.decode(raw));
      expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
    }
    expect(thrownBy(() => d.decode(Buffer.from('Z', 'latin1')))).toMatchObject({
      message: expect.stringContaining('"Z"'),
    });
  });

  it('turns a change for a relation never announced into REPLICATION_PROTOCOL', () => {
    const d = new PgoutputDecoder();
    const changes = [
      insert(ITEMS_OID, ['1', null, null, null, null]),
      update(ITEMS_OID, ['1', null, null, null, null]),
      del(ITEMS_OID, 'K', ['1', null, null, null, null]),
      truncate([ITEMS_OID], 0),
    ];
    for (const raw of changes) {
      const e = thrownBy(() => d.decode(raw));
      expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
    }
    // Another oid than the announced one is unknown too.
    const known = decoderWithItems();
    const e = thrownBy(() => known.decode(insert(ITEMS_OID + 1, ['1'])));
    expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
  });

  it('turns a truncated message into REPLICATION_PROTOCOL', () => {
    const d = decoderWithItems();
    const whole = insert(ITEMS_OID, ['42', 'note', null, null, null]);
    const e = thrownBy(() => d.decode(whole.subarray(0, whole.length - 3)));
    expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
    expect(isReplicatorError(thrownBy(() => d.decode(begin(LSN_1, 0n, 1).subarray(0, 10))))).toBe(true);
  });
});
