import pg from 'pg';
import type { V2Entity } from '../../src/contracts/transform-api.js';
import { createLogger, silentLogger } from '../../src/core/logger.js';
import { TEXT_FORMAT_OPTIONS, textTypes } from '../../src/core/pg-text-types.js';
import { parseConfig, type ReplicatorConfig } from '../../src/pipeline/config/load-config.js';
import { buildPipeline } from '../../src/pipeline/pipeline-builder.js';
import { transformModules } from '../../transforms/index.js';
import { LEGACY_DDL } from '../../transforms/legacy-schema.js';
import { V2_DDL, V2_KEYS } from '../../transforms/v2-schema.js';
import { freshDatabase, freshName, kafkaBrokers, withClient } from './resources.js';
import {
  diffStates,
  type EntityDiff,
  expectedV2,
  isClean,
  type LegacyRow,
  readLegacyRows,
  readTargetState,
} from './v2-oracle.js';

export const LEGACY_TABLES = [
  { schema: 'public', table: 'bookings', primaryKey: ['id'] },
  { schema: 'public', table: 'customers_kv', primaryKey: ['key'] },
  { schema: 'public', table: 'bundle_discount_id', primaryKey: ['id'] },
  { schema: 'public', table: 'ai_fbt_bundles', primaryKey: ['id'] },
];
export const ENTITIES = Object.keys(V2_KEYS) as V2Entity[];

/** Fresh legacy and V2 databases with the project's DDL, and a config naming fresh slot/topics/groups. */
export async function freshPipeline(
  label: string,
): Promise<{ legacyUrl: string; targetUrl: string; config: ReplicatorConfig }> {
  const legacy = await freshDatabase(`${label}_legacy`);
  const target = await freshDatabase(`${label}_v2`);
  await withClient(legacy.url, (c) => c.query(LEGACY_DDL));
  await withClient(target.url, (c) => c.query(V2_DDL));
  const config = parseConfig(
    {
      source: {
        url: legacy.url,
        tables: LEGACY_TABLES.map((t) => `${t.schema}.${t.table}`),
        slot: freshName('slot'),
        publication: freshName('pub'),
        statusIntervalMs: 200,
        heartbeatIntervalMs: 1000,
      },
      target: { url: target.url },
      kafka: { brokers: [kafkaBrokers()], topicPrefix: freshName('raw'), partitions: 3 },
      sink: { groupId: freshName('sgroup'), sessionTimeoutMs: 6000 },
    },
    {},
  );
  return { legacyUrl: legacy.url, targetUrl: target.url, config };
}

const testLogger = () =>
  process.env.REPLICATOR_TEST_LOG ? createLogger({ level: process.env.REPLICATOR_TEST_LOG }) : silentLogger();

/** All stages in this process. */
export function startPipeline(config: ReplicatorConfig, role: 'all' | 'source' | 'sink' = 'all') {
  const controller = new AbortController();
  const pipeline = buildPipeline(config, { role, logger: testLogger() });
  const running = pipeline.run(controller.signal);
  running.catch(() => {});
  return {
    pipeline,
    running,
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

/** Expected (from the legacy rows through the transforms) versus actual V2 rows. */
export async function compareTarget(legacyUrl: string, targetUrl: string): Promise<EntityDiff[]> {
  const legacy = new pg.Client({ connectionString: legacyUrl, options: TEXT_FORMAT_OPTIONS });
  await legacy.connect();
  let rows: LegacyRow[];
  try {
    rows = await readLegacyRows(legacy, LEGACY_TABLES);
  } finally {
    await legacy.end();
  }
  const expected = expectedV2(rows, transformModules, V2_KEYS).state;
  const target = new pg.Client({ connectionString: targetUrl, types: textTypes, options: '-c TimeZone=UTC' });
  await target.connect();
  try {
    return diffStates(expected, await readTargetState(target, V2_KEYS), ENTITIES);
  } finally {
    await target.end();
  }
}

/** Polls until the target equals the expectation (returns the last diff either way, for the assertion). */
export async function waitForConvergence(
  legacyUrl: string,
  targetUrl: string,
  maxWaitMs = 60_000,
): Promise<EntityDiff[]> {
  const deadline = Date.now() + maxWaitMs;
  let diff = await compareTarget(legacyUrl, targetUrl);
  while (!isClean(diff) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    diff = await compareTarget(legacyUrl, targetUrl);
  }
  return diff;
}

/** A readable summary for assertion messages. */
export const summary = (diffs: EntityDiff[]) =>
  diffs
    .filter((d) => d.missing.length || d.extra.length || d.different.length)
    .map(
      (d) =>
        `${d.entity}: missing ${d.missing.slice(0, 3).join(' ')}; extra ${d.extra.slice(0, 3).join(' ')}; different ${d.different
          .slice(0, 2)
          .map(
            (x) =>
              `${x.key} [${x.columns.join(',')}] exp=${JSON.stringify(x.expected)} act=${JSON.stringify(x.actual)}`,
          )
          .join(' | ')}`,
    )
    .join('\n');
