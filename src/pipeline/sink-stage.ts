import type { Kafka } from 'kafkajs';
import { PostgresSink, type PostgresSinkOptions } from '../../connectors/postgres-sink/index.js';
import { decodeAvroValue } from '../../connectors/schema-registry-encoder/index.js';
import { transformModules } from '../../transforms/index.js';
import { v2Model } from '../../transforms/v2-model.js';
import { createKafka } from '../core/kafka-client.js';
import type { Logger } from '../core/logger.js';
import type { ReplicatorConfig } from './config/load-config.js';
import type { Metrics } from './observability/metrics.js';
import { schemaRegistryClient, sinkOptions } from './stage-options.js';

/** What the sink reports as it goes (into the process's metrics). */
export type SinkHooks = Pick<
  PostgresSinkOptions,
  | 'onUnit'
  | 'onHops'
  | 'onBatch'
  | 'onDeadLetter'
  | 'onToastRefetch'
  | 'onSchemaDrift'
  | 'onApplied'
  | 'onRetry'
  | 'onReconnect'
>;

/** The sink's hooks into `metrics`; `onApplied` may be given the moment it happened (a sink on its own thread). */
export function sinkHooks(metrics: Metrics, group: string): Required<SinkHooks> {
  return {
    onUnit: (table) => metrics.transformUnits.inc({ table }),
    onHops: (hops) => {
      metrics.stageLatencySeconds.observe({ stage: 'capture' }, hops.capture);
      metrics.stageLatencySeconds.observe({ stage: 'queue' }, hops.queue);
      metrics.stageLatencySeconds.observe({ stage: 'apply' }, hops.apply);
    },
    onBatch: (seconds, units) => {
      metrics.sinkBatchSeconds.observe(seconds);
      metrics.sinkMessages.inc(units);
    },
    onDeadLetter: (reason) => metrics.dlqMessages.inc({ stage: 'sink', reason }),
    onToastRefetch: (table, rows) => metrics.toastRefetch.inc({ table }, rows),
    onSchemaDrift: (table, held) => metrics.schemaDriftPartitions.set({ table }, held),
    onApplied: (commitTs: string, at?: number) => metrics.observeApplied(group, commitTs, at),
    onRetry: (error) => metrics.countRetry('sink', error),
    onReconnect: () => metrics.countReconnect('sink'),
  };
}

export interface SinkStageOptions {
  logger: Logger;
  /** Set while its consumer is in its group (readiness). */
  state: { connected: boolean };
  hooks: SinkHooks;
  holdApplyMs?: number;
  holdSettleMs?: number;
}

/** The sink stage of `config` (in this thread: a `--role sink` process, or the sink thread of `--role all`). */
export function buildSink(config: ReplicatorConfig, o: SinkStageOptions): PostgresSink {
  const registry = schemaRegistryClient(config);
  return new PostgresSink({
    ...sinkOptions(config, {
      modules: transformModules,
      model: v2Model,
      kafka: trackConsumers(createKafka(config.kafka, o.logger, `${config.kafka.clientId}-sink`), o.state),
      logger: o.logger,
    }),
    ...(registry ? { decodeValue: (buf: Buffer) => decodeAvroValue(registry, buf) } : {}),
    ...(o.holdApplyMs ? { holdBeforeCommitMs: o.holdApplyMs } : {}),
    ...(o.holdSettleMs ? { holdBeforeSettleMs: o.holdSettleMs } : {}),
    ...o.hooks,
  });
}

/**
 * A consumer stage counts as connected from the moment its consumer joins its group until it disconnects or
 * crashes. The stages create their consumers themselves, so the Kafka client they get reports that here.
 */
function trackConsumers(kafka: Kafka, state: { connected: boolean }): Kafka {
  return {
    producer: (cfg?: Parameters<Kafka['producer']>[0]) => kafka.producer(cfg),
    admin: (cfg?: Parameters<Kafka['admin']>[0]) => kafka.admin(cfg),
    logger: () => kafka.logger(),
    consumer: (cfg: Parameters<Kafka['consumer']>[0]) => {
      const consumer = kafka.consumer(cfg);
      consumer.on(consumer.events.GROUP_JOIN, () => {
        state.connected = true;
      });
      for (const event of [
        consumer.events.DISCONNECT,
        consumer.events.STOP,
        consumer.events.CRASH,
      ] as const) {
        consumer.on(event as typeof consumer.events.DISCONNECT, () => {
          state.connected = false;
        });
      }
      return consumer;
    },
  } as Kafka;
}
