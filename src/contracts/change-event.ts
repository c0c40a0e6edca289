import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import { type EventValue, RawJson } from './event-value.js';

/**
 * The Kafka change-event format (Debezium-shaped) and its serializer. Serialization is hand-written string
 * building rather than `JSON.stringify` with a replacer: it is on the hot path, and `RawJson` must be inserted
 * verbatim so json/jsonb numbers beyond 2^53 are never rounded. Strings and numbers still go through
 * `JSON.stringify`, so escaping is exactly its escaping.
 */

export type Row = Record<string, EventValue>;

export type ChangeOp = 'c' | 'u' | 'd' | 'r' | 't';

export interface ChangeSource {
  connector: 'replicator';
  db: string;
  schema: string;
  table: string;
  /** This change's WAL position, PostgreSQL text form e.g. '0/16B3748'. */
  lsn: string;
  /** Its transaction's commit LSN (all events of a transaction share it); snapshot rows: the slot's consistent point. */
  commitLsn: string;
  txId: number | null;
  /** ISO-8601 UTC with microseconds. */
  commitTs: string | null;
  /** Commit time in ms (Debezium's source.ts_ms). */
  ts_ms: number | null;
  snapshot: boolean;
  /** Position within the transaction (or within the snapshot of a table), from 0. */
  seq: number;
  /** Columns whose unchanged TOASTed value pgoutput did not send: absent from `after`, never null. */
  unchangedToast?: string[];
}

export interface ChangeEvent {
  before: Row | null;
  after: Row | null;
  op: ChangeOp;
  source: ChangeSource;
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

/** `"name":` of the column names seen so far: the same few repeat on every row. Bounded, in case keys are not. */
const quotedKeys = new Map<string, string>();
function quotedKey(key: string): string {
  let q = quotedKeys.get(key);
  if (q === undefined) {
    q = `${JSON.stringify(key)}:`;
    if (quotedKeys.size < 10_000) quotedKeys.set(key, q);
  }
  return q;
}

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

function serializeNullableString(s: string | null): string {
  return s === null ? 'null' : JSON.stringify(s);
}

function serializeNullableNumber(n: number | null): string {
  return n === null ? 'null' : serializeNumber(n);
}

/** Fields in declaration order; a field added to ChangeSource must be added here (the envelope test checks). */
function serializeSource(s: ChangeSource): string {
  let out =
    `{"connector":${JSON.stringify(s.connector)},"db":${JSON.stringify(s.db)}` +
    `,"schema":${JSON.stringify(s.schema)},"table":${JSON.stringify(s.table)}` +
    `,"lsn":${JSON.stringify(s.lsn)},"commitLsn":${JSON.stringify(s.commitLsn)}` +
    `,"txId":${serializeNullableNumber(s.txId)},"commitTs":${serializeNullableString(s.commitTs)}` +
    `,"ts_ms":${serializeNullableNumber(s.ts_ms)},"snapshot":${s.snapshot ? 'true' : 'false'}` +
    `,"seq":${serializeNumber(s.seq)}`;
  if (s.unchangedToast !== undefined) {
    out += `,"unchangedToast":${serializeValue(s.unchangedToast)}`;
  }
  return `${out}}`;
}

/** JSON text of the whole envelope. */
export function serializeEvent(e: ChangeEvent): string {
  return (
    `{"before":${serializeRow(e.before)},"after":${serializeRow(e.after)},"op":${JSON.stringify(e.op)}` +
    `,"source":${serializeSource(e.source)},"ts_ms":${serializeNumber(e.ts_ms)}}`
  );
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

/** The source block of a row read outside the stream (the initial snapshot, verify's repair): no transaction. */
export function snapshotSource(
  db: string,
  schema: string,
  table: string,
  lsn: string,
  seq: number,
): ChangeSource {
  return {
    connector: 'replicator',
    db,
    schema,
    table,
    lsn,
    commitLsn: lsn,
    txId: null,
    commitTs: null,
    ts_ms: null,
    snapshot: true,
    seq,
  };
}
