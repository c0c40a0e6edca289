import { type Kafka, type KafkaMessage, Partitioners, type Producer } from 'kafkajs';
import pg from 'pg';
import { type FenceMarker, isFenceMarker } from '../../src/contracts/fence.js';
import { dlqTopic, v2Topic } from '../../src/contracts/topics.js';
import type { TransformModule } from '../../src/contracts/transform-api.js';
import type { V2Unit } from '../../src/contracts/v2-unit.js';
import { ErrorCodes, isTransient, ReplicatorError } from '../../src/core/errors.js';
import { ensureTopics } from '../../src/core/kafka-topics.js';
import type { Logger } from '../../src/core/logger.js';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { textTypes } from '../../src/core/pg-text-types.js';
import { describePgUrl } from '../../src/core/redact.js';
import type { ReplicatorConfig } from '../../src/pipeline/config/load-config.js';
import { applyBatch } from './batch-applier.js';
import { ensureReplicatorSchema } from './target-schema.js';
import { readColumnTypes, UnitApplier } from './unit-applier.js';

export interface PostgresSinkOptions {
  config: Pick<ReplicatorConfig, 'kafka' | 'transform' | 'target' | 'sink'>;
  kafka: Kafka;
  modules: readonly TransformModule[];
  logger: Logger;
  onBatch?: (seconds: number, units: number) => void;
  onDeadLetter?: (reason: string) => void;
  /** Newest source commit time applied (units and heartbeats), for lag. */
  onApplied?: (commitTs: string) => void;
}

