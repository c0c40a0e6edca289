import type { Kafka } from 'kafkajs';
import { PgoutputSource } from '../../connectors/pgoutput-source/index.js';
import { createLogger, silentLogger } from '../../src/core/logger.js';
import { parseConfig, type ReplicatorConfig } from '../../src/pipeline/config/load-config.js';
import type { ConfigInput } from '../../src/pipeline/config/schema.js';
import { sourceOptions } from '../../src/pipeline/stage-options.js';
import { freshName, kafkaBrokers } from './resources.js';

/** A source config for a test database: fresh slot, publication and topic prefix. */
export function sourceConfig(
  url: string,
  tables: string[],
  extra: Partial<ConfigInput['source']> = {},
  brokers = kafkaBrokers(),
): ReplicatorConfig {
  return parseConfig(
    {
      source: {
        url,
        tables,
        slot: freshName('slot'),
        publication: freshName('pub'),
        statusIntervalMs: 200,
        ...extra,
      },
      kafka: { brokers: [brokers], topicPrefix: freshName('cdc'), partitions: 3 },
    } satisfies ConfigInput,
    {},
  );
}

/** Runs a source in this process until `stop()`. */
export function startSource(config: ReplicatorConfig, kafka: Kafka) {
  const controller = new AbortController();
  const logger = process.env.REPLICATOR_TEST_LOG
    ? createLogger({ level: process.env.REPLICATOR_TEST_LOG })
    : silentLogger();
  const source = new PgoutputSource({ ...sourceOptions(config, kafka, logger), standbyPollMs: 200 });
  const running = source.run(controller.signal);
  return {
    source,
    running,
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

export const topicOf = (config: ReplicatorConfig, table: string) =>
  `${config.kafka.topicPrefix}.public.${table}`;
