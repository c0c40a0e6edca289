import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { type EventEncoder, jsonEncoder } from '../../src/contracts/event-encoder.js';
import { loadTypes, TypeCatalog } from '../../src/contracts/event-value.js';
import type { Publisher, PublisherSettings, StateStore } from '../../src/contracts/publisher.js';
import {
  changeTopic,
  dlqTopic,
  EMIT_HEARTBEAT_SQL,
  fencePrefix,
  heartbeatPrefix,
  stateTopic,
  type TableRef,
} from '../../src/contracts/topics.js';
import { AsyncQueue } from '../../src/core/async-queue.js';
import { ErrorCodes, isTransient, ReplicatorError } from '../../src/core/errors.js';
import { ensureTopics } from '../../src/core/kafka-topics.js';
import type { Logger } from '../../src/core/logger.js';
import { formatLsn, type Lsn, maxLsn, parseLsn } from '../../src/core/lsn.js';
import { describePgUrl } from '../../src/core/redact.js';
import { sleep } from '../../src/core/retry.js';
import { quoteIdent } from '../../src/core/sql.js';
import { ChangeBuilder } from './change-builder.js';
import { guardOversized, maxMessageBytes } from './oversized-events.js';
import { type DecodedMessage, PgoutputDecoder, type Relation } from './pgoutput-decoder.js';
import { assertPreflight, describeTable, readSlot, runPreflight, type TableInfo } from './preflight.js';
import { ReplicationStream, type WalMessage } from './replication-stream.js';
import { runSnapshot } from './snapshot.js';

export type SourceRole = 'starting' | 'standby' | 'leader' | 'stopped';

/** What the source reads and how: the legacy side of the configuration. */
export interface SourceSettings {
  url: string;
  slot: string;
  publication: string;
  createPublication: boolean;
  tables: readonly TableRef[];
  snapshot: 'initial' | 'never';
  snapshotChunkRows: number;
  snapshotParallelism: number;
  statusIntervalMs: number;
  heartbeatIntervalMs: number;
  maxBufferedEvents: number;
  maxBufferedBytes: number;
  /** A tombstone after each delete (Debezium's `tombstones.on.delete`). */
  tombstonesOnDelete: boolean;
  /** Debezium's `transaction` block on each change (`provide.transaction.metadata`). */
  provideTransactionMetadata: boolean;
}

/** Where its events go: raw topic naming and the topics' shape when the source creates them. */
export interface SourceTopicSettings {
  topicPrefix: string;
  partitions: number;
  replicationFactor: number;
}

export interface PgoutputSourceOptions {
  source: SourceSettings;
  /** This replicator's version, written into every change's `source.version`. */
  version: string;
  topics: SourceTopicSettings;
  /** For the topic admin (creating the change, heartbeat and state topics). */
  kafka: Kafka;
  /** Makes the session's publisher (the publish stage), given its buffer limits and acknowledgement callback. */
  createPublisher: (settings: PublisherSettings) => Publisher;
  /** Where the snapshot-completion marker lives (topic `stateTopic(topicPrefix)`). */
  stateStore: StateStore;
  logger: Logger;
  /** How often a standby retries the leader lock. */
  standbyPollMs?: number;
  /** Upper bound of the reconnect backoff. */
  maxBackoffMs?: number;
  /** Value encoding (default: JSON; Avro with a Schema Registry). */
  encoder?: EventEncoder;
  /** Called for every streamed change event published, with its table (schema.table) and op (metrics). */
  onEvent?: (table: string, op: string) => void;
  /** Called with each error a session ended on that is retried with a new session (metrics). */
  onRetry?: (error: unknown) => void;
  /** Called when a session started again after such an error has connected to the legacy database (metrics). */
  onReconnect?: () => void;
  /** Called for each change dead-lettered because it is larger than its topic allows (metrics). */
  onOversized?: (table: string, bytes: number) => void;
}

export interface SourceProgress {
  role: SourceRole;
  durableLsn: string;
  snapshotRows: Record<string, number>;
  events: number;
  /**
   * How long streamed changes have been waiting for Kafka's acknowledgement with none arriving (0 when nothing
   * waits): a stall — the broker down, a send refused on every retry — shows here while WAL piles up.
   */
  waitingForKafkaMs: number;
}

