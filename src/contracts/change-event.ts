import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import { formatLsn } from '../core/lsn.js';
import { type EventValue, RawJson } from './event-value.js';
import { parseJsonExactly } from './exact-json.js';
import type { JsonValue } from './transform-api.js';

/**
 * The Kafka change-event format (Debezium-shaped) and its serializer. Serialization is hand-written string
 * building rather than `JSON.stringify` with a replacer: it is on the hot path, and `RawJson` must be inserted
 * verbatim so json/jsonb numbers beyond 2^53 are never rounded. Strings and numbers still go through
 * `JSON.stringify`, so escaping is exactly its escaping.
 */

export type Row = Record<string, EventValue>;

export type ChangeOp = 'c' | 'u' | 'd' | 'r' | 't';

/**
 * Debezium's `source.snapshot`: 'false' for a streamed change; a snapshot row is 'true', or marks where it sits —
 * the first/last row of its table ('first_in_data_collection', 'last_in_data_collection'), of the whole snapshot
 * ('first', 'last').
 */
export type SnapshotMark =
  | 'true'
  | 'first'
  | 'first_in_data_collection'
  | 'last_in_data_collection'
  | 'last'
  | 'false';

/**
 * Debezium's PostgreSQL `source` block, field for field and in its order, then this replicator's own fields
 * (`commitLsn`, `seq`, `commitTs`, `unchangedToast`), which the apply path orders and completes changes by. A
 * consumer written for Debezium reads the first part and ignores the rest, as it ignores another connector's.
 */
export interface ChangeSource {
  /** This replicator's version (Debezium: the connector's). */
  version: string;
  connector: 'postgresql';
  /** The logical name (`kafka.topicPrefix`, as Debezium's `topic.prefix`). */
  name: string;
  /** Commit time in ms; a snapshot row: when it was read (as Debezium). ts_us beside it, ts_ns derived from it. */
  ts_ms: number;
  ts_us: number;
  snapshot: SnapshotMark;
  db: string;
  /**
   * Debezium's ordering pair, JSON text of two decimal strings: where the previous transaction's commit record
   * ended (null before the first one this session read) and this change's LSN.
   */
  sequence: string;
  schema: string;
  table: string;
  txId: number | null;
  /** This change's WAL position; a JSON int64 (Debezium's), exact. */
  lsn: bigint;
  /** Debezium's xmin (only with its `xmin.fetch.interval.ms`): always null here. */
  xmin: null;
  /** Debezium 3's replication origin of the change and its LSN there: always null here. */
  origin: null;
  origin_lsn: null;
  /** Its transaction's commit LSN, text form ('0/16B3748'); a snapshot row: the slot's consistent point. */
  commitLsn: string;
  /** Position within the transaction (or within the snapshot of a table), from 0. */
  seq: number;
  /** Commit time, ISO-8601 UTC with microseconds; null for a snapshot row. */
  commitTs: string | null;
  /** Columns whose unchanged TOASTed value pgoutput did not send: absent from `after`, never null. */
  unchangedToast?: string[];
}

/** Debezium's `transaction` block (`provide.transaction.metadata`); null when that is off, as in Debezium. */
export interface TransactionBlock {
  /** `<txId>:<commit LSN as a number>`. */
  id: string;
  /** The change's position among all of its transaction's changes, from 1. */
  total_order: number;
  /** Its position among its transaction's changes of the same table, from 1. */
  data_collection_order: number;
}

/** The value of a change message: Debezium's envelope (ts_us and ts_ns derive from ts_ms). */
export interface ChangeEvent {
  before: Row | null;
  after: Row | null;
  source: ChangeSource;
  transaction: TransactionBlock | null;
  op: ChangeOp;
  /** When the replicator processed it, in ms. */
  ts_ms: number;
}

/** As JSON.stringify writes a number: non-finite numbers become null. */
function serializeNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

function serializeValue(v: EventValue | undefined): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return serializeNumber(v);
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (v instanceof RawJson) return v.text;
  let out = '[';
  for (let i = 0; i < v.length; i++) {
    if (i > 0) out += ',';
    out += serializeValue(v[i]);
  }
  return `${out}]`;
}

/** `make`, remembered per string: the same few strings repeat on every event. Bounded, in case they do not. */
function memoized(make: (s: string) => string): (s: string) => string {
  const seen = new Map<string, string>();
  return (s) => {
    let out = seen.get(s);
    if (out === undefined) {
      out = make(s);
      if (seen.size < 10_000) seen.set(s, out);
    }
    return out;
  };
}

/** `"name":` of a column name. */
const quotedKey = memoized((key) => `${JSON.stringify(key)}:`);
/** JSON text of a name in the source block (version, topic prefix, database, schema, table). */
const quoted = memoized((name) => JSON.stringify(name));

