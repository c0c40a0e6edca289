import { SchemaRegistryClient } from '@confluentinc/schemaregistry';
import type { Kafka } from 'kafkajs';
import { PgoutputSource } from '../../connectors/pgoutput-source/index.js';
import { PostgresSink } from '../../connectors/postgres-sink/index.js';
import { AvroEncoder, decodeAvroValue } from '../../connectors/schema-registry-encoder/index.js';
import { transformModules } from '../../transforms/index.js';
import { v2Model } from '../../transforms/v2-model.js';
import type { GroupTopics } from '../contracts/topics.js';
import { createKafka } from '../core/kafka-client.js';
import type { Logger } from '../core/logger.js';
import type { ReplicatorConfig } from './config/load-config.js';
import type { Readiness } from './observability/http-server.js';
import type { Metrics } from './observability/metrics.js';
import { MetricsSampler } from './observability/metrics-sampler.js';
import type { StageName } from './observability/stage-errors.js';
import { sinkOptions, sourceOptions, stageTopics } from './stage-options.js';

export type Role = 'source' | 'sink' | 'all';

export interface Pipeline {
  /** Runs the configured stages until `signal` aborts (graceful: flush, acknowledge, commit). */
  run(signal: AbortSignal): Promise<void>;
  /** Whether every configured stage is connected (for `/readyz`). */
  readiness(): Readiness;
  source?: PgoutputSource;
  sink?: PostgresSink;
}

