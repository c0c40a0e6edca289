import { PgoutputSource } from '../../connectors/pgoutput-source/pgoutput-source.js';
import type { ReplicatorConfig } from '../config/load-config.js';
import { createKafka } from '../kafka-client.js';
import type { Logger } from '../logger.js';

export type Role = 'source' | 'transform' | 'sink' | 'all';

export interface Pipeline {
  /** Runs the configured stages until `signal` aborts (graceful: flush, acknowledge, commit). */
  run(signal: AbortSignal): Promise<void>;
  source?: PgoutputSource;
}

/** The one place that turns configuration into stage implementations. */
export function buildPipeline(config: ReplicatorConfig, options: { role: Role; logger: Logger }): Pipeline {
  const { role, logger } = options;
  const stages: { name: string; run: (signal: AbortSignal) => Promise<void> }[] = [];
  let source: PgoutputSource | undefined;
  if (role === 'source' || role === 'all') {
    source = new PgoutputSource({
      config,
      kafka: createKafka(config.kafka, logger.child({ stage: 'source' }), `${config.kafka.clientId}-source`),
      logger: logger.child({ stage: 'source' }),
    });
    const s = source;
    stages.push({ name: 'source', run: (signal) => s.run(signal) });
  }
  return {
    ...(source ? { source } : {}),
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
