import { type IHeaders, type Kafka, type Message, Partitioners } from 'kafkajs';
import { type FenceMarker, isFenceMarker } from '../../src/contracts/fence.js';
import { changeTopic, dlqTopic, heartbeatPrefix, v2Topic } from '../../src/contracts/topics.js';
import {
  type JsonRow,
  type LegacyChange,
  type TransformModule,
  TransformRejection,
  type TransformResult,
} from '../../src/contracts/transform-api.js';
import { unitKey, type V2Unit } from '../../src/contracts/v2-unit.js';
import { ensureTopics } from '../../src/core/kafka-topics.js';
import type { Logger } from '../../src/core/logger.js';
import type { ReplicatorConfig } from '../../src/pipeline/config/load-config.js';

export interface TransformStageOptions {
  config: Pick<ReplicatorConfig, 'source' | 'kafka' | 'transform'>;
  kafka: Kafka;
  modules: readonly TransformModule[];
  logger: Logger;
  /** Called for every dead-lettered event (metrics). */
  onDeadLetter?: (reason: string, transform: string) => void;
  /** Called for every unit produced (metrics). */
  onUnit?: (table: string) => void;
  /** Decodes a Confluent-framed (Avro) value; without it, values are JSON. */
  decodeValue?: (value: Buffer) => Promise<unknown>;
}

/** Why the stage itself (not a transform) dead-letters an event. */
export const StageReasons = {
  MALFORMED_EVENT: 'MALFORMED_EVENT',
  UNCHANGED_TOAST: 'UNCHANGED_TOAST',
  TRANSFORM_THREW: 'TRANSFORM_THREW',
} as const;

interface RawEnvelope {
  before: JsonRow | null;
  after: JsonRow | null;
  op: 'c' | 'u' | 'd' | 'r' | 't';
  source: {
    schema: string;
    table: string;
    commitLsn: string;
    seq: number;
    txId: number | null;
    commitTs: string | null;
    snapshot: boolean;
    unchangedToast?: string[];
  };
}

type Output = { topic: string; message: Message };

/** Bytes per produce call inside a transaction (each partition's record batch must stay under 1 MiB). */
const MAX_SEND_BYTES = 512 * 1024;

/**
 * The transform stage: consumes the raw change topics and, per partition batch, produces the V2 units, dead
 * letters and forwarded heartbeats and commits the consumed offsets in ONE Kafka transaction — so raw → V2 is
 * exactly-once for read_committed consumers, through crashes. One bad row goes to the DLQ; the partition goes on.
 */
export class TransformStage {
  private readonly byTable = new Map<string, TransformModule>();
  private units = 0;
  private deadLetters = 0;
  /** Partition counts of the V2 unit topics (fence markers go to each partition). */
  private v2Partitions = new Map<string, number>();

  constructor(private readonly o: TransformStageOptions) {
    for (const m of o.modules) for (const t of m.tables) this.byTable.set(t, m);
  }

  progress() {
    return { units: this.units, deadLetters: this.deadLetters };
  }

  async run(signal: AbortSignal): Promise<void> {
    const { kafka, transform, source } = this.o.config;
    const log = this.o.logger;
    const rawTopics = source.tables.map((t) => changeTopic(kafka.topicPrefix, t.schema, t.table));
    const rawHeartbeat = heartbeatPrefix(kafka.topicPrefix);
    const v2Entities = new Set<string>();
    for (const m of this.o.modules) for (const t of m.tables) v2Entities.add(m.topicFor(t));
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const counts = await ensureTopics(admin, [
        ...rawTopics.map((topic) => ({
          topic,
          partitions: kafka.partitions,
          replicationFactor: kafka.replicationFactor,
        })),
        { topic: rawHeartbeat, partitions: 1, replicationFactor: kafka.replicationFactor },
        ...[...v2Entities].map((e) => ({
          topic: v2Topic(transform.topicPrefix, e),
          partitions: kafka.partitions,
          replicationFactor: kafka.replicationFactor,
        })),
        {
          topic: v2Topic(transform.topicPrefix, 'heartbeat'),
          partitions: 1,
          replicationFactor: kafka.replicationFactor,
        },
        { topic: dlqTopic(kafka.topicPrefix), partitions: 1, replicationFactor: kafka.replicationFactor },
      ]);
      for (const e of v2Entities) {
        const topic = v2Topic(transform.topicPrefix, e);
        this.v2Partitions.set(topic, counts.get(topic) ?? kafka.partitions);
      }
    } finally {
      await admin.disconnect();
    }

