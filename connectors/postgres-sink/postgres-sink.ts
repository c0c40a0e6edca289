import { type Kafka, type KafkaMessage, Partitioners, type Producer } from 'kafkajs';
import pg from 'pg';
import { parseChangeEventJson } from '../../src/contracts/change-event.js';
import {
  CHANGES_LOST,
  type DeadLetterInfo,
  deadLetterHeaders,
  REPLAYED_FROM_HEADER,
} from '../../src/contracts/dead-letter.js';
import { type JsonRow, SCHEMA_DRIFT, type TransformModule } from '../../src/contracts/transform-api.js';
import type { V2Model } from '../../src/contracts/v2-model.js';
import type { V2Unit } from '../../src/contracts/v2-unit.js';
import { ErrorCodes, isTransient, ReplicatorError } from '../../src/core/errors.js';
import { ensureTopics } from '../../src/core/kafka-topics.js';
import type { Logger } from '../../src/core/logger.js';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { textTypes } from '../../src/core/pg-text-types.js';
import { describePgUrl } from '../../src/core/redact.js';
import { sleep } from '../../src/core/retry.js';
import { applyBatch } from './batch-applier.js';
import { type DriftHold, DriftHolds, type TopicPartition } from './drift-holds.js';
import { isNewer, lineageKey, positionOf } from './lineage.js';
import { PartitionQueues } from './partition-queues.js';
import { type DriftedChange, RawChangeReader, type RawEntry } from './raw-change.js';
import { type Settlement, Settler } from './settler.js';
import { ensureReplicatorSchema, unindexedLookups } from './target-schema.js';
import { LegacyRows, type RowChange, ToastImages, type ToastStep } from './toast-images.js';
import { emailsOf, readColumnTypes, UnitApplier } from './unit-applier.js';

export interface PostgresSinkOptions {
  /** The V2 database. */
  targetUrl: string;
  /**
   * The legacy database, read only (SELECT): which columns can be TOASTed, and the legacy row of an update whose
   * unchanged TOASTed values have no image in the target (see toast-images.ts).
   */
  legacyUrl: string;
  /** The consumer group; also the key of this sink's offsets and applied position in the target. */
  groupId: string;
  /** Partitions applied at once (one target connection each). */
  concurrency: number;
  /** How long a dead instance holds its partitions before the group moves them. */
  sessionTimeoutMs: number;
  /** The raw change topics it consumes (one per captured table), and the source's heartbeat topic. */
  changeTopics: readonly string[];
  heartbeatTopic: string;
  /** Where invalid rows and rows the target rejects go. */
  dlqTopic: string;
  /** For creating the topics when the sink starts before the source did (heartbeat and DLQ: 1 partition). */
  partitions: number;
  replicationFactor: number;
  /** The transform modules, run in process on each change (the one Kafka hop between legacy and V2). */
  modules: readonly TransformModule[];
  /** The V2 domain: entity order and the derived users. */
  model: V2Model;
  /** Most changes applied in one transaction (default 5,000); less when less is queued. */
  maxBatchMessages?: number;
  /** Changes queued per partition above which its fetching pauses (default 20,000). */
  maxQueuedMessages?: number;
  /**
   * Raw change bytes (keys and values as fetched) queued or being applied, over every partition, above which
   * fetching pauses (default 16 MiB): what bounds the stage's memory under a backlog (a parsed change takes about
   * five times its raw size).
   */
  maxQueuedBytes?: number;
  /** Fault injection for tests: hold each apply transaction open this long before COMMIT. */
  holdBeforeCommitMs?: number;
  /** Fault injection for tests: wait this long between an apply commit and its derived rows' recompute. */
  holdBeforeSettleMs?: number;
  /** Decodes a Confluent-framed (Avro) value; without it, values are JSON. */
  decodeValue?: (value: Buffer) => Promise<unknown>;
  kafka: Kafka;
  logger: Logger;
  onBatch?: (seconds: number, units: number) => void;
  onDeadLetter?: (reason: string) => void;
  /** Rows whose unchanged TOASTed values were re-read from legacy (no image), per legacy table. */
  onToastRefetch?: (table: string, rows: number) => void;
  /** Called for every V2 unit a transform produced, with its legacy table (metrics). */
  onUnit?: (table: string) => void;
  /**
   * Per-hop latency of each applied change, in seconds: legacy commit → produced to Kafka (`capture`), → its
   * batch's apply started (`queue`: in Kafka and in this stage's queue), → committed in the target (`apply`).
   */
  onHops?: (hops: { capture: number; queue: number; apply: number }) => void;
  /** Newest source commit time applied (units and heartbeats), for lag. */
  onApplied?: (commitTs: string) => void;
  /**
   * Called with each error the sink catches and retries: a session that ended (started again), a batch or a
   * connection attempt that failed (tried again), a consumer kafkajs restarts itself (metrics).
   */
  onRetry?: (error: unknown) => void;
  /** Called when the sink has re-established its connections after such an error and goes on (metrics). */
  onReconnect?: () => void;
  /** The partitions of a legacy table held by schema drift, whenever that changes (metrics; drift-holds.ts). */
  onSchemaDrift?: (table: string, heldPartitions: number) => void;
  /** How often a partition held by schema drift is checked again (default 5 s). */
  driftProbeMs?: number;
}

type DeadInfo = Omit<DeadLetterInfo, 'sourceTopic' | 'sourcePartition' | 'sourceOffset'>;

