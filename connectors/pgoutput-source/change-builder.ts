import {
  type ChangeEvent,
  type ChangeOp,
  type Row,
  type SourceIdentity,
  sequencePrefix,
  serializeKey,
  type TransactionBlock,
} from '../../src/contracts/change-event.js';
import { type EventEncoder, jsonEncoder, type TableShape } from '../../src/contracts/event-encoder.js';
import type { EventValue, TypeCatalog } from '../../src/contracts/event-value.js';
import type { FenceMarker } from '../../src/contracts/fence.js';
import type { OutMessage } from '../../src/contracts/publisher.js';
import { changeTopic, fencePrefix, heartbeatPrefix } from '../../src/contracts/topics.js';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import { formatLsn, type Lsn } from '../../src/core/lsn.js';
import { type DecodedMessage, type Relation, type Tuple, UNCHANGED_TOAST } from './pgoutput-decoder.js';

/** What the source loop does with one decoded message: publish these, then (maybe) mark a durable position. */
export interface BuildResult {
  messages: OutMessage[];
  /** A position that becomes durable once the messages above (and everything before) are acknowledged. */
  mark?: Lsn;
}

export interface ChangeBuilderOptions {
  topicPrefix: string;
  database: string;
  /** This replicator's version, for `source.version`. */
  version: string;
  /** A tombstone (same key, null value) after each delete, as Debezium's `tombstones.on.delete`. Default true. */
  tombstones?: boolean;
  /** Debezium's `transaction` block on every change (`provide.transaction.metadata`). Default false. */
  transactionMetadata?: boolean;
  catalog: TypeCatalog;
  /** Partition count of a change topic (truncates go to every partition so they stay ordered with each key). */
  partitionsOf: (topic: string) => number;
  encoder?: EventEncoder;
  now?: () => number;
}

interface RelationPlan {
  relation: Relation;
  shape: TableShape;
  topic: string;
  /** schema.table, for diagnostics on each message. */
  table: string;
  /** Kafka key columns: the primary key, else the replica identity columns. */
  keyColumns: string[];
  decoders: ((text: string) => EventValue)[];
}

interface TxState {
  commitLsn: Lsn;
  /** commitLsn as text, formatted once for all the transaction's events. */
  commitLsnText: string;
  xid: number;
  commitTs: string;
  commitMs: number;
  commitUs: number;
  /** Debezium's `transaction.id`. */
  id: string;
  seq: number;
  /** Changes per table so far (transaction metadata only). */
  perTable: Map<string, number> | undefined;
}

/** ISO-8601 UTC with microseconds from microseconds since the Unix epoch (commit times are modern dates). */
export function isoFromMicros(us: bigint): string {
  const ms = Number(us / 1000n);
  const micros = Number(us % 1_000_000n);
  return `${new Date(ms).toISOString().slice(0, 19)}.${String(micros).padStart(6, '0')}Z`;
}

/**
 * Turns decoded pgoutput messages into Debezium-shaped change events and durable positions. Stateful only in what
 * the protocol is: the open transaction and the relations announced so far.
 */
export class ChangeBuilder {
  private readonly plans = new Map<number, RelationPlan>();
  private tx: TxState | undefined;
  private readonly now: () => number;
  private readonly encoder: EventEncoder;
  private readonly identity: SourceIdentity;
  private readonly tombstones: boolean;
  /**
   * `sequence` up to this change's LSN: where the last transaction read ended (its COMMIT message's position, the
   * end of its commit record), Debezium's `lastCommitLsn`. Made once per transaction.
   */
  private sequenceStart = sequencePrefix(null);

  constructor(private readonly o: ChangeBuilderOptions) {
    this.now = o.now ?? Date.now;
    this.encoder = o.encoder ?? jsonEncoder;
    this.identity = { version: o.version, name: o.topicPrefix, db: o.database };
    this.tombstones = o.tombstones ?? true;
  }

  get inTransaction(): boolean {
    return this.tx !== undefined;
  }