/** JSON text of a row; RawJson emitted verbatim; key order = the object's own key order, as JSON.stringify. */
export function serializeRow(row: Row | null): string {
  if (row === null) return 'null';
  let out = '{';
  let first = true;
  for (const key of Object.keys(row)) {
    const v = row[key];
    // Omitted like JSON.stringify omits it; a Row should never hold undefined.
    if (v === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += quotedKey(key) + serializeValue(v);
  }
  return `${out}}`;
}

function serializeNullableNumber(n: number | null): string {
  return n === null ? 'null' : serializeNumber(n);
}

/**
 * Fields in declaration order; a field added to ChangeSource must be added here (the envelope test checks). Names
 * are quoted once (memoized); `commitLsn` (hex digits and '/') and `commitTs` (ISO digits) need no escaping.
 */
function serializeSource(s: ChangeSource): string {
  let out =
    `{"version":${quoted(s.version)},"connector":"postgresql","name":${quoted(s.name)}` +
    `,"ts_ms":${serializeNumber(s.ts_ms)},"snapshot":"${s.snapshot}","db":${quoted(s.db)}` +
    `,"sequence":${JSON.stringify(s.sequence)},"ts_us":${serializeNumber(s.ts_us)}` +
    `,"ts_ns":${nanosFromMicros(s.ts_us)},"schema":${quoted(s.schema)}` +
    `,"table":${quoted(s.table)},"txId":${serializeNullableNumber(s.txId)},"lsn":${s.lsn}` +
    `,"xmin":null,"origin":null,"origin_lsn":null,"commitLsn":"${s.commitLsn}","seq":${serializeNumber(s.seq)}` +
    `,"commitTs":${s.commitTs === null ? 'null' : `"${s.commitTs}"`}`;
  if (s.unchangedToast !== undefined) {
    out += `,"unchangedToast":${serializeValue(s.unchangedToast)}`;
  }
  return `${out}}`;
}

/** ns beyond 2^53 would round as a double: written as the µs digits and three zeros. */
function nanosFromMicros(us: number): string {
  return us === 0 ? '0' : `${serializeNumber(us)}000`;
}

function serializeTransaction(t: TransactionBlock | null): string {
  return t === null
    ? 'null'
    : `{"id":${JSON.stringify(t.id)},"total_order":${t.total_order},"data_collection_order":${t.data_collection_order}}`;
}

/** JSON text of the whole envelope, in Debezium's field order. */
export function serializeEvent(e: ChangeEvent): string {
  return (
    `{"before":${serializeRow(e.before)},"after":${serializeRow(e.after)},"source":${serializeSource(e.source)}` +
    `,"transaction":${serializeTransaction(e.transaction)},"op":${JSON.stringify(e.op)}` +
    `,"ts_ms":${serializeNumber(e.ts_ms)},"ts_us":${serializeNumber(e.ts_ms * 1000)}` +
    `,"ts_ns":${nanosFromMicros(e.ts_ms * 1000)}}`
  );
}

/**
 * A change event's JSON as the apply stage reads it: the images' numbers exact (parseJsonExactly), the envelope's
 * own numbers after them as doubles. `serializeEvent` writes every image before the source block and no row data
 * after it, so the last `,"source":{` is the envelope's; its 16- and 19-digit `ts_us`/`ts_ns` would otherwise send
 * every event through the slow exact parse (they are not read by the apply stage).
 */
export function parseChangeEventJson(text: string): JsonValue {
  const source = text.lastIndexOf(',"source":{');
  return parseJsonExactly(text, source < 0 ? text.length : source);
}

/**
 * JSON object of just the key columns, in keyColumns order. A key column absent from the row is an error, not
 * null: a wrong key would send the change to another partition and break compaction for that row.
 */
export function serializeKey(row: Row, keyColumns: readonly string[]): string {
  let out = '{';
  for (let i = 0; i < keyColumns.length; i++) {
    const column = keyColumns[i]!;
    const v = Object.hasOwn(row, column) ? row[column] : undefined;
    if (v === undefined) {
      throw new ReplicatorError(
        ErrorCodes.KEY_COLUMN_MISSING,
        `key column ${JSON.stringify(column)} is not in the row`,
        {
          details: { column },
        },
      );
    }
    if (i > 0) out += ',';
    out += quotedKey(column) + serializeValue(v);
  }
  return `${out}}`;
}

/** What every source block of one capture shares: who wrote it. */
export interface SourceIdentity {
  version: string;
  /** kafka.topicPrefix */
  name: string;
  db: string;
}

/** The start of a Debezium `sequence` text, the same for every change until the next commit: `["<end>","`. */
export function sequencePrefix(lastCommitLsn: bigint | null): string {
  return `[${lastCommitLsn === null ? 'null' : `"${lastCommitLsn}"`},"`;
}

/** The Debezium `sequence` text of a change: where the previous transaction ended (or null) and its own LSN. */
export function sequenceText(lastCommitLsn: bigint | null, lsn: bigint): string {
  return `${sequencePrefix(lastCommitLsn)}${lsn}"]`;
}

/**
 * The source block of a row read outside the stream (the initial snapshot, verify's repair): no transaction,
 * `lsn` the position it was read at, timed when it was read.
 */
export function snapshotSource(
  id: SourceIdentity,
  schema: string,
  table: string,
  lsn: bigint,
  seq: number,
  mark: SnapshotMark = 'true',
  readAtMs: number = Date.now(),
): ChangeSource {
  return {
    version: id.version,
    connector: 'postgresql',
    name: id.name,
    ts_ms: readAtMs,
    ts_us: readAtMs * 1000,
    snapshot: mark,
    db: id.db,
    sequence: sequenceText(null, lsn),
    schema,
    table,
    txId: null,
    lsn,
    xmin: null,
    origin: null,
    origin_lsn: null,
    commitLsn: formatLsn(lsn),
    seq,
    commitTs: null,
  };
}