interface Entry {
  offset: string;
  unit?: V2Unit;
  heartbeatTs?: string;
  /** The heartbeat's WAL position (the newest applied source position, for verify). */
  heartbeatLsn?: string;
  /** Dead-lettered by the transform step; committed with the batch's offsets (a unit may still apply). */
  dead?: DeadInfo;
  /**
   * A change of a captured legacy row (not a truncate), for the image store; with `change.pending`, the event
   * lacks unchanged TOASTed values and its unit is built inside the apply transaction.
   */
  change?: RowChange;
  /** The row does not fit its module's legacy schema: its partition is held here until it does (drift-holds.ts). */
  drifted?: DriftedChange;
  raw: KafkaMessage;
  /** The partition's high watermark when this message was fetched: where its log ended then. */
  logEnd?: string;
}

/** Errors that say this row is bad (data exception, integrity violation), as opposed to the target being unwell. */
function isRowError(e: unknown): e is Error & { code: string } {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/**
 * The sink (apply stage): reads the raw change topics, runs each change's transform module in process and applies
 * the resulting V2 units to the target exactly once. Each partition batch is one target transaction that also
 * advances that partition's offset in replicator.sink_offsets — the offsets Kafka holds are informative only. A
 * batch is applied completely or not at all; a row the target rejects is isolated (the batch is replayed row by
 * row with savepoints) and dead-lettered with the database's error; an unreachable target is retried with backoff,
 * nothing skipped and no offset advanced.
 */
export class PostgresSink {
  private applied = 0;
  private deadLetters = 0;

  private readonly reader: RawChangeReader;
  private readonly toast: ToastImages;
  /** The last session ended on a transient failure: the next one to connect is a reconnect. */
  private recovering = false;

  constructor(private readonly o: PostgresSinkOptions) {
    this.reader = new RawChangeReader(o.modules, o.heartbeatTopic);
    this.toast = new ToastImages(new LegacyRows(o.legacyUrl, o.logger));
  }

  progress() {
    return { applied: this.applied, deadLetters: this.deadLetters };
  }

  /**
   * Runs until `signal` aborts. A session that ends on a transient failure (the target or the broker gone, a
   * consumer that crashed) is started again with backoff: the process stays up, and a restarted session resumes
   * from the offsets stored in the target, so nothing is lost or applied twice.
   */
  async run(signal: AbortSignal): Promise<void> {
    let backoff = 500;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await this.session(signal);
        return;
      } catch (e) {
        if (signal.aborted) return;
        if (!isTransient(e)) throw e;
        this.recovering = true;
        this.o.onRetry?.(e);
        if (Date.now() - started > 60_000) backoff = 500;
        this.o.logger.warn(
          { err: e instanceof Error ? e.message : String(e), retryInMs: backoff },
          'sink session ended; starting again',
        );
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  private async session(signal: AbortSignal): Promise<void> {
    const o = this.o;
    const log = o.logger;
    const pool = new pg.Pool({
      connectionString: o.targetUrl,
      // A connection per partition batch under way, the settler's, and one to spare (setup, checks).
      max: o.concurrency + 2,
      types: textTypes,
      // No JIT: the apply statements touch a few rows each, but the users recompute's per-key lookups are costed
      // from default estimates on a table not yet analyzed, past jit_above_cost: compiling took 930 ms of a 955 ms
      // statement at 100,000 bookings.
      options: '-c TimeZone=UTC -c DateStyle=ISO,YMD -c jit=off',
      // Names its sessions in pg_stat_activity, for operators (and the kill -9 test).
      application_name: 'replicator-sink',
    });
    pool.on('error', (e) => log.warn({ err: e.message }, 'idle target connection failed'));
    // A listener for the connection's whole life: pg-pool takes its own off a client it hands out, and `checkout`
    // adds one only after the handover's promise settles; an error read in between (a server shutting down as a
    // connection opens) would be unhandled and end the process. A lost connection still fails its next query.
    pool.on('connect', (client) => client.on('error', () => {}));
    const topics = [...o.changeTopics, o.heartbeatTopic];
    const heartbeatTopic = o.heartbeatTopic;

    const setup = await this.retrying(signal, () => this.checkout(pool));
    let applier: UnitApplier;
    try {
      await ensureReplicatorSchema(setup);
      applier = new UnitApplier(await readColumnTypes(setup), o.model);
      for (const l of await unindexedLookups(setup, o.model.derived.lookups)) {
        log.warn(
          { table: l.table, column: l.column, fix: `CREATE INDEX ON ${l.table} (${l.column})` },
          `no index on ${l.table}(${l.column}): every recompute of derived rows scans the table`,
        );
      }
    } finally {
      setup.release();
    }
    log.info({ target: describePgUrl(o.targetUrl), topics }, 'sink starting');

    // The sink may start before the source has created the change topics.
    const admin = o.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [
        ...topics.map((topic) => ({
          topic,
          partitions: topic === heartbeatTopic ? 1 : o.partitions,
          replicationFactor: o.replicationFactor,
        })),
        { topic: o.dlqTopic, partitions: 1, replicationFactor: o.replicationFactor },
      ]);
    } finally {
      await admin.disconnect();
    }
    const dlq = o.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const consumer = o.kafka.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: Math.floor(o.sessionTimeoutMs / 5),
      allowAutoTopicCreation: false,
      // The broker answers a fetch as soon as one byte is there (minBytes 1), so this only bounds an idle poll;
      // a shorter one lets a paused-then-resumed partition and a stop be noticed sooner.
      maxWaitTimeInMs: 500,
      // Bigger fetches under a backlog: a batch of a few thousand changes amortizes a transaction's round trips.
      maxBytesPerPartition: 4 * 1024 * 1024,
    });
    // Between a consumer crash and kafkajs's restart of it there is no consumer group: pause, resume and seek throw
    // ("Consumer group was not initialized"), and one thrown from a queue's resume ended the process in a fault
    // test (the broker restarted under a backlog). The restarted group starts with every partition fetching; the
    // queues pause again as they fill, and drift holds are re-applied when the group is joined.
    const flow = (what: string, f: () => void) => {
      try {
        f();
      } catch (e) {
        log.debug({ err: e instanceof Error ? e.message : String(e) }, `sink: could not ${what} a partition`);
      }
    };
    const pause = (tp: TopicPartition) =>
      flow('pause', () => consumer.pause([{ topic: tp.topic, partitions: [tp.partition] }]));
    const resume = (tp: TopicPartition) =>
      flow('resume', () => consumer.resume([{ topic: tp.topic, partitions: [tp.partition] }]));
    const holds = new DriftHolds({
      pause: (tp, offset) => {
        pause(tp);
        flow('seek', () => consumer.seek({ topic: tp.topic, partition: tp.partition, offset }));
      },
      resume,
      record: (tp, hold) => this.recordDrift(pool, tp, hold),
      logger: log,
      ...(o.onSchemaDrift ? { onChange: o.onSchemaDrift } : {}),
      ...(o.driftProbeMs ? { probeMs: o.driftProbeMs } : {}),
    });
    const queues = new PartitionQueues<Entry>({
      concurrency: o.concurrency,
      maxBatch: o.maxBatchMessages ?? 5_000,
      highWater: o.maxQueuedMessages ?? 20_000,
      maxBytes: o.maxQueuedBytes ?? 16 * 1024 * 1024,
      // A small fixed share for what every change carries besides its bytes (entry, offsets, parsed unit).
      size: (e) => (e.raw.value?.length ?? 0) + (e.raw.key?.length ?? 0) + 64,
      pause,
      resume: (tp) => {
        if (!holds.blocks(tp)) resume(tp);
      },
      apply: async (tp, entries) => {
        const started = Date.now();
        const t0 = process.hrtime.bigint();
        let applied = false;
        await this.retrying(signal, async () => {
          if (signal.aborted) return;
          applied = await this.applyBatch(pool, applier, settler, dlq, tp.topic, tp.partition, entries);
        });
        o.onBatch?.(Number(process.hrtime.bigint() - t0) / 1e9, entries.length);
        if (applied && o.onHops) this.observeHops(entries, started, Date.now());
        // Informative only: the target's table is what a restart trusts. Not waited for: the partition's next batch
        // need not wait a broker round trip (one connection to the coordinator keeps a partition's commits in order).
        const next = String(BigInt(entries[entries.length - 1]!.offset) + 1n);
        void consumer
          .commitOffsets([{ topic: tp.topic, partition: tp.partition, offset: next }])
          .catch(() => {});
      },
    });
    await dlq.connect();
    await consumer.connect();
    if (this.recovering) this.reconnected();
    /** kafkajs restarts a consumer that crashed on a retriable error itself: its next join is a reconnect. */
    let rejoining = false;
    const crashed = new Promise<never>((_, reject) => {
      // A consumer kafkajs gave up on (e.g. the broker gone past its retries) ends the session, which is then
      // started again with a new consumer: never the process.
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (payload.restart) {
          rejoining = true;
          o.onRetry?.(payload.error);
        } else
          reject(
            new ReplicatorError(
              ErrorCodes.KAFKA_UNAVAILABLE,
              `sink consumer crashed: ${payload.error.message}`,
              {
                cause: payload.error,
                retryable: true,
              },
            ),
          );
      });
    });
    crashed.catch(() => {});
    // On each assignment, resume from the offsets stored in the target, not Kafka's.
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      if (rejoining) {
        rejoining = false;
        this.reconnected();
      }
      // Partitions moved to another instance: what is queued for them is theirs now (from the stored offsets).
      queues.retain((tp) => payload.memberAssignment[tp.topic]?.includes(tp.partition) ?? false);
      holds.reset(
        Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
          partitions.map((partition) => ({ topic, partition })),
        ),
      );
      queues.rejoined();
      void (async () => {
        const assigned = Object.entries(payload.memberAssignment);
        const { rows } = await pool.query<{ topic: string; partition: number; next_offset: string }>(
          'SELECT topic, partition, next_offset::text FROM replicator.sink_offsets WHERE group_id = $1 AND topic = ANY($2)',
          [o.groupId, assigned.map(([t]) => t)],
        );
        for (const r of rows) {
          if (payload.memberAssignment[r.topic]?.includes(r.partition)) {
            consumer.seek({ topic: r.topic, partition: r.partition, offset: r.next_offset });
          }
        }
      })().catch((e: unknown) =>
        log.warn({ err: String(e) }, 'could not seek to stored offsets; the batch filter still applies'),
      );
    });
    const withClient = async (fn: (client: pg.PoolClient) => Promise<void>) => {
      const client = await this.checkout(pool);
      try {
        await fn(client);
      } catch (e) {
        client.release(true);
        throw e;
      }
      client.release();
    };
    // Users are recomputed off the partitions' path, for all of them at once (settler.ts); it starts with a sweep
    // of what an earlier session left queued. Created here, where the `finally` below stops it with the session.
    const settler = new Settler({
      settle: (work) =>
        withClient(async (client) => {
          if (this.o.holdBeforeSettleMs && work.ids.length > 0) await sleep(this.o.holdBeforeSettleMs);
          await this.settle(client, applier, work);
        }),
      sweep: () => withClient((client) => this.sweepDerived(client, applier)),
      logger: log,
      ...(o.onRetry ? { onRetry: o.onRetry } : {}),
    });
    const settling = new AbortController();
    const settlerDone = settler.run(settling.signal);
    holds.start();
    try {
      await consumer.subscribe({ topics, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        // A fetched batch is parsed and queued, not applied here: kafkajs fetches again only once every batch of
        // a fetch is handled, and the queues apply each partition as soon as a connection is free.
        eachBatch: async ({ batch, isStale }) => {
          if (batch.messages.length === 0 || isStale()) return;
          const tp = { topic: batch.topic, partition: batch.partition };
          const entries: Entry[] = [];
          for (const m of batch.messages) {
            let entry = await this.parse(batch.topic, m);
            if (entry.drifted) {
              const settled = await this.settleDrift({ ...entry, drifted: entry.drifted });
              if (settled === undefined) {
                // What came before the drifted change applies; the partition waits at it (drift-holds.ts).
                if (entries.length > 0) queues.push(tp, entries);
                holds.hold(tp, entry.offset, entry.drifted);
                return;
              }
              entry = settled;
            }
            entry.logEnd = batch.highWatermark;
            entries.push(entry);
          }
          holds.passed(tp);
          queues.push(tp, entries);
        },
      });
      let flipTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        crashed,
        queues.failed,
        settler.failed,
        new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
          // After a full cutover's flip, V2 belongs to the application: stop applying (once the writes a waiting
          // fence admitted after the flip are applied: `tail_pending`). And keys queued for a
          // recompute that nobody settled (another instance that died) are swept by the next batch here. The oldest
          // queued key by id, through the primary key: a filter on queued_at scanned the whole queue table, dead
          // rows included (80–170 ms a second on this box with autovacuum off).
          flipTimer = setInterval(() => {
            pool
              .query(
                `SELECT 1 FROM (SELECT queued_at FROM replicator.pending_derived ORDER BY id LIMIT 1) q
                  WHERE queued_at < now() - interval '5 seconds'`,
              )
              .then((r) => {
                if (r.rowCount) settler.markUnsettled();
              })
              .catch(() => {});
            pool
              .query(
                "SELECT id FROM replicator.cutovers WHERE phase = 'flipped' AND shop IS NULL AND NOT tail_pending LIMIT 1",
              )
              .then((r) => {
                if (r.rowCount) {
                  log.info({ cutover: r.rows[0].id }, 'cutover flipped: the sink stops consuming');
                  resolve();
                }
              })
              .catch(() => {});
          }, 2_000);
        }),
      ]).finally(() => clearInterval(flipTimer));
    } finally {
      holds.stop();
      await consumer.disconnect().catch(() => {});
      // Let the batches under way commit; what is only queued is fetched again from the stored offsets next time.
      queues.retain(() => false);
      await queues.idle();
      // What the applied batches handed over is settled before the connections close (or swept next time).
      settling.abort();
      await settlerDone;
      await dlq.disconnect().catch(() => {});
      await pool.end().catch(() => {});
      await this.toast.legacy.end();
    }
  }

  /** Decodes one raw message (JSON, or Avro when framed and a decoder is set) and runs its transform. */
  private async parse(topic: string, m: KafkaMessage): Promise<Entry> {
    const base = { offset: m.offset, raw: m };
    if (m.value === null) return base;
    let decoded: unknown;
    try {
      decoded =
        m.value[0] === 0 && this.o.decodeValue
          ? await this.o.decodeValue(m.value)
          : parseChangeEventJson(m.value.toString('utf8'));
    } catch (e) {
      decoded = e instanceof Error ? e : new Error(String(e));
    }
    return this.entry(m, this.reader.read(topic, m.key?.toString('utf8') ?? null, decoded));
  }

  private entry(m: KafkaMessage, r: RawEntry): Entry {
    const base = { offset: m.offset, raw: m };
    switch (r.kind) {
      case 'skip':
        return base;
      case 'heartbeat':
        return { ...base, heartbeatTs: r.ts, ...(r.lsn ? { heartbeatLsn: r.lsn } : {}) };
      case 'dead':
        return { ...base, dead: r.dead };
      case 'drift':
        return { ...base, drifted: r.drifted };
      case 'toast':
        return { ...base, change: rowChange(r.pending.source, r.pending.change.after, r.pending) };
      case 'unit': {
        this.o.onUnit?.(r.unit.source.table);
        const unit = replayed(m, r.unit);
        const { source } = unit;
        return {
          ...base,
          unit,
          ...(r.dead ? { dead: r.dead } : {}),
          ...(r.unit.truncate ? {} : { change: rowChange(source, source.op === 'd' ? null : r.after) }),
        };
      }
    }
  }

  /** The finding `status` shows for a partition held by schema drift (removed when it flows again). */
  private async recordDrift(pool: pg.Pool, tp: TopicPartition, hold: DriftHold | null): Promise<void> {
    if (hold === null) {
      await pool.query(
        'DELETE FROM replicator.schema_drift WHERE group_id = $1 AND topic = $2 AND partition = $3',
        [this.o.groupId, tp.topic, tp.partition],
      );
      return;
    }
    await pool.query(
      `INSERT INTO replicator.schema_drift (group_id, topic, partition, legacy_table, columns, message, held_offset, since)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (group_id, topic, partition) DO UPDATE SET legacy_table = EXCLUDED.legacy_table,
         columns = EXCLUDED.columns, message = EXCLUDED.message, held_offset = EXCLUDED.held_offset`,
      [
        this.o.groupId,
        tp.topic,
        tp.partition,
        hold.table,
        hold.columns,
        hold.message,
        hold.offset,
        hold.since,
      ],
    );
  }

  /**
   * A drifted change against the legacy table as it is now: still drifting (undefined: hold the partition), or
   * what to apply — the change transformed as its current legacy row (newer than the event, as a re-read TOASTed
   * value is; the changes after it carry their own rows), or nothing when the row is gone (its delete follows on
   * the partition). Whether the table fits again is judged on the row itself, or on any row when it is gone. A
   * legacy database that cannot be read keeps the hold.
   */
  private async settleDrift(entry: Entry & { drifted: DriftedChange }): Promise<Entry | undefined> {
    const d = entry.drifted;
    try {
      const row = await this.toast.legacy.currentRow(d.change.table, d.change.key);
      if (row !== null) {
        const r = this.reader.retry(d, row);
        return r.kind === 'drift' ? undefined : this.entry(entry.raw, r);
      }
      const any = await this.toast.legacy.currentRow(d.change.table, null);
      if (any !== null && this.reader.retry(d, any).kind === 'drift') return undefined;
      return { offset: entry.offset, raw: entry.raw };
    } catch (e) {
      this.o.logger.warn(
        { err: e instanceof Error ? e.message : String(e), table: d.change.table },
        'could not read the legacy table to check its schema drift; holding',
      );
      return undefined;
    }
  }

  /**
   * The batch as the apply transaction sees it: each pending change completed (see toast-images.ts) and
   * transformed, or left without a unit when it is stale or its row is gone from legacy.
   */
  private completed(entry: Entry, values: JsonRow | 'skip' | undefined): Entry {
    const pending = entry.change?.pending;
    if (!pending) return entry;
    if (values === undefined || values === 'skip') return entry;
    const r = this.reader.complete(pending, values);
    if (r.kind === 'drift') {
      // Rare (an unchanged TOASTed value's row, completed inside the transaction, that drifted): the partition
      // cannot be held from here, so the change is dead-lettered (replayable) and V2 is left as it is.
      const { drifted } = r;
      const dead = {
        code: SCHEMA_DRIFT,
        message: drifted.message,
        stage: 'sink',
        transform: drifted.module.name,
      };
      return { ...entry, dead: { ...dead, table: drifted.change.table } };
    }
    if (r.kind !== 'unit') return entry;
    return { ...entry, unit: replayed(entry.raw, r.unit), ...(r.dead ? { dead: r.dead } : {}) };
  }

  /** Each applied change's hops, from its legacy commit time and its Kafka CreateTime (set when produced). */
  private observeHops(entries: readonly Entry[], startedAt: number, appliedAt: number): void {
    for (const e of entries) {
      const ts = e.unit?.source.commitTs;
      if (!ts || e.unit?.source.snapshot) continue;
      const committed = Date.parse(ts);
      const produced = Number(e.raw.timestamp);
      this.o.onHops?.({
        capture: Math.max(0, produced - committed) / 1000,
        queue: Math.max(0, startedAt - produced) / 1000,
        apply: Math.max(0, appliedAt - startedAt) / 1000,
      });
    }
  }

  /**
   * A pooled connection with an error listener while it is checked out: pg's pool listens only to idle clients,
   * and a server-side termination (57P01, a restart, a failover) would otherwise be an unhandled 'error' event that
   * ends the process. The query in flight fails too; the batch is then retried on a fresh connection.
   */
  private async checkout(pool: pg.Pool): Promise<pg.PoolClient> {
    const client = await pool.connect();
    const onError = (e: Error) => this.o.logger.warn({ err: e.message }, 'target connection lost');
    client.on('error', onError);
    const release = client.release.bind(client);
    client.release = (err?: Error | boolean) => {
      client.removeListener('error', onError);
      return release(err);
    };
    return client;
  }

  /** The sink's connections work again after a transient failure (metrics). */
  private reconnected(): void {
    this.recovering = false;
    this.o.onReconnect?.();
  }

  /**
   * Retries transient failures (target or Kafka unreachable) with backoff until they pass or the sink stops. Each
   * attempt runs on a new connection (a failed batch's is discarded): one that passes after failures is a reconnect.
   */
  private async retrying<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    let backoff = 200;
    let failed = false;
    for (;;) {
      try {
        const result = await fn();
        if (failed && !signal.aborted) this.reconnected();
        return result;
      } catch (e) {
        if (!isTransient(e) || signal.aborted) throw e;
        failed = true;
        this.o.onRetry?.(e);
        this.o.logger.warn(
          { err: e instanceof Error ? e.message : String(e), retryInMs: backoff },
          'sink retrying',
        );
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  /**
   * Recomputes a committed batch's derived rows (see derived-rows.ts) and records its newest applied position, in
   * one short transaction. Two of them may collide on a user (a deadlock, or a user deleted while another batch
   * just referenced it): that is run again here; a crash leaves the keys queued for the next sweep.
   */
  private async settle(client: pg.ClientBase, applier: UnitApplier, work: Settlement): Promise<void> {
    const { groupId } = this.o;
    const { keys, ids, newestTs, newestLsn } = work;
    const recordApplied =
      newestTs || newestLsn !== undefined
        ? async () => {
            await client.query(
              `INSERT INTO replicator.applied (group_id, commit_ts, commit_lsn) VALUES ($1, $2, $3)
               ON CONFLICT (group_id) DO UPDATE SET commit_ts = greatest(replicator.applied.commit_ts, EXCLUDED.commit_ts),
                 commit_lsn = greatest(replicator.applied.commit_lsn, EXCLUDED.commit_lsn), updated_at = now()`,
              [groupId, newestTs ?? null, newestLsn === undefined ? null : formatLsn(newestLsn)],
            );
          }
        : undefined;
    if (keys.length === 0 && !recordApplied) return;
    for (let attempt = 0; ; attempt++) {
      try {
        await applier.settle(client, keys, ids, recordApplied);
        break;
      } catch (e) {
        const code = (e as { code?: string }).code;
        // 40P01 deadlock, 40001 serialization, 23503 a user deleted under a booking just committed: run it again.
        if (!(code === '40P01' || code === '40001' || code === '23503') || attempt >= 20) throw e;
        await sleep(5 * (attempt + 1));
      }
    }
    if (newestTs) this.o.onApplied?.(newestTs);
  }

  /** Recomputes whatever was queued and not settled (a crash, or a failure, between the two commits). */
  private async sweepDerived(client: pg.ClientBase, applier: UnitApplier): Promise<void> {
    for (;;) {
      const { rows } = await client.query<{ id: string; key: string }>(
        'SELECT id::text, key FROM replicator.pending_derived ORDER BY id LIMIT 1000',
      );
      if (rows.length === 0) return;
      this.o.logger.info({ keys: rows.length }, 'recomputing derived rows left queued');
      await this.settle(client, applier, {
        keys: rows.map((r) => r.key),
        ids: rows.map((r) => r.id),
        newestTs: undefined,
        newestLsn: undefined,
      });
    }
  }

  /** Applies one partition batch; false when every message in it was already applied (nothing committed). */
  private async applyBatch(
    pool: pg.Pool,
    applier: UnitApplier,
    settler: Settler,
    dlq: Producer,
    topic: string,
    partition: number,
    entries: Entry[],
  ): Promise<boolean> {
    // Dead letters go out before the transaction that passes their offsets commits: a crash in between sends
    // them again on replay, and `dlq list` counts a letter once per origin (topic, partition, offset, code).
    const send = async (letters: DeadLetterInfo[], of: Map<DeadLetterInfo, Entry | undefined>) => {
      if (letters.length === 0) return;
      await dlq.send({
        topic: this.o.dlqTopic,
        acks: -1,
        messages: letters.map((d) => ({
          key: of.get(d)?.raw.key ?? null,
          value: of.get(d)?.raw.value ?? null,
          headers: deadLetterHeaders(d),
        })),
      });
    };
    const report = (letters: DeadLetterInfo[]) => {
      for (const d of letters) {
        this.deadLetters++;
        this.o.onDeadLetter?.(d.code);
        this.o.logger.warn(
          { code: d.code, stage: d.stage, table: d.table, topic, partition, offset: d.sourceOffset },
          `dead-lettered: ${d.message}`,
        );
      }
    };
    // Which columns of the batch's tables can be TOASTed (legacy catalog, cached): before any target lock.
    await this.toast.prepare(entries.flatMap((e) => (e.change ? [e.change.table] : [])));
    const client = await this.checkout(pool);
    let letters: DeadLetterInfo[] = [];
    const beforeCommit = async (l: DeadLetterInfo[], of: Map<DeadLetterInfo, Entry | undefined>) => {
      letters = l;
      await send(l, of);
    };
    let committed: Settlement | undefined;
    let work: Settlement | undefined;
    try {
      const referenced = entries.flatMap((e) => (e.unit ? emailsOf(e.unit.ops) : []));
      const newest = entries.reduce<string | undefined>(
        (m, e) =>
          e.unit?.source.commitTs && (!m || e.unit.source.commitTs > m) ? e.unit.source.commitTs : m,
        undefined,
      );
      let reserved: string[] = [];
      try {
        reserved = await applier.reserve(client, referenced, newest ?? new Date().toISOString());
      } catch (e) {
        // Queued keys whose placeholders may be committed: the settler's next sweep recomputes them.
        settler.markUnsettled();
        throw e;
      }
      try {
        committed = await this.transaction(
          client,
          applier,
          topic,
          partition,
          entries,
          undefined,
          beforeCommit,
        );
      } catch (e) {
        if (!isRowError(e)) throw e;
        // Isolate the bad rows: the same batch again, one savepoint per unit; rejects go to the DLQ.
        const rejected: { entry: Entry; error: Error & { code: string } }[] = [];
        committed = await this.transaction(
          client,
          applier,
          topic,
          partition,
          entries,
          rejected,
          beforeCommit,
        );
      }
      work =
        committed || reserved.length > 0
          ? {
              keys: [...referenced, ...(committed?.keys ?? [])],
              ids: [...reserved, ...(committed?.ids ?? [])],
              newestTs: committed?.newestTs,
              newestLsn: committed?.newestLsn,
            }
          : undefined;
    } catch (e) {
      // Never hand a connection that failed mid-batch back to the pool: a new one costs little. What this attempt
      // reserved or queued stays queued: the settler sweeps it.
      settler.markUnsettled();
      client.release(true);
      throw e;
    }
    client.release();
    report(letters);
    // The batch is applied; its users are recomputed by the settler while the partition goes on.
    if (work) await settler.submit(work);
    return committed !== undefined;
  }

  /**
   * The dead letter of changes Kafka deleted (its retention) before this group applied them: the batch starts past
   * the offset the group stored for the partition, and the partition's log now starts past it too. A consumer
   * whose position fell out of range restarts at the log's start and would go on as if nothing were missing. The
   * source's producer is idempotent and not transactional, so a partition's offsets have no gaps otherwise; the
   * log's start is read only on a gap.
   */
  private async lostBefore(
    topic: string,
    partition: number,
    stored: bigint,
    first: bigint,
  ): Promise<DeadLetterInfo | undefined> {
    // Heartbeats carry no rows: a gap there loses nothing.
    if (first <= stored || topic === this.o.heartbeatTopic) return undefined;
    if (stored >= (await this.logStart(topic, partition))) return undefined;
    return {
      code: CHANGES_LOST,
      message: `Kafka deleted offsets ${stored}–${first - 1n} of ${topic}/${partition} (retention) before the sink applied them: their changes are not in V2; \`replicator verify --repair\` re-emits the legacy rows that differ`,
      stage: 'sink',
      transform: '-',
      sourceTopic: topic,
      sourcePartition: partition,
      sourceOffset: String(stored),
    };
  }

  /** The partition's first offset (Kafka's low watermark, which a fetch does not report). */
  private async logStart(topic: string, partition: number): Promise<bigint> {
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const p = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition);
      return BigInt(p?.low ?? '0');
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  /**
   * One batch in one transaction. With `rejected`, each unit runs under a savepoint and a row error is recorded
   * instead of aborting; `beforeCommit` gets the batch's dead letters (transform rejections and target rejects) and
   * runs before the offsets commit with the rows. False when nothing in the batch was new.
   */
  private async transaction(
    client: pg.PoolClient,
    applier: UnitApplier,
    topic: string,
    partition: number,
    entries: Entry[],
    rejected: { entry: Entry; error: Error & { code: string } }[] | undefined,
    beforeCommit: (letters: DeadLetterInfo[], of: Map<DeadLetterInfo, Entry | undefined>) => Promise<void>,
  ): Promise<Settlement | undefined> {
    const { groupId } = this.o;
    await client.query('BEGIN');
    try {
      // A partition new to the group starts where its log starts, as a Kafka group without an offset does. Its
      // row is created, or locked and read, in one statement (a round trip costs the batch a wake-up of both
      // processes). The row lock also serializes two instances that briefly both hold this partition during a
      // rebalance.
      const partitionRow = [groupId, topic, partition];
      let row = (
        await client.query<{ n: string; known: boolean }>(
          `WITH created AS (INSERT INTO replicator.sink_offsets (group_id, topic, partition, next_offset)
                            VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING RETURNING next_offset),
                existing AS (SELECT next_offset FROM replicator.sink_offsets
                              WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE)
           SELECT next_offset::text AS n, false AS known FROM created
           UNION ALL SELECT next_offset::text, true FROM existing`,
          partitionRow,
        )
      ).rows[0];
      // Neither: another instance created the row after this statement's snapshot. It is committed now.
      row ??= (
        await client.query<{ n: string; known: boolean }>(
          'SELECT next_offset::text AS n, true AS known FROM replicator.sink_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE',
          partitionRow,
        )
      ).rows[0]!;
      const known = row.known;
      const stored = BigInt(row.n);
      let candidates = entries.filter((e) => BigInt(e.offset) >= stored);
      if (candidates.length === 0) {
        // Applied already (a replay after a restart or a rebalance) unless the partition's log ended before the
        // stored offset when it was fetched: the topic was recreated, or truncated by an unclean leader election,
        // and that offset belongs to a log that is gone. Then this log applies from here; the lineage skips what V2
        // already holds.
        const logEnd = entries.reduce(
          (m, e) => (e.logEnd && BigInt(e.logEnd) > m ? BigInt(e.logEnd) : m),
          0n,
        );
        if (logEnd >= stored) {
          await client.query('ROLLBACK');
          return undefined;
        }
        this.o.logger.error(
          { topic, partition, stored: String(stored), from: entries[0]!.offset },
          'the partition ends before the offset the sink stored (topic recreated or truncated): applying it from here; changes only the old log held are not in V2 — run `replicator verify`',
        );
        candidates = entries;
      }
      const lost = known
        ? await this.lostBefore(topic, partition, stored, BigInt(candidates[0]!.offset))
        : undefined;
      // The lineage of every changed row, locked (in key order) before its image is read: with the partition's
      // offset row above, no other transaction touches these rows' images until this one ends.
      const lineage = await applier.prepare(
        client,
        candidates.flatMap((e) => (e.change ? [{ source: e.change }] : [])),
      );
      const toast = await this.toast.resolve(client, candidates.map(toastStep), lineage);
      const fresh = candidates.map((e, i) => this.completed(e, toast.completions.get(i)));
      // A replayed letter whose row has moved on (its lineage is past it): superseded, not dead-lettered again.
      const superseded = new Set(
        fresh.filter((e) => {
          if (!e.unit?.source.replay) return false;
          const recorded = lineage.get(lineageKey(e.unit.source.table, e.unit.source.key));
          return recorded !== undefined && isNewer(recorded, positionOf(e.unit));
        }),
      );
      for (const [table, rows] of toast.refetched) {
        this.o.onToastRefetch?.(table, rows);
        this.o.logger.info(
          { table, rows },
          'unchanged TOASTed values without an image: re-read from the legacy rows',
        );
      }
      const units = fresh.flatMap((e) => (e.unit ? [e.unit] : []));
      const recompute = new Set<string>();
      let newestTs: string | undefined;
      let newestLsn: bigint | undefined;
      const fastPath = !rejected && !units.some((u) => u.truncate);
      for (const entry of fresh) {
        const ts = entry.unit?.source.commitTs ?? entry.heartbeatTs;
        if (ts && (!newestTs || ts > newestTs)) newestTs = ts;
      }
      if (fastPath) {
        const outcome = await applyBatch(client, this.o.model, applier.columnTypes, units, lineage);
        for (const e of outcome.emails) recompute.add(e);
        this.applied += units.length;
      }
      for (const entry of fresh) {
        // Stream positions only: snapshot reads (and verify's repairs) carry a position that is not the stream's.
        const lsn = entry.unit
          ? entry.unit.source.snapshot
            ? undefined
            : entry.unit.source.commitLsn
          : entry.heartbeatLsn;
        if (lsn) {
          const l = parseLsn(lsn);
          if (newestLsn === undefined || l > newestLsn) newestLsn = l;
        }
        // Heartbeats, dead letters without a unit, tombstones and tables without a module: only their offset.
        if (!entry.unit) continue;
        if (fastPath) continue;
        if (!rejected) {
          for (const e of await applier.apply(client, entry.unit, lineage)) recompute.add(e);
          this.applied++;
          continue;
        }
        await client.query('SAVEPOINT unit');
        try {
          for (const e of await applier.apply(client, entry.unit, lineage)) recompute.add(e);
          await client.query('RELEASE SAVEPOINT unit');
          this.applied++;
        } catch (e) {
          if (!isRowError(e)) throw e;
          await client.query('ROLLBACK TO SAVEPOINT unit');
          // The lineage cache may hold what the failed unit wrote: read it again from the database.
          for (const [k, v] of await applier.prepare(client, [entry.unit])) lineage.set(k, v);
          rejected.push({ entry, error: e });
        }
      }
      await this.toast.write(client, toast.writes);
      const derived = [...recompute].sort();
      const last = fresh[fresh.length - 1]!;
      const pendingIds = await applier.queueRecompute(client, derived, {
        sql: 'UPDATE replicator.sink_offsets SET next_offset = $4, updated_at = now() WHERE group_id = $1 AND topic = $2 AND partition = $3',
        values: [...partitionRow, (BigInt(last.offset) + 1n).toString()],
      });
      const of = new Map<DeadLetterInfo, Entry | undefined>();
      if (lost) of.set(lost, undefined);
      const at = (entry: Entry) => ({
        sourceTopic: topic,
        sourcePartition: partition,
        sourceOffset: entry.offset,
      });
      for (const entry of fresh)
        if (entry.dead && !superseded.has(entry)) of.set({ ...entry.dead, ...at(entry) }, entry);
      for (const { entry, error } of rejected ?? []) {
        const table = entry.unit?.source.table;
        of.set(
          {
            code: error.code,
            message: error.message,
            stage: 'sink',
            transform: '-',
            ...(table ? { table } : {}),
            ...at(entry),
          },
          entry,
        );
      }
      await beforeCommit([...of.keys()], of);
      if (this.o.holdBeforeCommitMs) await sleep(this.o.holdBeforeCommitMs);
      await client.query('COMMIT');
      candidates.forEach((entry, i) => {
        const unit = fresh[i]!.unit;
        if (!entry.change?.pending || !unit) return;
        // Completed and applied: from now on it is an ordinary entry (metrics, hops).
        entry.unit = unit;
        this.o.onUnit?.(unit.source.table);
      });
      return { keys: derived, ids: pendingIds, newestTs, newestLsn };
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    }
  }
}

/** What the image store needs of a change. */
function rowChange(
  source: { table: string; key: JsonRow; commitLsn: string; seq: number },
  after: JsonRow | null,
  pending?: RowChange['pending'],
): RowChange {
  return {
    table: source.table,
    key: source.key,
    position: { commitLsn: parseLsn(source.commitLsn), seq: source.seq },
    after,
    ...(pending ? { pending } : {}),
  };
}

function toastStep(entry: Entry): ToastStep {
  if (entry.change) return { change: entry.change };
  const unit = entry.unit;
  if (unit?.truncate) {
    return {
      truncate: {
        table: unit.source.table,
        position: { commitLsn: parseLsn(unit.source.commitLsn), seq: unit.source.seq },
      },
    };
  }
  return undefined;
}

/** A change re-published by `dlq replay` (REPLAYED_FROM_HEADER): its unit may apply at its row's recorded position. */
function replayed(m: KafkaMessage, unit: V2Unit): V2Unit {
  return m.headers?.[REPLAYED_FROM_HEADER] === undefined
    ? unit
    : { ...unit, source: { ...unit.source, replay: true } };
}
