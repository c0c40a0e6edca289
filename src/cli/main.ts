import { Command, CommanderError, Option } from 'commander';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ErrorCodes, exitCodeFor, isReplicatorError, ReplicatorError } from '../core/errors.js';
import { createLogger, logLevelFromEnv } from '../core/logger.js';
import { packageVersion } from '../core/package-version.js';
import { describePgUrl } from '../core/redact.js';
import { readStatus } from '../ops/status/read-status.js';
import { renderStatus } from '../ops/status/render-status.js';
import { watchStatus } from '../ops/status/watch-status.js';
import { loadConfig } from '../pipeline/config/load-config.js';
import { createHttpServer } from '../pipeline/observability/http-server.js';
import { createMetrics } from '../pipeline/observability/metrics.js';
import { buildPipeline, type Role } from '../pipeline/pipeline-builder.js';
import { registerCutoverCommands } from './cutover-command.js';
import { registerDlqCommands } from './dlq-command.js';
import { positiveNumber } from './options.js';
import { registerTargetCommands } from './target-command.js';
import { registerVerifyCommand } from './verify-command.js';

/** How long a graceful stop (flush, acknowledge, commit) may take before the process gives up and exits 1. */
export const SHUTDOWN_GRACE_MS = 30_000;
/** `status --watch`: time between two readings unless --interval says otherwise, and the least it may say. */
const WATCH_INTERVAL_MS = 2_000;
const MIN_WATCH_INTERVAL_MS = 100;

// bin/replicator.js exits on a signal that comes while the modules load (nothing is connected yet); from here on
// signals have their default meaning, except where a command (start, status --watch) handles them.
process.removeAllListeners('SIGTERM');
process.removeAllListeners('SIGINT');

/** Thin CLI: parse arguments, call the library, print, exit. */
const program = new Command('replicator').description('legacy PostgreSQL → Kafka → V2 PostgreSQL replicator');
let exitCode = 0;

// Usage errors (a bad flag value, an unknown option) become CONFIG_INVALID below, printed as our JSON error line;
// subcommands added after this inherit both settings.
program
  .version(packageVersion(), '-V, --version', 'print the version and exit')
  .exitOverride()
  .configureOutput({ outputError: () => {} })
  // Settings from the environment are checked before any command runs (and before anything connects).
  .hook('preAction', () => {
    logLevelFromEnv();
  });

program
  .command('start')
  .description('run the replicator daemon (with /metrics, /healthz and /readyz on metrics.host:metrics.port)')
  .addOption(
    new Option('--role <role>', 'which stages to run').choices(['source', 'sink', 'all']).default('all'),
  )
  .option('--config <file>', 'config file (.json, .yaml, .ts)', 'replicator.config.yaml')
  .action(async (opts: { role: Role; config: string }) => {
    const logger = createLogger();
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
        logger.error({ graceMs: SHUTDOWN_GRACE_MS }, 'shutdown took longer than the grace period; exiting');
        process.exit(1);
      }, SHUTDOWN_GRACE_MS).unref();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    const config = await loadConfig(opts.config);
    // What the daemon will connect to, never a URL: connection strings carry passwords.
    logger.debug(
      {
        role: opts.role,
        source: describePgUrl(config.source.url),
        slot: config.source.slot,
        tables: config.source.tables.map((t) => `${t.schema}.${t.table}`),
        target: config.target ? describePgUrl(config.target.url) : null,
        brokers: config.kafka.brokers,
        schemaRegistry: config.schemaRegistry ? new URL(config.schemaRegistry.url).host : null,
        metrics: config.metrics,
      },
      'configuration',
    );
    const registry = new Registry();
    const metrics = createMetrics(registry, { defaultMetrics: true });
    // Test-only fault hook (kill -9 tests prove a kill lands inside an open apply transaction).
    const holdApplyMs = Number(process.env.REPLICATOR_FAULT_HOLD_APPLY_MS ?? 0);
    const holdSettleMs = Number(process.env.REPLICATOR_FAULT_HOLD_SETTLE_MS ?? 0);
    const pipeline = buildPipeline(config, {
      role: opts.role,
      logger,
      metrics,
      ...(holdApplyMs > 0 ? { holdApplyMs } : {}),
      ...(holdSettleMs > 0 ? { holdSettleMs } : {}),
    });
    const server = createHttpServer({
      host: config.metrics.host,
      port: config.metrics.port,
      registry,
      readiness: () => pipeline.readiness(),
      logger,
    });
    const bound = await server.listen();
    logger.info({ host: bound.host, port: bound.port, role: opts.role }, 'http server listening');
    try {
      await pipeline.run(controller.signal);
    } finally {
      await server.close();
    }
    logger.info('stopped');
  });