export interface PipelineOptions {
  role: Role;
  logger: Logger;
  /** Where the stages record; without it nothing is measured (and nothing is sampled). */
  metrics?: Metrics;
  /** Fault injection for tests: the sink holds each apply transaction open this long before it commits. */
  holdApplyMs?: number;
  /** Fault injection for tests: the sink waits this long between an apply commit and its users' recompute. */
  holdSettleMs?: number;
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

/** Changes waiting this long for Kafka with no acknowledgement make the source not ready (a send retried in vain). */
const SOURCE_STALL_MS = 60_000;

/** The Schema Registry client the config asks for (basic auth when it names a user), or none. */
export function schemaRegistryClient(config: ReplicatorConfig): SchemaRegistryClient | undefined {
  const r = config.schemaRegistry;
  if (!r) return undefined;
  return new SchemaRegistryClient({
    baseURLs: [r.url],
    ...(r.username !== undefined
      ? { basicAuthCredentials: { credentialsSource: 'USER_INFO', userInfo: `${r.username}:${r.password}` } }
      : {}),
  });
}

/** The one place that turns configuration into stage implementations. */
export function buildPipeline(config: ReplicatorConfig, options: PipelineOptions): Pipeline {
  const { role, logger, metrics } = options;
  const stages: { name: string; run: (signal: AbortSignal) => Promise<void> }[] = [];
  const consumerStates: Record<string, { connected: boolean }> = {};
  let source: PgoutputSource | undefined;
  let sink: PostgresSink | undefined;
  const registry = schemaRegistryClient(config);
  const topics = stageTopics(config);
  const lagGroups: GroupTopics[] = [];
  /** A stage's retried errors and reconnects, counted from zero (nothing without metrics). */
  const failureHooks = (stage: StageName) => {
    if (!metrics) return {};
    metrics.trackStage(stage);
    return {
      onRetry: (error: unknown) => metrics.countRetry(stage, error),
      onReconnect: () => metrics.countReconnect(stage),
    };
  };
  if (role === 'source' || role === 'all') {
    const sourceLogger = logger.child({ stage: 'source' });
    source = new PgoutputSource({
      ...sourceOptions(
        config,
        createKafka(config.kafka, sourceLogger, `${config.kafka.clientId}-source`),
        sourceLogger,
        failureHooks('publisher'),
      ),
      ...(registry ? { encoder: new AvroEncoder({ client: registry }) } : {}),
      ...(metrics
        ? {
            onEvent: (table: string, op: string) => metrics.sourceEvents.inc({ table, op }),
            onOversized: (table: string) => metrics.sourceOversizedEvents.inc({ table }),
          }
        : {}),
      ...failureHooks('source'),
    });
    const s = source;
    // Zero series from the start, so that increase() and rate() count a table's first changes too.
    for (const t of config.source.tables) {
      for (const op of ['c', 'u', 'd', 't'])
        metrics?.sourceEvents.inc({ table: `${t.schema}.${t.table}`, op }, 0);
      metrics?.sourceOversizedEvents.inc({ table: `${t.schema}.${t.table}` }, 0);
    }
    metrics?.trackLeader(config.source.slot, () => s.progress().role === 'leader');
    metrics?.trackKafkaWait(config.source.slot, () => s.progress().waitingForKafkaMs);
    stages.push({ name: 'source', run: (signal) => s.run(signal) });
  }
  if (role === 'sink' || role === 'all') {
    const stageLogger = logger.child({ stage: 'sink' });
    const state = { connected: false };
    consumerStates.sink = state;
    const group = config.sink.groupId;
    sink = new PostgresSink({
      ...sinkOptions(config, {
        modules: transformModules,
        model: v2Model,
        kafka: trackConsumers(createKafka(config.kafka, stageLogger, `${config.kafka.clientId}-sink`), state),
        logger: stageLogger,
      }),
      ...(registry ? { decodeValue: (buf: Buffer) => decodeAvroValue(registry, buf) } : {}),
      ...(options.holdApplyMs ? { holdBeforeCommitMs: options.holdApplyMs } : {}),
      ...(options.holdSettleMs ? { holdBeforeSettleMs: options.holdSettleMs } : {}),
      ...(metrics
        ? {
            onUnit: (table: string) => metrics.transformUnits.inc({ table }),
            onHops: (hops: { capture: number; queue: number; apply: number }) => {
              metrics.stageLatencySeconds.observe({ stage: 'capture' }, hops.capture);
              metrics.stageLatencySeconds.observe({ stage: 'queue' }, hops.queue);
              metrics.stageLatencySeconds.observe({ stage: 'apply' }, hops.apply);
            },
            onBatch: (seconds: number, units: number) => {
              metrics.sinkBatchSeconds.observe(seconds);
              metrics.sinkMessages.inc(units);
            },
            onDeadLetter: (reason: string) => metrics.dlqMessages.inc({ stage: 'sink', reason }),
            onToastRefetch: (table: string, rows: number) => metrics.toastRefetch.inc({ table }, rows),
            onSchemaDrift: (table: string, held: number) =>
              metrics.schemaDriftPartitions.set({ table }, held),
            onApplied: (commitTs: string) => metrics.observeApplied(group, commitTs),
          }
        : {}),
      ...failureHooks('sink'),
    });
    const k = sink;
    // Zero series from the start, as for the source's events.
    for (const t of config.source.tables) {
      metrics?.toastRefetch.inc({ table: `${t.schema}.${t.table}` }, 0);
      metrics?.schemaDriftPartitions.set({ table: `${t.schema}.${t.table}` }, 0);
    }
    lagGroups.push(topics.sink);
    stages.push({ name: 'sink', run: (signal) => k.run(signal) });
  }
  if (metrics) {
    const sampler = new MetricsSampler({
      metrics,
      logger: logger.child({ stage: 'metrics' }),
      intervalMs: config.metrics.sampleIntervalMs,
      ...(source
        ? {
            source: {
              url: config.source.url,
              slot: config.source.slot,
              tables: config.source.tables,
              progress: () => source.progress(),
            },
          }
        : {}),
      ...(sink && config.target ? { sink: { url: config.target.url, groupId: config.sink.groupId } } : {}),
      ...(lagGroups.length > 0
        ? {
            kafka: {
              kafka: createKafka(
                config.kafka,
                logger.child({ stage: 'metrics' }),
                `${config.kafka.clientId}-metrics`,
              ),
              groups: lagGroups,
            },
          }
        : {}),
    });
    stages.push({ name: 'metrics', run: (signal) => sampler.run(signal) });
  }
  return {
    ...(source ? { source } : {}),
    ...(sink ? { sink } : {}),
    readiness: () => {
      const states: Record<string, string> = {};
      let ready = true;
      let sourceRole: string | undefined;
      if (source) {
        const progress = source.progress();
        sourceRole = progress.role;
        states.source = sourceRole;
        // Ready as leader or as a standby that knows it is one; not while starting or after stopping.
        if (sourceRole !== 'leader' && sourceRole !== 'standby') ready = false;
        // Nor while changes have waited for Kafka too long: the stream is stalled and WAL piles up.
        if (progress.waitingForKafkaMs > SOURCE_STALL_MS) {
          ready = false;
          states.source = 'stalled';
        }
      }
      for (const [name, state] of Object.entries(consumerStates)) {
        states[name] = state.connected ? 'connected' : 'connecting';
        if (!state.connected) ready = false;
      }
      return { ready, ...(sourceRole ? { role: sourceRole } : {}), stages: states };
    },
    run: async (signal) => {
      // One stage failing stops the others: a half-running replicator is worse than a stopped one.
      const inner = new AbortController();
      const onAbort = () => inner.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await Promise.all(
          stages.map((stage) =>
            stage.run(inner.signal).catch((e: unknown) => {
              inner.abort();
              throw e;
            }),
          ),
        );
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
  };
}
