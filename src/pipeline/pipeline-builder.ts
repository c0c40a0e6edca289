import { SchemaRegistryClient } from '@confluentinc/schemaregistry';
import { TransformStage } from '../../connectors/kafka-transform-stage/transform-stage.js';
import { PgoutputSource } from '../../connectors/pgoutput-source/pgoutput-source.js';
import { PostgresSink } from '../../connectors/postgres-sink/postgres-sink.js';
import { AvroEncoder, decodeAvroValue } from '../../connectors/schema-registry-encoder/avro-encoder.js';
import { transformModules } from '../../transforms/index.js';
import type { ReplicatorConfig } from '../config/load-config.js';
import { createKafka } from '../kafka-client.js';
import type { Logger } from '../logger.js';

export type Role = 'source' | 'transform' | 'sink' | 'all';

export interface Pipeline {
  /** Runs the configured stages until `signal` aborts (graceful: flush, acknowledge, commit). */
  run(signal: AbortSignal): Promise<void>;
  source?: PgoutputSource;
  transform?: TransformStage;
  sink?: PostgresSink;
}

/** The one place that turns configuration into stage implementations. */
export function buildPipeline(config: ReplicatorConfig, options: { role: Role; logger: Logger }): Pipeline {
  const { role, logger } = options;
  const stages: { name: string; run: (signal: AbortSignal) => Promise<void> }[] = [];
  let source: PgoutputSource | undefined;
  let transform: TransformStage | undefined;
  let sink: PostgresSink | undefined;
  const registry = config.schemaRegistry
    ? new SchemaRegistryClient({ baseURLs: [config.schemaRegistry.url] })
    : undefined;
  if (role === 'source' || role === 'all') {
    source = new PgoutputSource({
      config,
      kafka: createKafka(config.kafka, logger.child({ stage: 'source' }), `${config.kafka.clientId}-source`),
      logger: logger.child({ stage: 'source' }),
      ...(registry ? { encoder: new AvroEncoder({ client: registry }) } : {}),
    });
    const s = source;
    stages.push({ name: 'source', run: (signal) => s.run(signal) });
  }
  if (role === 'transform' || role === 'all') {
    const stageLogger = logger.child({ stage: 'transform' });
    transform = new TransformStage({
      config,
      kafka: createKafka(config.kafka, stageLogger, `${config.kafka.clientId}-transform`),
      modules: transformModules,
      logger: stageLogger,
      ...(registry ? { decodeValue: (buf: Buffer) => decodeAvroValue(registry, buf) } : {}),
    });
    const t = transform;
    stages.push({ name: 'transform', run: (signal) => t.run(signal) });
  }
  if (role === 'sink' || role === 'all') {
    const stageLogger = logger.child({ stage: 'sink' });
    sink = new PostgresSink({
      config,
      kafka: createKafka(config.kafka, stageLogger, `${config.kafka.clientId}-sink`),
      modules: transformModules,
      logger: stageLogger,
    });
    const k = sink;
    stages.push({ name: 'sink', run: (signal) => k.run(signal) });
  }
  return {
    ...(source ? { source } : {}),
    ...(transform ? { transform } : {}),
    ...(sink ? { sink } : {}),
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