type Queued = Exclude<WalMessage, { kind: 'xlog' }> | { kind: 'xlog'; walStart: Lsn; msg: DecodedMessage };

interface SnapshotMarker {
  slot: string;
  database: string;
  consistentPoint: string;
  completedAt: string;
}

/**
 * The source stage: elects one reader per slot (advisory lock), checks the legacy database, takes the initial
 * snapshot on the slot's exported snapshot, then streams pgoutput into Kafka. PostgreSQL is told a position only
 * once Kafka has acknowledged every event before it, so a crash at any moment loses nothing (events after the
 * last reported position are read again: at-least-once, in commit order per key).
 */
export class PgoutputSource {
  private roleNow: SourceRole = 'starting';
  private durable: Lsn = 0n;
  private events = 0;
  /** Since when a streamed change has been waiting for Kafka with no acknowledgement in between (stall detection). */
  private waitingSince: number | undefined;
  private readonly snapshotRows: Record<string, number> = {};
  /** The last session ended on a transient failure: the next one to connect is a reconnect. */
  private recovering = false;

  constructor(private readonly o: PgoutputSourceOptions) {}

  progress(): SourceProgress {
    return {
      role: this.roleNow,
      durableLsn: formatLsn(this.durable),
      snapshotRows: { ...this.snapshotRows },
      events: this.events,
      waitingForKafkaMs: this.waitingSince === undefined ? 0 : Date.now() - this.waitingSince,
    };
  }

