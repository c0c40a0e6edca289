import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import { type Logger, silentLogger } from '../../core/logger.js';
import type { ReplicatorConfig } from '../../pipeline/config/load-config.js';
import { runVerify, type VerifyReport } from '../verify/verify.js';
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

/**
 * The final verify of a cutover: `runVerify` over every entity (with `shop`: that shop's bundles and their
 * components and discounts). With writes fenced and the drain exact there is no lag to excuse, so there is no
 * re-check (every difference of the comparison is drift, nothing waits for the sink), and the run is not recorded
 * in verify_runs (that record is `replicator verify`'s, which the go/no-go reads).
 */
export async function finalVerify(
  config: ReplicatorConfig,
  shop?: string,
  logger: Logger = silentLogger(),
): Promise<VerifyOutcome> {
  if (!config.target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'cutover verify needs target.url');
  const report = await runVerify({
    legacyUrl: config.source.url,
    targetUrl: config.target.url,
    ...(shop !== undefined ? { shop } : {}),
    recheck: { rounds: 0 },
    persist: false,
    logger,
  });
  return verifyOutcome(report);
}
