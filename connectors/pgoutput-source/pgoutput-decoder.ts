import { type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import { type Lsn, parseLsn } from '../../src/core/lsn.js';

/**
 * pgoutput messages, decoded by pg-logical-replication's parser and corrected where its 2.5.0 is wrong:
 * xid read as a signed int32, column values run through pg's global type parsers (lossy: JS Dates, floats),
 * unchanged TOAST values silently turned into `undefined`, padded LSN strings, and an unknown message tag thrown
 * as a plain Error. Here column values stay the server's text (see src/contracts/event-value.ts), unchanged TOAST values are
 * the UNCHANGED_TOAST marker, LSNs are bigints and an unknown tag is a coded error.
 */

/** Stands for a TOASTed value that pgoutput did not send because the update left it unchanged. */
export const UNCHANGED_TOAST: unique symbol = Symbol('unchanged-toast');

export type TupleValue = string | null | typeof UNCHANGED_TOAST;
export type Tuple = Record<string, TupleValue>;

export interface RelationColumn {
  name: string;
  typeOid: number;
  typeMod: number;
  /** Part of the replica identity (pgoutput's flag). */
  isKey: boolean;
}

export interface Relation {
  relationOid: number;
  schema: string;
  name: string;
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  columns: RelationColumn[];
}

export type DecodedMessage =
  | { tag: 'begin'; commitLsn: Lsn; commitTimeUs: bigint; xid: number }
  | { tag: 'commit'; commitLsn: Lsn; commitEndLsn: Lsn; commitTimeUs: bigint }
  | { tag: 'relation'; relation: Relation }
  | { tag: 'type'; typeOid: number; typeSchema: string; typeName: string }
  | { tag: 'insert'; relation: Relation; new: Tuple }
  | { tag: 'update'; relation: Relation; key: Tuple | null; old: Tuple | null; new: Tuple }
  | { tag: 'delete'; relation: Relation; key: Tuple | null; old: Tuple | null }
  | { tag: 'truncate'; relations: Relation[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'message'; transactional: boolean; messageLsn: Lsn; prefix: string; content: Buffer }
  | { tag: 'origin'; originName: string };

const KNOWN_TAGS = new Set([0x42, 0x4f, 0x59, 0x52, 0x49, 0x55, 0x44, 0x54, 0x4d, 0x43]);
const identity = (text: string) => text;

const lsnOf = (text: string | null): Lsn => (text === null ? 0n : parseLsn(text));

export class PgoutputDecoder {
  // The plugin is only a holder of the parser (not exported on its own); we never let it start or acknowledge.
  private readonly parser = new PgoutputPlugin({ protoVersion: 1, publicationNames: [] });
  private readonly relations = new Map<number, Relation>();

  decode(data: Buffer): DecodedMessage {
    const tag = data[0] ?? 0;
    if (!KNOWN_TAGS.has(tag)) {
      throw new ReplicatorError(
        ErrorCodes.REPLICATION_PROTOCOL,
        `unknown pgoutput message tag ${JSON.stringify(String.fromCharCode(tag))} (0x${tag.toString(16)})`,
      );
    }
    // Insert, Update and Delete — nearly every message — are read here straight into tuples; the parser would
    // build an object per tuple for us to copy.
    if (tag === 0x49 || tag === 0x55 || tag === 0x44) {
      try {
        return this.dml(data);
      } catch (e) {
        if (e instanceof ReplicatorError) throw e;
        throw new ReplicatorError(ErrorCodes.REPLICATION_PROTOCOL, 'malformed pgoutput message', {
          cause: e,
        });
      }
    }
    let msg: Pgoutput.Message;
    try {
      msg = this.parser.parse(data);
    } catch (e) {
      throw new ReplicatorError(ErrorCodes.REPLICATION_PROTOCOL, 'malformed pgoutput message', { cause: e });
    }
    switch (msg.tag) {
      case 'begin':
        return {
          tag: 'begin',
          commitLsn: lsnOf(msg.commitLsn),
          commitTimeUs: msg.commitTime as bigint,
          xid: msg.xid >>> 0,
        };
      case 'commit':
        return {
          tag: 'commit',
          commitLsn: lsnOf(msg.commitLsn),
          commitEndLsn: lsnOf(msg.commitEndLsn),
          commitTimeUs: msg.commitTime as bigint,
        };
      case 'relation': {
        // The parser keeps this object in its cache and reads values through column.parser: keep them text.
        for (const c of msg.columns) c.parser = identity;
        const relation: Relation = {
          relationOid: msg.relationOid >>> 0,
          schema: msg.schema,
          name: msg.name,
          replicaIdentity: msg.replicaIdentity,
          columns: msg.columns.map((c) => ({
            name: c.name,
            typeOid: c.typeOid >>> 0,
            typeMod: c.typeMod,
            isKey: (c.flags & 1) === 1,
          })),
        };
        this.relations.set(relation.relationOid, relation);
        return { tag: 'relation', relation };
      }
      case 'type':
        return {
          tag: 'type',
          typeOid: msg.typeOid >>> 0,
          typeSchema: msg.typeSchema,
          typeName: msg.typeName,
        };
      case 'truncate':
        return {
          tag: 'truncate',
          relations: msg.relations.map((r) => this.relationOf(r)),
          cascade: msg.cascade,
          restartIdentity: msg.restartIdentity,
        };
      case 'message':
        return {
          tag: 'message',
          transactional: msg.transactional,
          messageLsn: lsnOf(msg.messageLsn),
          prefix: msg.prefix,
          content: Buffer.from(msg.content),
        };
      case 'origin':
        return { tag: 'origin', originName: msg.originName };
      default:
        // Insert, Update and Delete never get here (read above).
        throw new ReplicatorError(ErrorCodes.REPLICATION_PROTOCOL, `unexpected pgoutput message ${msg.tag}`);
    }
  }

  /** 'I' relid 'N' tuple; 'U' relid ['K' tuple | 'O' tuple] 'N' tuple; 'D' relid ('K' | 'O') tuple. */
  private dml(data: Buffer): DecodedMessage {
    const tag = data[0];
    const relation = this.relations.get(data.readUInt32BE(1));
    if (!relation)
      throw new ReplicatorError(ErrorCodes.REPLICATION_PROTOCOL, 'change for an unknown relation');
    const at = { offset: 5 };
    const kind = () => {
      if (at.offset >= data.length) throw new RangeError('message ends before its tuple');
      return data[at.offset++];
    };
    if (tag === 0x49) {
      if (kind() !== 0x4e) throw new RangeError('insert without a new tuple');
      return { tag: 'insert', relation, new: readTuple(data, at, relation, null, false) };
    }
    const first = kind();
    let key: Tuple | null = null;
    let old: Tuple | null = null;
    if (first === 0x4b) key = readTuple(data, at, relation, null, true);
    else if (first === 0x4f) old = readTuple(data, at, relation, null, false);
    else if (!(tag === 0x55 && first === 0x4e)) throw new RangeError(`unknown submessage ${first}`);
    if (tag === 0x44) {
      if (!key && !old) throw new RangeError('delete without a key or old tuple');
      return { tag: 'delete', relation, key, old };
    }
    if (first !== 0x4e && kind() !== 0x4e) throw new RangeError('update without a new tuple');
    return { tag: 'update', relation, key, old, new: readTuple(data, at, relation, old, false) };
  }

  private relationOf(r: Pgoutput.MessageRelation | undefined): Relation {
    const relation = r ? this.relations.get(r.relationOid >>> 0) : undefined;
    if (!relation)
      throw new ReplicatorError(ErrorCodes.REPLICATION_PROTOCOL, 'change for an unknown relation');
    return relation;
  }
}

/**
 * TupleData: Int16 count, then per column 'n' (null), 'u' (unchanged TOAST datum: the old tuple's value when there
 * is one, else the marker) or 't' Int32 length + text. A key tuple ('K') keeps the relation's key columns only.
 */
function readTuple(
  data: Buffer,
  at: { offset: number },
  relation: Relation,
  old: Tuple | null,
  keyOnly: boolean,
): Tuple {
  // No prototype: a column may legally be named __proto__ or constructor.
  const out = Object.create(null) as Tuple;
  const { columns } = relation;
  let o = at.offset;
  const n = data.readInt16BE(o);
  o += 2;
  if (n > columns.length) throw new RangeError(`tuple of ${n} columns for a relation of ${columns.length}`);
  for (let i = 0; i < n; i++) {
    const column = columns[i]!;
    const kind = data[o++];
    let v: TupleValue;
    if (kind === 0x74) {
      const len = data.readInt32BE(o);
      o += 4;
      if (o + len > data.length) throw new RangeError('value runs past the message');
      v = data.toString('utf8', o, o + len);
      o += len;
    } else if (kind === 0x6e) v = null;
    else if (kind === 0x75) v = old && Object.hasOwn(old, column.name) ? old[column.name]! : UNCHANGED_TOAST;
    else throw new RangeError(`unknown column kind ${kind}`);
    if (!keyOnly || column.isKey) out[column.name] = v;
  }
  at.offset = o;
  return out;
}
