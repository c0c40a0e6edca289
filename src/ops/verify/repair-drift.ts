import { type Kafka, type Message, Partitioners } from 'kafkajs';
import pg from 'pg';
import { type ChangeEvent, type Row, serializeKey, snapshotSource } from '../../contracts/change-event.js';
import { type EventEncoder, jsonEncoder, type TableShape } from '../../contracts/event-encoder.js';
import { changeTopic } from '../../contracts/topics.js';
import type { JsonRow } from '../../contracts/transform-api.js';
import { ErrorCodes, toReplicatorError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseLsn } from '../../core/lsn.js';
import { packageVersion } from '../../core/package-version.js';
import { TEXT_FORMAT_OPTIONS } from '../../core/pg-text-types.js';
import { parseRef, refText } from './expected-state.js';
import { LegacyReader } from './legacy-reader.js';
import { settledLsn } from './settled-lsn.js';

export interface RepairOptions {
  kafka: Kafka;
  /** The source's kafka.topicPrefix: raw change topics are `<topicPrefix>.<schema>.<table>`. */
  topicPrefix: string;
  /** The source's value encoding (JSON unless a schema registry is configured). */
  encoder?: EventEncoder;
  /** How long to wait for transactions that were committing at the repair position (default 10 s). */
  settleTimeoutMs?: number;
  /** The source's `tombstonesOnDelete`: a re-emitted delete is followed by a tombstone, as the source's are. Default true. */
  tombstonesOnDelete?: boolean;
}

export interface RepairResult {
  /** The position the re-emitted events carry (newer than anything the sink applied before). */
  lsn: string;
  /** Rows re-emitted as `r` events. */
  reads: number;
  /** Keys no longer in legacy, emitted as deletes (each followed by a tombstone unless tombstonesOnDelete is false). */
  deletes: number;
  topics: string[];
}

/**
 * Re-emits legacy rows through the pipeline: each row (refText) re-read and published to its raw change topic in
 * the source's own envelope, key and partitioning, as an `r` event whose position (commitLsn and lsn) is the WAL
 * insert position at the start of the repair — newer than any change the sink applied before, so the sink applies
 * it over what it has; a key no longer in legacy is published as a delete (and its tombstone). The sink then treats
 * it like any other change (idempotent producer, acks=all).
 *
 * The position is exact: every transaction whose commit record precedes it is finished (those still committing
 * when it was read are waited for) before the rows are read, so the read sees every change older than the events
 * it publishes, and a change newer than them is applied after them by the sink's (commitLsn, seq) order.
 */
export async function repairDrift(o: {
  legacyUrl: string;
  refs: Iterable<string>;
  repair: RepairOptions;
  logger: Logger;
}): Promise<RepairResult> {
  const byTable = new Map<string, Map<string, JsonRow>>();
  for (const ref of o.refs) {
    const { table, key } = parseRef(ref);
    const keys = byTable.get(table) ?? new Map<string, JsonRow>();
    keys.set(ref, key);
    byTable.set(table, keys);
  }
  const legacy = new pg.Client({ connectionString: o.legacyUrl, options: TEXT_FORMAT_OPTIONS });
  legacy.on('error', () => {});
  try {
    await legacy.connect();
  } catch (e) {
    throw toReplicatorError(
      e,
      ErrorCodes.PG_CONNECTION_FAILED,
      'verify --repair: legacy database unreachable',
    );
  }
  const encoder = o.repair.encoder ?? jsonEncoder;
  const producer = o.repair.kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  try {
    const { lsn } = await settledLsn(legacy, {
      ...(o.repair.settleTimeoutMs !== undefined ? { timeoutMs: o.repair.settleTimeoutMs } : {}),
      logger: o.logger,
    });
    await legacy.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const db = (await legacy.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
    const identity = { version: packageVersion(), name: o.repair.topicPrefix, db };
    const reader = new LegacyReader(legacy);
    const tables = await reader.describe([...byTable.keys()]);
    const messages = new Map<string, Message[]>();
    let reads = 0;
    let deletes = 0;
    for (const t of tables) {
      const wanted = byTable.get(t.name)!;
      const found = new Map<string, Row>();
      for (const r of await reader.readByKeys(t, [...wanted.values()]))
        found.set(refText(t.name, r.key), r.values!);
      const topic = changeTopic(o.repair.topicPrefix, t.schema, t.table);
      const shape: TableShape = {
        schema: t.schema,
        table: t.table,
        topic,
        columns: t.columns.map((c) => ({ name: c.name, typeOid: c.oid })),
        keyColumns: t.primaryKey,
      };
      await encoder.prepare(shape);
      const list: Message[] = [];
      let seq = 0;
      for (const [ref, key] of wanted) {
        const row = found.get(ref);
        const keyRow = (row ?? (key as Row)) as Row;
        const event: ChangeEvent = {
          before: row ? null : keyRow,
          after: row ?? null,
          source: snapshotSource(identity, t.schema, t.table, parseLsn(lsn), seq++),
          transaction: null,
          op: row ? 'r' : 'd',
          ts_ms: Date.now(),
        };
        const messageKey = serializeKey(keyRow, t.primaryKey);
        list.push({ key: messageKey, value: encoder.encode(shape, event) });
        if (row) reads++;
        else {
          deletes++;
          // Compaction removes the key only behind a tombstone; Debezium consumers expect one after a delete.
          if (o.repair.tombstonesOnDelete ?? true) list.push({ key: messageKey, value: null });
        }
      }
      messages.set(topic, list);
    }
    await legacy.query('COMMIT');
    try {
      await producer.connect();
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...messages].map(([topic, list]) => ({ topic, messages: list })),
      });
    } catch (e) {
      throw toReplicatorError(e, ErrorCodes.KAFKA_UNAVAILABLE, 'verify --repair: could not publish');
    }
    o.logger.info({ lsn, reads, deletes }, 'verify: drifted legacy rows re-emitted');
    return { lsn, reads, deletes, topics: [...messages.keys()] };
  } finally {
    await producer.disconnect().catch(() => {});
    await legacy.end().catch(() => {});
  }
}
