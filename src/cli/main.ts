import { Command, Option } from 'commander';
import { loadConfig } from '../config/load-config.js';
import { exitCodeFor, isReplicatorError } from '../errors.js';
import { createLogger } from '../logger.js';
import { buildPipeline, type Role } from '../pipeline/pipeline-builder.js';

/** Thin CLI: parse arguments, call the library, print, exit. */
const program = new Command('replicator').description('legacy PostgreSQL → Kafka → V2 PostgreSQL replicator');

program
  .command('start')
  .description('run the replicator daemon')
  .addOption(
    new Option('--role <role>', 'which stages to run')
      .choices(['source', 'transform', 'sink', 'all'])
      .default('all'),
  )
  .option('--config <file>', 'config file (.json, .yaml, .ts)', 'replicator.config.yaml')
  .action(async (opts: { role: Role; config: string }) => {
    const logger = createLogger();
    const config = await loadConfig(opts.config);
    const pipeline = buildPipeline(config, { role: opts.role, logger });
    const controller = new AbortController();
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal: sig }, 'second signal: exiting now');
        process.exit(130);
      }
      logger.info({ signal: sig }, 'stopping: flushing and acknowledging');
      controller.abort();
      // Bounded shutdown: never hang past the grace period.
      setTimeout(() => {
        logger.error('shutdown took longer than 30 s; exiting');
        process.exit(1);
      }, 30_000).unref();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    await pipeline.run(controller.signal);
    logger.info('stopped');
  });

program.parseAsync(process.argv).then(
  () => process.exit(0),
  (e: unknown) => {
    const code = isReplicatorError(e) ? e.code : 'UNEXPECTED';
    console.error(JSON.stringify({ level: 'error', code, msg: e instanceof Error ? e.message : String(e) }));
    process.exit(exitCodeFor(e));
  },
);