  /**
   * Registers a relation once its types are in the catalog and its primary key is known; returns its shape, which
   * the caller must `prepare` on the encoder before the next event.
   */
  addRelation(relation: Relation, primaryKey: readonly string[]): TableShape {
    const keyColumns =
      primaryKey.length > 0 ? [...primaryKey] : relation.columns.filter((c) => c.isKey).map((c) => c.name);
    const topic = changeTopic(this.o.topicPrefix, relation.schema, relation.name);
    const shape: TableShape = {
      schema: relation.schema,
      table: relation.name,
      topic,
      columns: relation.columns.map((c) => ({ name: c.name, typeOid: c.typeOid })),
      keyColumns,
    };
    this.plans.set(relation.relationOid, {
      relation,
      shape,
      topic,
      table: `${relation.schema}.${relation.name}`,
      keyColumns,
      decoders: relation.columns.map((c) => this.o.catalog.decoder(c.typeOid)),
    });
    return shape;
  }

  /** A keepalive: its position is durable once everything before it is, unless a transaction is open. */
  keepalive(walEnd: Lsn): BuildResult {
    return this.tx ? { messages: [] } : { messages: [], mark: walEnd };
  }

  build(msg: DecodedMessage, walStart: Lsn): BuildResult {
    switch (msg.tag) {
      case 'begin': {
        const commitMs = Number(msg.commitTimeUs / 1000n);
        this.tx = {
          commitLsn: msg.commitLsn,
          commitLsnText: formatLsn(msg.commitLsn),
          xid: msg.xid,
          commitTs: isoFromMicros(msg.commitTimeUs),
          commitMs,
          commitUs: Number(msg.commitTimeUs),
          id: `${msg.xid}:${msg.commitLsn}`,
          seq: 0,
          perTable: this.o.transactionMetadata ? new Map() : undefined,
        };
        return { messages: [] };
      }
      case 'commit':
        this.sequenceStart = sequencePrefix(msg.commitEndLsn);
        this.tx = undefined;
        return { messages: [], mark: msg.commitEndLsn };
      case 'insert': {
        const plan = this.plan(msg.relation);
        const after = this.row(plan, msg.new);
        return { messages: [this.event(plan, 'c', null, after.row, after.unchanged, walStart)] };
      }
      case 'update': {
        const plan = this.plan(msg.relation);
        const after = this.row(plan, msg.new);
        const before = msg.old ? this.row(plan, msg.old).row : msg.key ? this.row(plan, msg.key).row : null;
        if (before && keyChanged(plan.keyColumns, before, after.row)) {
          // A primary-key change is a delete of the old key and a create of the new one (as Debezium does),
          // so each key's events stay on its own partition, in order.
          const deleted = this.event(plan, 'd', before, null, [], walStart);
          const created = this.event(plan, 'c', null, after.row, after.unchanged, walStart);
          return { messages: this.tombstones ? [deleted, tombstone(deleted), created] : [deleted, created] };
        }
        return { messages: [this.event(plan, 'u', before, after.row, after.unchanged, walStart)] };
      }
      case 'delete': {
        const plan = this.plan(msg.relation);
        const tuple = msg.old ?? msg.key;
        if (!tuple)
          throw new ReplicatorError(ErrorCodes.REPLICATION_PROTOCOL, 'delete without a key or old row');
        const deleted = this.event(plan, 'd', this.row(plan, tuple).row, null, [], walStart);
        return { messages: this.tombstones ? [deleted, tombstone(deleted)] : [deleted] };
      }
      case 'truncate': {
        const messages: OutMessage[] = [];
        for (const relation of msg.relations) {
          const plan = this.plan(relation);
          const value = this.encoder.encode(plan.shape, this.envelope(plan, 't', null, null, [], walStart));
          for (let p = 0; p < this.o.partitionsOf(plan.topic); p++) {
            messages.push({ topic: plan.topic, key: null, value, partition: p });
          }
        }
        return { messages };
      }
      case 'message': {
        if (msg.prefix === fencePrefix(this.o.topicPrefix)) {
          // The fence record goes to its control topic, after every change committed before the fence (stream order):
          // the change topics carry changes only.
          const marker: FenceMarker = {
            marker: 'fence',
            cutoverId: msg.content.toString('utf8'),
            lsn: formatLsn(msg.messageLsn),
          };
          const messages: OutMessage[] = [
            { topic: fencePrefix(this.o.topicPrefix), key: marker.cutoverId, value: JSON.stringify(marker) },
          ];
          return msg.transactional || this.tx ? { messages } : { messages, mark: msg.messageLsn };
        }
        if (msg.prefix !== heartbeatPrefix(this.o.topicPrefix)) return { messages: [] };
        const value = JSON.stringify({
          lsn: formatLsn(msg.messageLsn),
          sentAt: msg.content.toString('utf8'),
          ts_ms: this.now(),
        });
        const messages = [{ topic: heartbeatPrefix(this.o.topicPrefix), key: this.o.database, value }];
        return msg.transactional || this.tx ? { messages } : { messages, mark: msg.messageLsn };
      }
      case 'relation':
      case 'type':
      case 'origin':
        return { messages: [] };
    }
  }

