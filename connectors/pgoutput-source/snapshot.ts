import pg from 'pg';
import {
  type Row,
  type SnapshotMark,
  type SourceIdentity,
  serializeKey,
  snapshotSource,
} from '../../src/contracts/change-event.js';
import type { EventEncoder, TableShape } from '../../src/contracts/event-encoder.js';
import { type EventValue, loadTypes, type TypeCatalog } from '../../src/contracts/event-value.js';
import type { Publisher } from '../../src/contracts/publisher.js';
import { changeTopic } from '../../src/contracts/topics.js';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Lsn } from '../../src/core/lsn.js';
import { TEXT_FORMAT_OPTIONS } from '../../src/core/pg-text-types.js';
import { qualifiedName, quoteIdent, quoteLiteral } from '../../src/core/sql.js';
import type { TableInfo } from './preflight.js';

export interface SnapshotOptions {
  url: string;
  /** The snapshot exported by CREATE_REPLICATION_SLOT; valid while that replication connection stays open. */
  snapshotName: string;
  consistentPoint: Lsn;
  tables: readonly TableInfo[];
  chunkRows: number;
  parallelism: number;
  topicPrefix: string;
  database: string;
  /** This replicator's version (`source.version`). */
  version: string;
  catalog: TypeCatalog;
  publisher: Publisher;
  encoder: EventEncoder;
  logger: Logger;
  signal: AbortSignal;
  onRows?: (table: string, rows: number) => void;
  /**
   * Redoing a snapshot over what an earlier, interrupted one (or a lost slot's stream) left in Kafka and V2: each
   * table's rows are preceded, on every partition of its topic, by a truncate positioned just before this
   * snapshot (consistent point − 1), so rows that existed then and no longer do are removed downstream.
   */
  truncateFirst?: { partitionsOf: (topic: string) => number };
}

const rawText = { getTypeParser: () => (v: string) => v };

/**
 * Copies every table as it was at the slot's consistent point: each table is read in its own REPEATABLE READ
 * transaction on the exported snapshot, in primary-key order (ctid order for a table with REPLICA IDENTITY FULL
 * and no key), a chunk at a time, tables in parallel. Rows are published as op `r`; streaming then starts at the
 * consistent point, so no change is missed and none precedes its row.
 */
export async function runSnapshot(o: SnapshotOptions): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const queue = [...o.tables];
  const progress: SnapshotProgress = { started: false, reading: 0, queue };
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const table = { done: false };
      progress.reading++;
      try {
        counts.set(`${t.table.schema}.${t.table.table}`, await snapshotTable(o, t, progress, table));
      } finally {
        if (!table.done) progress.reading--;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.parallelism, o.tables.length) }, worker));
  return counts;
}

/** Shared by the tables read at once: which row is the whole snapshot's first, and which its last. */
interface SnapshotProgress {
  /** Whether a row was published (the next is not the snapshot's first). */
  started: boolean;
  /** Tables being read now: counted down when a table's last row is marked (its COMMIT may still be pending). */
  reading: number;
  /** Tables not started. */
  queue: readonly TableInfo[];
}

/**
 * Debezium's `snapshot` marks: a table's first and last rows, and the whole snapshot's first and last. A table's
 * last row is the snapshot's last when no other table is being read or waits (tables finish in any order).
 */
function snapshotMark(
  p: SnapshotProgress,
  table: { done: boolean },
  firstOfTable: boolean,
  lastOfTable: boolean,
): SnapshotMark {
  const lastOfAll = lastOfTable && p.reading === 1 && p.queue.length === 0;
  if (lastOfTable) {
    table.done = true;
    p.reading--;
  }
  if (!p.started) {
    p.started = true;
    if (!lastOfAll) return 'first';
  }
  if (lastOfTable) return lastOfAll ? 'last' : 'last_in_data_collection';
  return firstOfTable ? 'first_in_data_collection' : 'true';
}

