import pg from 'pg';
import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import { type Logger, silentLogger } from '../../core/logger.js';
import type { ReplicatorConfig } from '../../pipeline/config/load-config.js';
import { runDeltaVerify } from '../verify/delta-verify.js';
import { runVerify, type VerifyReport } from '../verify/verify.js';
import { lastCleanFullRun } from '../verify/verify-store.js';
import type { VerifyOutcome } from './cutover.js';

/**
 * A verify report as the cutover reads it: clean or not, and one line — the entities that differ
 * ("bookings: 1 missing, 0 extra, 2 different; …"), or "N rows match".
 */
export function verifyOutcome(report: VerifyReport): VerifyOutcome {
  const summary = report.entities
    .filter((e) => e.missing || e.extra || e.different)
    .map((e) => `${e.entity}: ${e.missing} missing, ${e.extra} extra, ${e.different} different`)
    .join('; ');
  return {
    clean: report.clean,
    summary: summary || `${report.entities.reduce((n, e) => n + e.expected, 0)} rows match`,
  };
}

/** How the cutover's final verify runs (see finalVerify). */
export interface FinalVerifyOptions {
  /** A per-tenant cutover: that shop's bundles and their components and discounts, in full. */
  shop?: string;
  /** Letters in the dead-letter queue: changes the lineage does not record, so the delta would not see them. */
  deadLetters?: number;
  /** Compare everything (`--full-final-verify`, cutover.finalVerify: full). */
  full?: boolean;
}

/**
 * The final verify of a cutover. With writes fenced and the drain exact there is no lag to excuse, so nothing is
 * re-checked later: every difference is drift, and the run is not recorded in verify_runs (that record is
 * `replicator verify`'s, which the go/no-go reads).
 * - Delta (the default): only the V2 rows of legacy rows changed since the last clean full verify
 *   (delta-verify.ts) — in proportion to what changed, not to the tables.
 * - Full (`full`, a shop's cutover, letters in the DLQ, or no clean full verify with a recorded position to start
 *   from): `runVerify` over every entity (with `shop`: that shop's bundles, components and discounts).
 */
export async function finalVerify(
  config: ReplicatorConfig,
  o: FinalVerifyOptions = {},
  logger: Logger = silentLogger(),
): Promise<VerifyOutcome> {
  if (!config.target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'cutover verify needs target.url');
  const targetUrl = config.target.url;
  let why = config.cutover.finalVerify === 'full' || o.full ? 'asked for' : undefined;
  if (!why && o.shop !== undefined) why = `shop ${o.shop}`;
  if (!why && (o.deadLetters ?? 0) > 0) why = `${o.deadLetters} dead letter(s)`;
  const base = why ? undefined : await withTarget(targetUrl, lastCleanFullRun);
  if (!why && !base) why = 'no clean full verify to start from: run `replicator verify`';
  if (base) {
    const report = await runDeltaVerify({
      legacyUrl: config.source.url,
      targetUrl,
      since: base.settledLsn,
      queued: base.queue,
      logger,
    });
    const counts = new Map<string, Record<string, number>>();
    for (const d of report.drift) {
      const c = counts.get(d.entity) ?? { missing: 0, extra: 0, different: 0 };
      c[d.diff.kind] = (c[d.diff.kind] ?? 0) + 1;
      counts.set(d.entity, c);
    }
    const differences = [...counts]
      .map(([e, c]) => `${e}: ${c.missing} missing, ${c.extra} extra, ${c.different} different`)
      .join('; ');
    return {
      clean: report.clean,
      summary: `delta since ${report.since} (the verify of ${base.finishedAt}): ${report.legacyRows} legacy row(s) changed, ${report.keys} V2 row(s) compared${differences ? `; ${differences}` : ', all match'}`,
    };
  }
  const report = await runVerify({
    legacyUrl: config.source.url,
    targetUrl,
    ...(o.shop !== undefined ? { shop: o.shop } : {}),
    recheck: { rounds: 0 },
    persist: false,
    logger,
  });
  const outcome = verifyOutcome(report);
  return { ...outcome, summary: `full (${why}): ${outcome.summary}` };
}

async function withTarget<T>(url: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}