interface StatusFlags {
  config: string;
  json?: boolean;
  maxLagSeconds: number;
  watch?: boolean;
  interval?: number;
}

program
  .command('status')
  .description(
    'one screen: slot and LSNs, lag, consumer groups, DLQ, snapshot, cutover, preflight; exit 1 when unhealthy',
  )
  .option('--config <file>', 'config file (.json, .yaml, .ts)', 'replicator.config.yaml')
  .option('--json', 'print the report as JSON')
  .option(
    '--max-lag-seconds <seconds>',
    'replication lag above which the replicator is unhealthy',
    positiveNumber,
    300,
  )
  .option('--watch', 'redraw a live view (lag, rates, DLQ, cutover with sparklines) until Ctrl-C; exits 0')
  .option(
    '--interval <ms>',
    `time between two readings with --watch (default ${WATCH_INTERVAL_MS})`,
    positiveNumber,
  )
  .action(async (opts: StatusFlags) => {
    // Usage errors before anything is read or connected.
    if (opts.watch && opts.json)
      throw new ReplicatorError(
        ErrorCodes.CONFIG_INVALID,
        '--watch cannot be combined with --json: the live view is text (run `status --json` in a loop instead)',
      );
    if (opts.interval !== undefined && !opts.watch)
      throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, '--interval applies only with --watch');
    if (opts.interval !== undefined && opts.interval < MIN_WATCH_INTERVAL_MS)
      throw new ReplicatorError(
        ErrorCodes.CONFIG_INVALID,
        `--interval must be at least ${MIN_WATCH_INTERVAL_MS} ms (got ${opts.interval})`,
      );
    const config = await loadConfig(opts.config);
    // stdout is the report; diagnostics (kafkajs's, at most errors unless asked) go to stderr.
    const logger = createLogger({
      level: logLevelFromEnv('error'),
      destination: pino.destination(2),
    });
    const read = () => readStatus(config, { maxLagSeconds: opts.maxLagSeconds }, logger);
    if (opts.watch) {
      // Ctrl-C or SIGTERM ends the watch normally (exit 0); a second signal exits at once.
      const controller = new AbortController();
      const onSignal = () => (controller.signal.aborted ? process.exit(130) : controller.abort());
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      await watchStatus(read, {
        intervalMs: opts.interval ?? WATCH_INTERVAL_MS,
        signal: controller.signal,
        tty: process.stdout.isTTY === true,
        write: (text) => process.stdout.write(text),
      });
      return;
    }
    const report = await read();
    process.stdout.write(
      opts.json
        ? `${JSON.stringify(report, null, 2)}\n`
        : renderStatus(report, { tty: process.stdout.isTTY === true }),
    );
    exitCode = report.healthy ? 0 : 1;
  });

registerCutoverCommands(program);
registerDlqCommands(program);
registerTargetCommands(program);
registerVerifyCommand(program);

/** Exits once stdout and stderr have taken everything written (a pipe reader such as `| wc -l` sees it all). */
function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

program.parseAsync(process.argv).then(
  () => exitAfterFlush(exitCode),
  (thrown: unknown) => {
    // --help and --version: commander has printed them; not errors.
    if (thrown instanceof CommanderError && thrown.exitCode === 0) return exitAfterFlush(0);
    const e =
      thrown instanceof CommanderError
        ? new ReplicatorError(ErrorCodes.CONFIG_INVALID, thrown.message.replace(/^error: /, ''), {
            cause: thrown,
          })
        : thrown;
    const code = isReplicatorError(e) ? e.code : 'UNEXPECTED';
    console.error(JSON.stringify({ level: 'error', code, msg: e instanceof Error ? e.message : String(e) }));
    exitAfterFlush(exitCodeFor(e));
  },
);