async function snapshotTable(
  o: SnapshotOptions,
  info: TableInfo,
  progress: SnapshotProgress,
  tableState: { done: boolean },
): Promise<number> {
  const { schema, table } = info.table;
  const name = `${schema}.${table}`;
  const client = new pg.Client({ connectionString: o.url, options: TEXT_FORMAT_OPTIONS });
  const failure = new Promise<never>((_, reject) => client.on('error', reject));
  failure.catch(() => {});
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(o.snapshotName)}`);
    const columns = (
      await client.query<{ name: string; oid: string }>(
        `SELECT attname AS name, atttypid::int8 AS oid FROM pg_attribute
          WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [qualifiedName(schema, table)],
      )
    ).rows.map((c) => ({ name: c.name, oid: Number(c.oid) }));
    const missing = o.catalog.missing(columns.map((c) => c.oid));
    if (missing.length > 0) for (const t of await loadTypes(client, missing)) o.catalog.add(t);
    const decoders: ((text: string) => EventValue)[] = columns.map((c) => o.catalog.decoder(c.oid));
    const keyed = info.primaryKey.length > 0;
    const keyColumns = keyed ? info.primaryKey : columns.map((c) => c.name);
    const orderBy = keyed ? info.primaryKey : ['ctid'];
    const orderIdx = keyed
      ? info.primaryKey.map((k) => columns.findIndex((c) => c.name === k))
      : [columns.length];
    const select = [...columns.map((c) => quoteIdent(c.name)), ...(keyed ? [] : ['ctid'])].join(', ');
    const orderList = orderBy.map((c) => (c === 'ctid' ? 'ctid' : quoteIdent(c))).join(', ');
    const from = qualifiedName(schema, table);
    const topic = changeTopic(o.topicPrefix, schema, table);
    const lsn = o.consistentPoint;
    const id: SourceIdentity = { version: o.version, name: o.topicPrefix, db: o.database };
    const shape: TableShape = {
      schema,
      table,
      topic,
      columns: columns.map((c) => ({ name: c.name, typeOid: c.oid })),
      keyColumns,
    };
    await o.encoder.prepare(shape);
    if (o.truncateFirst) {
      // Older than every row below (they are at the consistent point), newer than anything an earlier attempt
      // published (at an earlier consistent point, or streamed before it).
      const value = o.encoder.encode(shape, {
        before: null,
        after: null,
        source: snapshotSource(id, schema, table, o.consistentPoint - 1n, 0),
        transaction: null,
        op: 't',
        ts_ms: Date.now(),
      });
      for (let p = 0; p < o.truncateFirst.partitionsOf(topic); p++) {
        if (!o.publisher.publish({ topic, key: null, value, partition: p })) await o.publisher.drained();
      }
    }

    let last: string[] | undefined;
    let seq = 0;
    // Each row is published once the next is read (or the table ends), so the last one can say it is.
    let held: Row | undefined;
    // What every row's source block shares (its LSN texts among them), made once for the table.
    const tableSource = snapshotSource(id, schema, table, lsn, 0);
    const publish = async (row: Row, lastOfTable: boolean) => {
      const rowSeq = seq++;
      const now = Date.now();
      const value = o.encoder.encode(shape, {
        before: null,
        after: row,
        source: {
          ...tableSource,
          ts_ms: now,
          ts_us: now * 1000,
          snapshot: snapshotMark(progress, tableState, rowSeq === 0, lastOfTable),
          seq: rowSeq,
        },
        transaction: null,
        op: 'r',
        ts_ms: now,
      });
      const out = { topic, key: serializeKey(row, keyColumns), value, position: 'snapshot', table: name };
      if (!o.publisher.publish(out)) await o.publisher.drained();
    };
    for (;;) {
      if (o.signal.aborted) throw new ReplicatorError(ErrorCodes.ABORTED, `snapshot of ${name} aborted`);
      const where = last
        ? keyed
          ? `WHERE (${orderList}) > (${last.map((_, i) => `$${i + 1}`).join(', ')})`
          : 'WHERE ctid > $1::tid'
        : '';
      const result = await client.query<string[]>({
        text: `SELECT ${select} FROM ${from} ${where} ORDER BY ${orderList} LIMIT ${o.chunkRows}`,
        values: last ?? [],
        rowMode: 'array',
        types: rawText,
      });
      for (const values of result.rows) {
        const row = Object.create(null) as Row;
        for (let i = 0; i < columns.length; i++) {
          const v = values[i];
          row[columns[i]!.name] = v === null || v === undefined ? null : decoders[i]!(v);
        }
        if (held) await publish(held, false);
        held = row;
      }
      if (result.rows.length < o.chunkRows) {
        if (held) await publish(held, true);
        o.onRows?.(name, seq);
        break;
      }
      o.onRows?.(name, seq);
      const lastRow = result.rows[result.rows.length - 1]!;
      last = orderIdx.map((i) => lastRow[i] as string);
    }
    await client.query('COMMIT');
    o.logger.info({ table: name, rows: seq }, 'snapshot of table done');
    return seq;
  } finally {
    await client.end().catch(() => {});
  }
}