  private plan(relation: Relation): RelationPlan {
    const plan = this.plans.get(relation.relationOid);
    if (!plan) {
      throw new ReplicatorError(
        ErrorCodes.REPLICATION_PROTOCOL,
        `relation ${relation.schema}.${relation.name} was not registered`,
      );
    }
    return plan;
  }

  private row(plan: RelationPlan, tuple: Tuple): { row: Row; unchanged: string[] } {
    const row = Object.create(null) as Row;
    const unchanged: string[] = [];
    const { columns } = plan.relation;
    for (let i = 0; i < columns.length; i++) {
      const name = columns[i]!.name;
      if (!Object.hasOwn(tuple, name)) continue;
      const v = tuple[name];
      if (v === UNCHANGED_TOAST) unchanged.push(name);
      else row[name] = v === null || v === undefined ? null : plan.decoders[i]!(v);
    }
    return { row, unchanged };
  }

  private envelope(
    plan: RelationPlan,
    op: ChangeOp,
    before: Row | null,
    after: Row | null,
    unchanged: string[],
    lsn: Lsn,
  ): ChangeEvent {
    const tx = this.tx;
    const now = this.now();
    const seq = tx ? tx.seq++ : 0;
    let transaction: TransactionBlock | null = null;
    if (tx?.perTable) {
      const n = (tx.perTable.get(plan.table) ?? 0) + 1;
      tx.perTable.set(plan.table, n);
      transaction = { id: tx.id, total_order: seq + 1, data_collection_order: n };
    }
    return {
      before,
      after,
      source: {
        version: this.identity.version,
        connector: 'postgresql',
        name: this.identity.name,
        // Outside a transaction (never for a change pgoutput sends): the time it was read, as a snapshot row's.
        ts_ms: tx?.commitMs ?? now,
        ts_us: tx?.commitUs ?? now * 1000,
        snapshot: 'false',
        db: this.identity.db,
        sequence: `${this.sequenceStart}${lsn}"]`,
        schema: plan.relation.schema,
        table: plan.relation.name,
        txId: tx?.xid ?? null,
        lsn,
        xmin: null,
        origin: null,
        origin_lsn: null,
        commitLsn: tx?.commitLsnText ?? formatLsn(lsn),
        seq,
        commitTs: tx?.commitTs ?? null,
        ...(unchanged.length > 0 ? { unchangedToast: unchanged } : {}),
      },
      transaction,
      op,
      ts_ms: now,
    };
  }

  private event(
    plan: RelationPlan,
    op: ChangeOp,
    before: Row | null,
    after: Row | null,
    unchanged: string[],
    walStart: Lsn,
  ): OutMessage {
    const keyRow = (op === 'd' ? before : after) ?? {};
    return {
      topic: plan.topic,
      key: serializeKey(keyRow, plan.keyColumns),
      value: this.encoder.encode(plan.shape, this.envelope(plan, op, before, after, unchanged, walStart)),
      position: formatLsn(walStart),
      table: plan.table,
    };
  }
}

/** The tombstone after a delete: its key, no value, so log compaction can drop the key (Debezium's default). */
function tombstone(deleted: OutMessage): OutMessage {
  return {
    topic: deleted.topic,
    key: deleted.key,
    value: null,
    ...(deleted.table ? { table: deleted.table } : {}),
  };
}

function keyChanged(keyColumns: readonly string[], before: Row, after: Row): boolean {
  for (const k of keyColumns) {
    if (!Object.hasOwn(before, k) || !Object.hasOwn(after, k)) continue;
    if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) return true;
  }
  return false;
}
