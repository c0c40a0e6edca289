import type { Kafka } from 'kafkajs';
import {
  type KafkaPublisherOptions,
  KafkaStateStore,
  ThreadedPublisher,
} from '../../connectors/kafka-publisher/index.js';
import type { PgoutputSourceOptions } from '../../connectors/pgoutput-source/index.js';
import type { PostgresSinkOptions } from '../../connectors/postgres-sink/index.js';
import {
  changeTopics,
  dlqTopic,
  type GroupTopics,
  heartbeatPrefix,
  stateTopic,
} from '../contracts/topics.js';
import type { TransformModule } from '../contracts/transform-api.js';
import type { V2Model } from '../contracts/v2-model.js';
import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { packageVersion } from '../core/package-version.js';
import type { ReplicatorConfig } from './config/load-config.js';

/** What the publish stage reports besides its checkpoints: its retried errors and reconnects (metrics). */
export type PublisherHooks = Pick<KafkaPublisherOptions, 'onRetry' | 'onReconnect'>;

/** config → the source stage's own options, with its publish stage (Kafka) and state store. */
export function sourceOptions(
  config: Pick<ReplicatorConfig, 'source' | 'kafka'>,
  kafka: Kafka,
  logger: Logger,
  publisherHooks: PublisherHooks = {},
): PgoutputSourceOptions {
  const { topicPrefix, partitions, replicationFactor } = config.kafka;
  return {
    source: config.source,
    version: packageVersion(),
    topics: { topicPrefix, partitions, replicationFactor },
    kafka,
    logger,
    createPublisher: (settings) =>
      new ThreadedPublisher({
        connection: config.kafka,
        client: config.kafka.captureProducer,
        logger,
        ...publisherHooks,
        ...settings,
      }),
    stateStore: new KafkaStateStore(kafka, stateTopic(topicPrefix)),
  };
}

/**
 * config → the sink stage's own options. The domain comes from the caller (the pipeline builder hands over
 * transforms/' modules, whose topics the sink consumes, and the V2 model, which it applies).
 */
export function sinkOptions(
  config: Pick<ReplicatorConfig, 'source' | 'kafka' | 'target' | 'sink'>,
  stage: { modules: readonly TransformModule[]; model: V2Model; kafka: Kafka; logger: Logger },
): PostgresSinkOptions {
  if (!config.target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'the sink needs target.url');
  const { groupId, concurrency, sessionTimeoutMs, maxQueuedMb } = config.sink;
  return {
    targetUrl: config.target.url,
    // Read only: the legacy catalog and rows whose unchanged TOASTed values have no image (the sink needs SELECT).
    legacyUrl: config.source.url,
    groupId,
    concurrency,
    sessionTimeoutMs,
    maxQueuedBytes: Math.round(maxQueuedMb * 1024 * 1024),
    changeTopics: changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables }),
    heartbeatTopic: heartbeatPrefix(config.kafka.topicPrefix),
    modules: stage.modules,
    dlqTopic: dlqTopic(config.kafka.topicPrefix),
    partitions: config.kafka.partitions,
    replicationFactor: config.kafka.replicationFactor,
    model: stage.model,
    kafka: stage.kafka,
    logger: stage.logger,
  };
}

/** The sink's consumer group and what it consumes (what lag is measured on), and the dead-letter topic. */
export function stageTopics(config: Pick<ReplicatorConfig, 'source' | 'kafka' | 'sink'>): {
  sink: GroupTopics;
  dlq: string;
} {
  const naming = { rawPrefix: config.kafka.topicPrefix, tables: config.source.tables };
  return {
    sink: {
      groupId: config.sink.groupId,
      topics: [...changeTopics(naming), heartbeatPrefix(naming.rawPrefix)],
    },
    dlq: dlqTopic(config.kafka.topicPrefix),
  };
}
