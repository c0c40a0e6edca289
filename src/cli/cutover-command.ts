import type { Command } from 'commander';
import pg from 'pg';
import { describeTable } from '../../connectors/pgoutput-source/preflight.js';
import { TEXT_FORMAT_OPTIONS } from '../../connectors/pgoutput-source/replication-stream.js';
import { transformModules } from '../../transforms/index.js';
import { V2_KEYS } from '../../transforms/v2-schema.js';
import type { V2Entity } from '../contracts/transform-api.js';
import { createKafka } from '../core/kafka-client.js';
import { createLogger } from '../core/logger.js';
import { textTypes } from '../core/pg-text-types.js';
import { finalizeCutover, rollbackCutover, runCutover, type VerifyOutcome } from '../ops/cutover/cutover.js';
import { diffStates, isClean } from '../ops/verify/diff-states.js';
import { expectedV2, type LegacyRow } from '../ops/verify/expected-v2.js';
import { readLegacyRows, readTargetState } from '../ops/verify/read-state.js';
import { loadConfig, type ReplicatorConfig } from '../pipeline/config/load-config.js';

const ENTITY_TOPICS = [...new Set(transformModules.flatMap((m) => m.tables.map((t) => m.topicFor(t))))];
const ENTITIES = Object.keys(V2_KEYS) as V2Entity[];

/** The final verify of a cutover: with writes fenced and the drain exact, a full comparison has no lag to excuse. */
export async function fullVerify(config: ReplicatorConfig, shop?: string): Promise<VerifyOutcome> {
  const legacy = new pg.Client({ connectionString: config.source.url, options: TEXT_FORMAT_OPTIONS });
  await legacy.connect();
  let rows: LegacyRow[];
  try {
    await legacy.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const tables = [];
    for (const t of config.source.tables) {
      const info = await describeTable(legacy, t);
      if (info) tables.push({ ...t, primaryKey: info.primaryKey });
    }
    rows = await readLegacyRows(legacy, tables);
    await legacy.query('COMMIT');
  } finally {
    await legacy.end();
  }
  const expected = expectedV2(rows, transformModules, V2_KEYS).state;
  const target = new pg.Client({
    connectionString: config.target!.url,
    types: textTypes,
    options: '-c TimeZone=UTC',
  });
  await target.connect();
  try {
    const actual = await readTargetState(target, V2_KEYS);
    if (shop) {
      // Per-tenant: only that shop's bundles (and their children) must match.
      for (const state of [expected, actual]) {
        for (const e of ENTITIES) if (!e.startsWith('bundle')) state.delete(e);
        const bundles = state.get('bundles');
        for (const [k, row] of bundles ?? []) if (row.shop !== shop) bundles!.delete(k);
        const ids = new Set([...(bundles?.values() ?? [])].map((r) => r.id));
        for (const child of ['bundle_components', 'bundle_discounts'] as const) {
          const m = state.get(child);
          for (const [k, row] of m ?? []) if (!ids.has(row.bundle_id as string)) m!.delete(k);
        }
      }
    }
    const diffs = diffStates(expected, actual, ENTITIES);
    const summary = diffs
      .filter((d) => d.missing.length || d.extra.length || d.different.length)
      .map(
        (d) =>
          `${d.entity}: ${d.missing.length} missing, ${d.extra.length} extra, ${d.different.length} different`,
      )
      .join('; ');
    return {
      clean: isClean(diffs),
      summary: summary || `${diffs.reduce((n, d) => n + d.expected, 0)} rows match`,
    };
  } finally {
    await target.end();
  }
}

export function registerCutoverCommands(program: Command): void {
  program
    .command('cutover')
    .description('go/no-go, fence legacy writes, drain exactly, verify, flip')
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .option('--dry-run', 'check go/no-go and print the plan; change nothing')
    .option('--max-lag <seconds>', 'replication lag allowed', Number)
    .option('--budget <seconds>', 'predicted drain time allowed', Number)
    .option('--shop <shop>', 'cut over one shop (per-tenant fence)')
    .option('--allow-dlq', 'proceed with messages in the dead-letter queue')
    .action(
      async (opts: {
        config: string;
        dryRun?: boolean;
        maxLag?: number;
        budget?: number;
        shop?: string;
        allowDlq?: boolean;
      }) => {
        const config = await loadConfig(opts.config);
        const logger = createLogger();
        const result = await runCutover(
          {
            config,
            kafka: createKafka(config.kafka, logger, `${config.kafka.clientId}-cutover`),
            logger,
            print: (l) => console.log(l),
            ...(opts.dryRun ? { dryRun: true } : {}),
            ...(opts.shop ? { shop: opts.shop } : {}),
            ...(opts.maxLag !== undefined ? { maxLagSeconds: opts.maxLag } : {}),
            ...(opts.budget !== undefined ? { budgetSeconds: opts.budget } : {}),
            ...(opts.allowDlq ? { allowDlq: true } : {}),
            verify: ({ shop }) => fullVerify(config, shop),
            v2Tables: ENTITIES,
            ...(process.env.REPLICATOR_FAULT_PAUSE_AFTER
              ? { pauseAfter: process.env.REPLICATOR_FAULT_PAUSE_AFTER }
              : {}),
          },
          ENTITY_TOPICS,
        );
        console.log(JSON.stringify(result));
      },
    );

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