  /** Runs until `signal` aborts; retries what can be retried (connections, Kafka) with backoff. */
  async run(signal: AbortSignal): Promise<void> {
    let backoff = 500;
    while (!signal.aborted) {
      try {
        await this.session(signal);
        backoff = 500;
      } catch (e) {
        if (signal.aborted) break;
        if (!isTransient(e)) throw e;
        this.recovering = true;
        this.o.onRetry?.(e);
        this.o.logger.warn({ err: errText(e), retryInMs: backoff }, 'source session ended; reconnecting');
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, this.o.maxBackoffMs ?? 10_000);
      }
    }
    this.roleNow = 'stopped';
  }

  private async session(signal: AbortSignal): Promise<void> {
    const { source, topics: kafka } = this.o;
    const log = this.o.logger;
    const closers: (() => Promise<unknown>)[] = [];
    const close = async () => {
      for (const c of closers.reverse()) await c().catch(() => {});
    };
    try {
      // Leadership: one reader per slot. The lock lives as long as this session's connection.
      // A session-long connection that errors (server restart, network) ends the session; the caller reconnects.
      // Without a listener, pg's 'error' event would crash the process.
      let loseConnection!: (e: unknown) => void;
      const connectionLost = new Promise<never>((_, reject) => {
        loseConnection = (e) =>
          reject(
            new ReplicatorError(ErrorCodes.PG_CONNECTION_FAILED, 'source connection lost', { cause: e }),
          );
      });
      connectionLost.catch(() => {});
      const lock = new pg.Client({ connectionString: source.url, application_name: 'replicator-source' });
      lock.on('error', loseConnection);
      await lock.connect();
      closers.push(() => lock.end());
      if (this.recovering) {
        this.recovering = false;
        this.o.onReconnect?.();
      }
      this.roleNow = 'standby';
      let announced = false;
      for (;;) {
        const got = (
          await lock.query<{ ok: boolean }>(
            "SELECT pg_try_advisory_lock(hashtext('replicator.source'), hashtext($1)) AS ok",
            [source.slot],
          )
        ).rows[0]?.ok;
        if (got) break;
        if (!announced) log.info({ slot: source.slot }, 'another source holds the leader lock; standing by');
        announced = true;
        await sleep(this.o.standbyPollMs ?? 1_000, signal);
        if (signal.aborted) return;
      }
      this.roleNow = 'leader';
      log.info({ slot: source.slot, db: describePgUrl(source.url) }, 'source is the leader');

      const admin = new pg.Client({ connectionString: source.url, application_name: 'replicator-source' });
      admin.on('error', loseConnection);
      await admin.connect();
      closers.push(() => admin.end());
      const database = (await admin.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;

      const findings = await runPreflight({
        client: admin,
        tables: source.tables,
        publication: source.publication,
        slot: source.slot,
        createPublication: source.createPublication,
      });
      for (const f of findings) if (f.level !== 'ok') log.warn({ check: f.check, fix: f.fix }, f.message);
      assertPreflight(findings);
      const tableInfos: TableInfo[] = [];
      for (const t of source.tables) tableInfos.push((await describeTable(admin, t))!);

      const kafkaAdmin = this.o.kafka.admin();
      await kafkaAdmin.connect();
      closers.push(() => kafkaAdmin.disconnect());
      const partitions = await ensureTopics(kafkaAdmin, [
        ...source.tables.map((t) => ({
          topic: changeTopic(kafka.topicPrefix, t.schema, t.table),
          partitions: kafka.partitions,
          replicationFactor: kafka.replicationFactor,
        })),
        {
          topic: heartbeatPrefix(kafka.topicPrefix),
          partitions: 1,
          replicationFactor: kafka.replicationFactor,
        },
        {
          topic: stateTopic(kafka.topicPrefix),
          partitions: 1,
          replicationFactor: kafka.replicationFactor,
          compact: true,
        },
        // The cutover's fence records (see src/contracts/fence.ts).
        { topic: fencePrefix(kafka.topicPrefix), partitions: 1, replicationFactor: kafka.replicationFactor },
        // A change too large for its topic is dead-lettered here (guardOversized).
        { topic: dlqTopic(kafka.topicPrefix), partitions: 1, replicationFactor: kafka.replicationFactor },
      ]);
      const state = this.o.stateStore;

      const publisher = guardOversized(
        this.o.createPublisher({
          checkpoint: (lsn) => {
            this.durable = maxLsn(this.durable, lsn);
          },
          acknowledged: () => {
            this.waitingSince = undefined;
          },
          maxBufferedMessages: source.maxBufferedEvents,
          maxBufferedBytes: source.maxBufferedBytes,
        }),
        {
          limit: await maxMessageBytes(
            kafkaAdmin,
            source.tables.map((t) => changeTopic(kafka.topicPrefix, t.schema, t.table)),
          ),
          dlqTopic: dlqTopic(kafka.topicPrefix),
          logger: log,
          ...(this.o.onOversized ? { onOversized: this.o.onOversized } : {}),
        },
      );
      await publisher.start();
      closers.push(() => publisher.close());

      const catalog = new TypeCatalog();
      let slot = await readSlot(admin, source.slot);
      const markerKey = `snapshot/${database}/${source.slot}`;
      if (source.snapshot === 'initial') {
        const marker = slot.exists ? await state.get<SnapshotMarker>(markerKey) : undefined;
        if (!marker) {
          if (slot.exists) {
            // A slot without a completed-snapshot marker is an interrupted snapshot: start over cleanly. What the
            // interrupted attempt published is already in Kafka (and maybe applied), and rows may have been deleted
            // since; the new snapshot is preceded by a truncate of each table, so those rows go.
            log.warn(
              { slot: source.slot },
              'slot exists but its snapshot never completed; dropping it to start over',
            );
            await admin.query('SELECT pg_drop_replication_slot($1)', [source.slot]);
          }
          await this.snapshot(
            signal,
            source.url,
            source.slot,
            database,
            tableInfos,
            catalog,
            publisher,
            state,
            markerKey,
            slot.exists ? (topic) => partitions.get(topic) ?? kafka.partitions : undefined,
          );
          if (signal.aborted) return;
        }
      } else if (!slot.exists) {
        await createSlot(source.url, source.slot, 'nothing', async () => {});
        log.info({ slot: source.slot }, 'created slot without snapshot (snapshot=never)');
      }
      slot = await readSlot(admin, source.slot);
      if (!slot.confirmedFlushLsn) {
        throw new ReplicatorError(
          ErrorCodes.PREFLIGHT_FAILED,
          `slot ${source.slot} has no confirmed_flush_lsn`,
        );
      }
      // Never report less than the slot already has: the stream's reports only move forward from here.
      this.durable = parseLsn(slot.confirmedFlushLsn);

      await this.stream(signal, admin, database, tableInfos, catalog, publisher, partitions, connectionLost);
    } finally {
      await close();
      if (this.roleNow === 'leader') this.roleNow = 'starting';
    }
  }

  private async snapshot(
    signal: AbortSignal,
    url: string,
    slotName: string,
    database: string,
    tables: TableInfo[],
    catalog: TypeCatalog,
    publisher: Publisher,
    state: StateStore,
    markerKey: string,
    /** Redoing an interrupted snapshot: each table's topic partitions, to truncate them first. */
    redoPartitionsOf?: (topic: string) => number,
  ): Promise<void> {
    const { source, topics: kafka } = this.o;
    const log = this.o.logger;
    await createSlot(url, slotName, 'export', async (snapshotName, consistentPoint) => {
      log.info({ slot: slotName, consistentPoint: formatLsn(consistentPoint) }, 'initial snapshot started');
      const counts = await runSnapshot({
        url,
        snapshotName,
        consistentPoint,
        tables,
        chunkRows: source.snapshotChunkRows,
        parallelism: source.snapshotParallelism,
        topicPrefix: kafka.topicPrefix,
        database,
        version: this.o.version,
        catalog,
        publisher,
        encoder: this.o.encoder ?? jsonEncoder,
        logger: log,
        signal,
        onRows: (table, rows) => {
          this.snapshotRows[table] = rows;
        },
        ...(redoPartitionsOf ? { truncateFirst: { partitionsOf: redoPartitionsOf } } : {}),
      });
      await publisher.flush();
      await state.put(markerKey, {
        slot: slotName,
        database,
        consistentPoint: formatLsn(consistentPoint),
        completedAt: new Date().toISOString(),
      } satisfies SnapshotMarker);
      log.info({ tables: Object.fromEntries(counts) }, 'initial snapshot complete');
    });
  }

  private async stream(
    signal: AbortSignal,
    admin: pg.Client,
    database: string,
    tables: TableInfo[],
    catalog: TypeCatalog,
    publisher: Publisher,
    partitions: Map<string, number>,
    connectionLost: Promise<never>,
  ): Promise<void> {
    const { source, topics: kafka } = this.o;
    const log = this.o.logger;
    const decoder = new PgoutputDecoder();
    const builder = new ChangeBuilder({
      topicPrefix: kafka.topicPrefix,
      database,
      catalog,
      partitionsOf: (topic) => partitions.get(topic) ?? kafka.partitions,
      encoder: this.o.encoder ?? jsonEncoder,
      version: this.o.version,
      tombstones: source.tombstonesOnDelete,
      transactionMetadata: source.provideTransactionMetadata,
    });
    const primaryKeys = new Map(tables.map((t) => [`${t.table.schema}.${t.table.table}`, t.primaryKey]));

    // Messages wait here; past the high-water mark the socket is paused (the server then stops sending).
    // They are decoded in the socket callback: pg's protocol parser reuses its buffer once the callback returns.
    let stream: ReplicationStream | undefined;
    const queue = new AsyncQueue<Queued>(
      2_000,
      () => stream?.pause(),
      () => stream?.resume(),
    );
    stream = new ReplicationStream({
      url: source.url,
      slot: source.slot,
      publication: source.publication,
      startLsn: this.durable,
      statusIntervalMs: source.statusIntervalMs,
      durableLsn: () => this.durable,
      onMessage: (m) =>
        queue.push(
          m.kind === 'xlog' ? { kind: 'xlog', walStart: m.walStart, msg: decoder.decode(m.data) } : m,
        ),
    });
    await stream.start();
    log.info({ slot: source.slot, from: formatLsn(this.durable) }, 'streaming');
    stream.ended.catch((e) => queue.fail(e));
    connectionLost.catch((e) => queue.fail(e));
    const onAbort = () => queue.close();
    signal.addEventListener('abort', onAbort, { once: true });
    // An abort that came while the session was starting never fires a listener added now.
    if (signal.aborted) queue.close();

    const heartbeat =
      source.heartbeatIntervalMs > 0
        ? setInterval(() => {
            admin
              .query(EMIT_HEARTBEAT_SQL, [heartbeatPrefix(kafka.topicPrefix)])
              .catch((e: unknown) => log.warn({ err: errText(e) }, 'heartbeat failed'));
          }, source.heartbeatIntervalMs)
        : undefined;

    const onRelation = async (relation: Relation) => {
      const missing = catalog.missing(relation.columns.map((c) => c.typeOid));
      if (missing.length > 0) for (const t of await loadTypes(admin, missing)) catalog.add(t);
      const key = `${relation.schema}.${relation.name}`;
      // A relation message also follows ALTER TABLE: re-read the key so a changed primary key is honoured.
      const info = await describeTable(admin, { schema: relation.schema, table: relation.name });
      if (info) primaryKeys.set(key, info.primaryKey);
      await (this.o.encoder ?? jsonEncoder).prepare(
        builder.addRelation(relation, primaryKeys.get(key) ?? []),
      );
    };

    const fenceTopic = fencePrefix(kafka.topicPrefix);
    /** A fence record was published in the transaction being read: report its position as soon as Kafka has it. */
    let fenced = false;
    try {
      for (;;) {
        const { value: m, done } = await queue.next();
        if (done) break;
        if (m.kind === 'keepalive') {
          const r = builder.keepalive(m.walEnd);
          if (r.mark !== undefined) publisher.mark(r.mark);
          continue;
        }
        const { msg } = m;
        if (msg.tag === 'relation') await onRelation(msg.relation);
        const r = builder.build(msg, m.walStart);
        if (this.o.onEvent)
          for (const [table, op] of changesOf(msg, r.messages.length)) this.o.onEvent(table, op);
        for (const out of r.messages) {
          if (out.topic === fenceTopic) fenced = true;
          else this.events++;
          this.waitingSince ??= Date.now();
          if (!publisher.publish(out)) await publisher.drained();
        }
        if (r.mark !== undefined) {
          publisher.mark(r.mark);
          if (fenced) {
            // A cutover waits for the slot to pass its fence (writes are blocked meanwhile): do not make it wait for
            // the next status interval.
            fenced = false;
            await publisher.flush();
            stream.sendStatus();
          }
        }
      }
      // Graceful stop: everything read so far goes to Kafka, then its position to PostgreSQL.
      await publisher.flush();
      stream.sendStatus();
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (heartbeat) clearInterval(heartbeat);
      await stream.stop();
    }
  }
}