interface Entry {
  offset: string;
  unit?: V2Unit;
  heartbeatTs?: string;
  /** The heartbeat's WAL position (the newest applied source position, for verify). */
  heartbeatLsn?: string;
  marker?: FenceMarker;
  raw: KafkaMessage;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Errors that say this row is bad (data exception, integrity violation), as opposed to the target being unwell. */
function isRowError(e: unknown): e is Error & { code: string } {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/**
 * The sink: applies V2 units to the target exactly once. Each partition batch is one target transaction that also
 * advances that partition's offset in replicator.sink_offsets — the offsets Kafka holds are informative only. A
 * batch is applied completely or not at all; a row the target rejects is isolated (the batch is replayed row by
 * row with savepoints) and dead-lettered with the database's error; an unreachable target is retried with backoff,
 * nothing skipped and no offset advanced.
 */
export class PostgresSink {
  private applied = 0;
  private deadLetters = 0;

  constructor(private readonly o: PostgresSinkOptions) {}

  progress() {
    return { applied: this.applied, deadLetters: this.deadLetters };
  }

  async run(signal: AbortSignal): Promise<void> {
    const { target, sink, transform } = this.o.config;
    if (!target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'the sink needs target.url');
    const log = this.o.logger;
    const pool = new pg.Pool({
      connectionString: target.url,
      max: sink.concurrency + 1,
      types: textTypes,
      options: '-c TimeZone=UTC -c DateStyle=ISO,YMD',
    });
    pool.on('error', (e) => log.warn({ err: e.message }, 'idle target connection failed'));
    const entities = new Set<string>();
    for (const m of this.o.modules) for (const t of m.tables) entities.add(m.topicFor(t));
    const topics = [
      ...[...entities].map((e) => v2Topic(transform.topicPrefix, e)),
      v2Topic(transform.topicPrefix, 'heartbeat'),
    ];

    const setup = await this.retrying(signal, () => pool.connect());
    let applier: UnitApplier;
    try {
      await ensureReplicatorSchema(setup);
      applier = new UnitApplier(await readColumnTypes(setup));
    } finally {
      setup.release();
    }
    log.info({ target: describePgUrl(target.url), topics }, 'sink starting');

    // The sink may start before the transform stage has created the V2 topics.
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [
        ...topics.map((topic) => ({
          topic,
          partitions: topic.endsWith('.heartbeat') ? 1 : this.o.config.kafka.partitions,
          replicationFactor: this.o.config.kafka.replicationFactor,
        })),
        {
          topic: dlqTopic(this.o.config.kafka.topicPrefix),
          partitions: 1,
          replicationFactor: this.o.config.kafka.replicationFactor,
        },
      ]);
    } finally {
      await admin.disconnect();
    }
    const dlq = this.o.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const consumer = this.o.kafka.consumer({
      groupId: sink.groupId,
      readUncommitted: false,
      sessionTimeout: sink.sessionTimeoutMs,
      heartbeatInterval: Math.floor(sink.sessionTimeoutMs / 5),
      allowAutoTopicCreation: false,
    });
    await dlq.connect();
    await consumer.connect();
    const crashed = new Promise<never>((_, reject) => {
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) reject(payload.error);
      });
    });
    crashed.catch(() => {});
    // On each assignment, resume from the offsets stored in the target, not Kafka's.
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      void (async () => {
        const assigned = Object.entries(payload.memberAssignment);
        const { rows } = await pool.query<{ topic: string; partition: number; next_offset: string }>(
          'SELECT topic, partition, next_offset::text FROM replicator.sink_offsets WHERE group_id = $1 AND topic = ANY($2)',
          [sink.groupId, assigned.map(([t]) => t)],
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
    try {
      await consumer.subscribe({ topics, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: sink.concurrency,
        eachBatch: async ({ batch, isRunning, isStale }) => {
          if (batch.messages.length === 0) return;
          const entries: Entry[] = batch.messages.map((m) => this.parse(m));
          const started = process.hrtime.bigint();
          await this.retrying(signal, async () => {
            if (!isRunning() || isStale()) return;
            await this.applyBatch(pool, applier, dlq, batch.topic, batch.partition, entries);
          });
          this.o.onBatch?.(Number(process.hrtime.bigint() - started) / 1e9, entries.length);
          // Informative only: the target's table is what a restart trusts.
          await consumer
            .commitOffsets([
              {
                topic: batch.topic,
                partition: batch.partition,
                offset: String(BigInt(batch.lastOffset()) + 1n),
              },
            ])
            .catch(() => {});
        },
      });
      let flipTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        crashed,
        new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
          // After a full cutover's flip, V2 belongs to the application: stop applying.
          flipTimer = setInterval(() => {
            pool
              .query("SELECT id FROM replicator.cutovers WHERE phase = 'flipped' AND shop IS NULL LIMIT 1")
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
      await consumer.disconnect().catch(() => {});
      await dlq.disconnect().catch(() => {});
      await pool.end().catch(() => {});
    }
  }

  private parse(m: KafkaMessage): Entry {
    const value = m.value?.toString('utf8');
    if (!value) return { offset: m.offset, raw: m };
    try {
      const parsed = JSON.parse(value) as V2Unit | { sentAt?: string; lsn?: string };
      if ('kind' in parsed && parsed.kind === 'change') return { offset: m.offset, unit: parsed, raw: m };
      if (isFenceMarker(parsed)) return { offset: m.offset, marker: parsed, raw: m };
      if ('sentAt' in parsed && typeof parsed.sentAt === 'string')
        return {
          offset: m.offset,
          heartbeatTs: parsed.sentAt,
          ...('lsn' in parsed && typeof parsed.lsn === 'string' ? { heartbeatLsn: parsed.lsn } : {}),
          raw: m,
        };
    } catch {
      // falls through: an unparseable message is dead-lettered by applyBatch
    }
    return { offset: m.offset, raw: m };
  }

  /** Retries transient failures (target or Kafka unreachable) with backoff until they pass or the sink stops. */
  private async retrying<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    let backoff = 200;
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (!isTransient(e) || signal.aborted) throw e;
        this.o.logger.warn(
          { err: e instanceof Error ? e.message : String(e), retryInMs: backoff },
          'sink retrying',
        );
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  private async applyBatch(
    pool: pg.Pool,
    applier: UnitApplier,
    dlq: Producer,
    topic: string,
    partition: number,
    entries: Entry[],
  ): Promise<void> {
    const client = await pool.connect();
    try {
      try {
        await this.transaction(client, applier, topic, partition, entries, undefined);
      } catch (e) {
        if (!isRowError(e)) throw e;
        // Isolate the bad rows: the same batch again, one savepoint per unit; rejects go to the DLQ.
        const rejected: { entry: Entry; error: Error & { code: string } }[] = [];
        await this.transaction(client, applier, topic, partition, entries, rejected, async () => {
          if (rejected.length === 0) return;
          await dlq.send({
            topic: dlqTopic(this.o.config.kafka.topicPrefix),
            acks: -1,
            messages: rejected.map(({ entry, error }) => ({
              key: entry.raw.key,
              value: entry.raw.value,
              headers: {
                'error.code': error.code,
                'error.message': error.message,
                stage: 'sink',
                transform: entry.unit?.source.table ?? '-',
                'source.topic': topic,
                'source.partition': String(partition),
                'source.offset': entry.offset,
              },
            })),
          });
        });
        for (const r of rejected) {
          this.deadLetters++;
          this.o.onDeadLetter?.(r.error.code);
          this.o.logger.warn(
            { code: r.error.code, topic, partition, offset: r.entry.offset },
            `row rejected by the target: ${r.error.message}`,
          );
        }
      }
    } catch (e) {
      client.release(isTransient(e));
      throw e;
    }
    client.release();
  }

  /**
   * One batch in one transaction. With `rejected`, each unit runs under a savepoint and a row error is recorded
   * instead of aborting; `beforeCommit` runs (the DLQ send) before the offsets commit with the rows.
   */
  private async transaction(
    client: pg.PoolClient,
    applier: UnitApplier,
    topic: string,
    partition: number,
    entries: Entry[],
    rejected: { entry: Entry; error: Error & { code: string } }[] | undefined,
    beforeCommit?: () => Promise<void>,
  ): Promise<void> {
    const { groupId } = this.o.config.sink;
    await client.query('BEGIN');
    try {
      await client.query(
        'INSERT INTO replicator.sink_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING',
        [groupId, topic, partition],
      );
      // The row lock also serializes two instances that briefly both hold this partition during a rebalance.
      const stored = BigInt(
        (
          await client.query<{ n: string }>(
            'SELECT next_offset::text AS n FROM replicator.sink_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE',
            [groupId, topic, partition],
          )
        ).rows[0]!.n,
      );
      const fresh = entries.filter((e) => BigInt(e.offset) >= stored);
      if (fresh.length === 0) {
        await client.query('ROLLBACK');
        return;
      }
      const units = fresh.flatMap((e) => (e.unit ? [e.unit] : []));
      const lineage = await applier.prepare(client, units);
      await applier.lock(client, applier.emailsToLock(units, lineage));
      const recompute = new Set<string>();
      let newestTs: string | undefined;
      let newestLsn: bigint | undefined;
      const fastPath = !rejected && !units.some((u) => u.truncate);
      for (const entry of fresh) {
        const ts = entry.unit?.source.commitTs ?? entry.heartbeatTs;
        if (ts && (!newestTs || ts > newestTs)) newestTs = ts;
      }
      if (fastPath) {
        const outcome = await applyBatch(client, applier.columnTypes, units, lineage);
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
        if (entry.marker?.origin) {
          // Everything before this marker on this partition is applied in this same transaction.
          await client.query(
            `INSERT INTO replicator.fence_markers (cutover_id, group_id, topic, partition, origin_topic, origin_partition)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
            [
              entry.marker.cutoverId,
              groupId,
              topic,
              partition,
              entry.marker.origin.topic,
              entry.marker.origin.partition,
            ],
          );
          continue;
        }
        if (!entry.unit) {
          if (entry.heartbeatTs === undefined && rejected) {
            rejected.push({
              entry,
              error: Object.assign(new Error('not a V2 unit'), { code: 'MALFORMED_UNIT' }),
            });
          } else if (entry.heartbeatTs === undefined) {
            throw Object.assign(new Error('not a V2 unit'), { code: '22000' });
          }
          continue;
        }
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
      await applier.recompute(client, [...recompute].sort());
      const last = fresh[fresh.length - 1]!;
      await client.query(
        'UPDATE replicator.sink_offsets SET next_offset = $4, updated_at = now() WHERE group_id = $1 AND topic = $2 AND partition = $3',
        [groupId, topic, partition, (BigInt(last.offset) + 1n).toString()],
      );
      if (newestTs || newestLsn !== undefined) {
        await client.query(
          `INSERT INTO replicator.applied (group_id, commit_ts, commit_lsn) VALUES ($1, $2, $3)
           ON CONFLICT (group_id) DO UPDATE SET commit_ts = greatest(replicator.applied.commit_ts, EXCLUDED.commit_ts),
             commit_lsn = greatest(replicator.applied.commit_lsn, EXCLUDED.commit_lsn), updated_at = now()`,
          [groupId, newestTs ?? null, newestLsn === undefined ? null : formatLsn(newestLsn)],
        );
      }
      await beforeCommit?.();
      await client.query('COMMIT');
      if (newestTs) this.o.onApplied?.(newestTs);
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e;
    }
  }
}
