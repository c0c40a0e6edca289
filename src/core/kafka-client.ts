import { Kafka, type KafkaConfig, logLevel, type SASLOptions } from 'kafkajs';
import type { Logger } from './logger.js';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/**
 * Error responses kafkajs logs at ERROR and then handles itself: retriable ones it retries (a coordinator still
 * loading its partitions after a broker start, or moved), and those our code expects (two stages creating the same
 * topic, a leader not elected yet). Should the retries run out, the caller's error is logged where it is handled.
 */
const HANDLED_RESPONSE_ERRORS = new RegExp(
  [
    'Topic creation errors',
    'Topic with this name already exists',
    // UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER: metadata refreshed, request retried.
    'does not host this topic-partition',
    'no leader for this topic-partition',
    'not the leader for that topic-partition',
    // COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, REBALANCE_IN_PROGRESS.
    'coordinator is loading',
    'not the correct coordinator',
    'coordinator is not available',
    'group is rebalancing',
  ].join('|'),
);

/** The connection settings a client needs (the config's `kafka` section satisfies it). */
export interface KafkaConnection {
  brokers: readonly string[];
  clientId: string;
  ssl?: KafkaConfig['ssl'] | undefined;
  sasl?: unknown;
}

/**
 * A kafkajs client for the configured brokers, logging through our logger (kafkajs's own INFO chatter is debug).
 * `overrides` tunes connection behaviour (timeouts, retries) for short-lived callers such as `status`.
 */
export function createKafka(
  config: KafkaConnection,
  logger: Logger,
  clientId = config.clientId,
  overrides: Pick<KafkaConfig, 'connectionTimeout' | 'requestTimeout' | 'retry'> = {},
): Kafka {
  const kafkaConfig: KafkaConfig = {
    clientId,
    brokers: [...config.brokers],
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }) => {
        const { message, ...extra } = log;
        // kafkajs logs every error response at ERROR before it or its caller handles it: not errors of the replicator.
        const handled = level === logLevel.ERROR && HANDLED_RESPONSE_ERRORS.test(String(extra.error ?? ''));
        const to = level === logLevel.INFO || handled ? 'debug' : (LEVELS[level] ?? 'debug');
        logger[to]({ kafka: extra }, `kafka: ${message}`);
      },
    ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
    ...(config.sasl ? { sasl: config.sasl as SASLOptions } : {}),
    ...overrides,
  };
  return new Kafka(kafkaConfig);
}