    // One transaction at a time, one partition batch each: with kafkajs's partitionsConsumedConcurrently > 1 (a
    // producer per slot), the kill -9 test saw duplicates for read_committed readers, so it stays sequential.
    // The id is stable per instance, so a restarted instance fences its zombie's open transaction.
    const producer = this.o.kafka.producer({
      transactionalId: `${transform.groupId}-${transform.instanceId}`,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const consumer = this.o.kafka.consumer({
      groupId: transform.groupId,
      readUncommitted: false,
      sessionTimeout: transform.sessionTimeoutMs,
      heartbeatInterval: Math.floor(transform.sessionTimeoutMs / 5),
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    await consumer.connect();
    const crashed = new Promise<never>((_, reject) => {
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) reject(payload.error);
      });
    });
    crashed.catch(() => {});
    try {
      await consumer.subscribe({ topics: [...rawTopics, rawHeartbeat], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          if (batch.messages.length === 0) return;
          const outputs: Output[] = [];
          for (const m of batch.messages) {
            const decoded = await this.decode(m.value);
            outputs.push(
              ...this.process(batch.topic, batch.partition, m.offset, m.key, m.value, decoded, rawHeartbeat),
            );
          }
          const tx = await producer.transaction();
          try {
            for (const chunk of chunks(outputs)) await tx.sendBatch({ topicMessages: chunk, acks: -1 });
            await tx.sendOffsets({
              consumerGroupId: transform.groupId,
              topics: [
                {
                  topic: batch.topic,
                  partitions: [
                    { partition: batch.partition, offset: String(BigInt(batch.lastOffset()) + 1n) },
                  ],
                },
              ],
            });
            await tx.commit();
          } catch (e) {
            await tx.abort().catch(() => {});
            throw e;
          }
        },
      });
      log.info({ groupId: transform.groupId, topics: rawTopics }, 'transform stage consuming');
      await Promise.race([
        crashed,
        new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
        }),
      ]);
    } finally {
      // A stop between batches: the current batch's transaction either committed or will be aborted by the broker.
      await consumer.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
    }
  }

  /** JSON, or Avro in Confluent framing (magic byte 0) when a decoder is configured; errors are kept for the DLQ. */
  private async decode(value: Buffer | null): Promise<unknown> {
    if (value === null) return null;
    try {
      if (value[0] === 0 && this.o.decodeValue) return await this.o.decodeValue(value);
      return JSON.parse(value.toString('utf8'));
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  /** The outputs for one raw message (decoded: a parsed value, or the Error that decoding raised). */
  process(
    topic: string,
    partition: number,
    offset: string,
    key: Buffer | null,
    value: Buffer | null,
    decoded: unknown,
    rawHeartbeat: string,
  ): Output[] {
    const { transform } = this.o.config;
    if (value === null) return [];
    if (topic === rawHeartbeat) {
      return [{ topic: v2Topic(transform.topicPrefix, 'heartbeat'), message: { key, value } }];
    }
    const dead = (reason: string, message: string, module = '-'): Output[] => {
      this.deadLetters++;
      this.o.onDeadLetter?.(reason, module);
      const headers: IHeaders = {
        'error.code': reason,
        'error.message': message,
        stage: 'transform',
        transform: module,
        'source.topic': topic,
        'source.partition': String(partition),
        'source.offset': offset,
      };
      return [{ topic: dlqTopic(this.o.config.kafka.topicPrefix), message: { key, value, headers } }];
    };
    if (isFenceMarker(decoded)) {
      // Forward to every partition of every V2 topic, saying where it came from: the sink's drain is complete
      // when each V2 partition has seen the marker from each raw partition.
      const copy: FenceMarker = { ...decoded, origin: { topic, partition } };
      const value = JSON.stringify(copy);
      const out: Output[] = [];
      for (const [v2, n] of this.v2Partitions) {
        for (let p = 0; p < n; p++) out.push({ topic: v2, message: { key: null, value, partition: p } });
      }
      return out;
    }
    let event: RawEnvelope;
    let rowKey: JsonRow;
    try {
      if (decoded instanceof Error) throw decoded;
      event = decoded as RawEnvelope;
      rowKey = key ? (JSON.parse(key.toString('utf8')) as JsonRow) : {};
      if (!event.source || typeof event.source.table !== 'string') throw new Error('no source block');
    } catch (e) {
      return dead(
        StageReasons.MALFORMED_EVENT,
        `not a change event: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    const table = `${event.source.schema}.${event.source.table}`;
    const module = this.byTable.get(table);
    if (!module) return [];
    const unitTopic = v2Topic(transform.topicPrefix, module.topicFor(table));
    const sourceBlock = {
      table,
      key: rowKey,
      op: event.op,
      commitLsn: event.source.commitLsn,
      seq: event.source.seq,
      txId: event.source.txId,
      commitTs: event.source.commitTs,
      snapshot: event.source.snapshot,
    };
    if (event.op === 't') {
      const unit: V2Unit = { v: 1, kind: 'change', source: sourceBlock, ops: [], truncate: true };
      return [this.unitOutput(unitTopic, table, {}, unit)];
    }
    if (event.source.unchangedToast?.length) {
      // The new row is incomplete; writing it would lose those columns. Keep V2 as it is and say why.
      return dead(
        StageReasons.UNCHANGED_TOAST,
        `columns ${event.source.unchangedToast.join(', ')} were unchanged TOAST values not sent by PostgreSQL; set REPLICA IDENTITY FULL on ${table}`,
        module.name,
      );
    }
    const change: LegacyChange = {
      op: event.op,
      table,
      key: rowKey,
      before: event.before,
      after: event.after,
    };
    let result: TransformResult;
    try {
      result = module.transform(change);
    } catch (e) {
      // A transform must not throw; if one does, it is a bug in that module, and the row is dead-lettered.
      const why = e instanceof Error ? e.message : String(e);
      result = { ok: false, rejection: new TransformRejection(StageReasons.TRANSFORM_THREW, why) };
    }
    if (!result.ok) {
      // An invalid row counts as absent in V2: an empty unit removes what it produced before.
      const unit: V2Unit = { v: 1, kind: 'change', source: sourceBlock, ops: [] };
      return [
        this.unitOutput(unitTopic, table, rowKey, unit),
        ...dead(result.rejection.reason, result.rejection.message, module.name),
      ];
    }
    return [
      this.unitOutput(unitTopic, table, rowKey, {
        v: 1,
        kind: 'change',
        source: sourceBlock,
        ops: result.ops,
      }),
    ];
  }

  private unitOutput(topic: string, table: string, key: JsonRow, unit: V2Unit): Output {
    this.units++;
    this.o.onUnit?.(table);
    return { topic, message: { key: unitKey(table, key), value: JSON.stringify(unit) } };
  }
}

function* chunks(outputs: Output[]) {
  let byTopic = new Map<string, Message[]>();
  let bytes = 0;
  for (const o of outputs) {
    const size = (o.message.value?.length ?? 0) + (o.message.key?.length ?? 0) + 64;
    if (bytes > 0 && bytes + size > MAX_SEND_BYTES) {
      yield [...byTopic].map(([topic, messages]) => ({ topic, messages }));
      byTopic = new Map();
      bytes = 0;
    }
    let list = byTopic.get(o.topic);
    if (!list) {
      list = [];
      byTopic.set(o.topic, list);
    }
    list.push(o.message);
    bytes += size;
  }
  if (bytes > 0) yield [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}