/**
 * The application_name of the replication connection that creates `slot` and holds its exported snapshot open while
 * the initial snapshot is copied. The slot itself is inactive meanwhile, its position already the consistent point.
 * PostgreSQL keeps the first 63 bytes of an application_name; compare with `left(…, 63)`.
 */
export const snapshotSessionName = (slot: string) => `replicator-snapshot ${slot}`;

/**
 * Creates the slot on a replication connection. With `export`, `whileExported` runs while that connection stays
 * open and idle, which is what keeps the exported snapshot valid.
 */
async function createSlot(
  url: string,
  slot: string,
  snapshot: 'export' | 'nothing',
  whileExported: (snapshotName: string, consistentPoint: Lsn) => Promise<void>,
): Promise<void> {
  const repl = new pg.Client({
    connectionString: url,
    replication: 'database',
    // While it is open the initial snapshot is being copied: waiters for the pipeline look for it (slotPassed).
    application_name: snapshotSessionName(slot),
  } as pg.ClientConfig);
  await repl.connect();
  try {
    const { rows } = await repl.query<{ consistent_point: string; snapshot_name: string | null }>(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT '${snapshot}')`,
    );
    const row = rows[0]!;
    if (snapshot === 'export') await whileExported(row.snapshot_name!, parseLsn(row.consistent_point));
  } finally {
    await repl.end().catch(() => {});
  }
}

/** The (table, op) of each change event one decoded message became (a key-changing update is a d and a c). */
function changesOf(msg: DecodedMessage, produced: number): [string, string][] {
  const name = (r: Relation) => `${r.schema}.${r.name}`;
  switch (msg.tag) {
    case 'insert':
      return [[name(msg.relation), 'c']];
    case 'update':
      return produced === 2
        ? [
            [name(msg.relation), 'd'],
            [name(msg.relation), 'c'],
          ]
        : [[name(msg.relation), 'u']];
    case 'delete':
      return [[name(msg.relation), 'd']];
    case 'truncate':
      return msg.relations.map((r) => [name(r), 't']);
    default:
      return [];
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
