import { type Command, Option } from 'commander';
import { V2_KEYS } from '../../transforms/v2-schema.js';
import type { V2Entity } from '../contracts/transform-api.js';
import { createKafka } from '../core/kafka-client.js';
import { commandLogger } from '../core/logger.js';
import { finalizeCutover, rollbackCutover, runCutover } from '../ops/cutover/cutover.js';
import { cutoverStatus, renderCutoverStatus } from '../ops/cutover/cutover-status.js';
import { startFinalVerify } from '../ops/cutover/final-verify.js';
import { loadConfig } from '../pipeline/config/load-config.js';
import { nonNegativeInt, positiveNumber } from './options.js';

const ENTITIES = Object.keys(V2_KEYS) as V2Entity[];

export function registerCutoverCommands(program: Command): void {
  const cutoverCommand = program
    .command('cutover')
    .description('go/no-go, fence legacy writes, drain exactly, verify, flip')
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .option('--dry-run', 'check go/no-go and print the plan; change nothing')
    .option('--max-lag <seconds>', 'replication lag allowed', positiveNumber)
    .option(
      '--budget <seconds>',
      'longest write-blocked window: the gate waits for a predicted drain within it, and an attempt not flipping within it aborts and unfences',
      positiveNumber,
    )
    .option('--retries <n>', 'attempts after one aborted for its budget', nonNegativeInt)
    .addOption(
      new Option(
        '--fence <kind>',
        'reject: writes fail from the fence on; wait: writes wait (up to the budget)',
      ).choices(['reject', 'wait']),
    )
    .option('--wait <seconds>', 'how long the catch-up gate waits before refusing', positiveNumber)
    .option('--shop <shop>', 'cut over one shop (per-tenant fence)')
    .option('--allow-dlq', 'proceed with messages in the dead-letter queue')
    .option(
      '--full-final-verify',
      'verify every row inside the fence, not only those changed since the last clean `replicator verify`',
    )
    .action(
      async (opts: {
        config: string;
        dryRun?: boolean;
        maxLag?: number;
        budget?: number;
        retries?: number;
        fence?: 'reject' | 'wait';
        wait?: number;
        shop?: string;
        allowDlq?: boolean;
        fullFinalVerify?: boolean;
      }) => {
        const config = await loadConfig(opts.config);
        const logger = commandLogger('info');
        const result = await runCutover({
          config,
          kafka: createKafka(config.kafka, logger, `${config.kafka.clientId}-cutover`),
          logger,
          print: (l) => console.log(l),
          ...(opts.dryRun ? { dryRun: true } : {}),
          ...(opts.shop ? { shop: opts.shop } : {}),
          ...(opts.maxLag !== undefined ? { maxLagSeconds: opts.maxLag } : {}),
          ...(opts.budget !== undefined ? { budgetSeconds: opts.budget } : {}),
          ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
          ...(opts.fence ? { fence: opts.fence } : {}),
          ...(opts.wait !== undefined ? { waitSeconds: opts.wait } : {}),
          ...(opts.allowDlq ? { allowDlq: true } : {}),
          verify: (v) =>
            startFinalVerify(config, { ...v, ...(opts.fullFinalVerify ? { full: true } : {}) }, logger),
          v2Tables: ENTITIES,
          ...(process.env.REPLICATOR_FAULT_PAUSE_AFTER
            ? { pauseAfter: process.env.REPLICATOR_FAULT_PAUSE_AFTER }
            : {}),
        });
        console.log(JSON.stringify(result));
      },
    );

  cutoverCommand
    .command('status')
    .description(
      'every shop with the state of its cutover, its last window and the drift its last verify found',
    )
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .option('--json', 'print the shops as JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const shops = await cutoverStatus(await loadConfig(opts.config));
      console.log(opts.json ? JSON.stringify({ shops }) : renderCutoverStatus(shops));
    });

  program
    .command('rollback')
    .description('run the flip-back actions, remove the fence, list rows written to V2 after the flip')
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .option('--shop <shop>', 'the shop of a per-tenant cutover')
    .action(async (opts: { config: string; shop?: string }) => {
      const config = await loadConfig(opts.config);
      await rollbackCutover({
        config,
        print: (l) => console.log(l),
        v2Tables: ENTITIES,
        ...(opts.shop ? { shop: opts.shop } : {}),
      });
    });

  program
    .command('finalize')
    .description('after a flip: drop the replication slot and the publication')
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .action(async (opts: { config: string }) => {
      const config = await loadConfig(opts.config);
      await finalizeCutover({ config, print: (l) => console.log(l), v2Tables: ENTITIES });
    });
}
