import type pg from 'pg';
import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import { type Logger, silentLogger } from '../../core/logger.js';
import type { ReplicatorConfig } from '../../pipeline/config/load-config.js';
import { startDeltaVerify } from '../verify/delta-verify.js';
import { connect, runVerify, type VerifyReport } from '../verify/verify.js';
import { lastCleanFullRun } from '../verify/verify-store.js';
import type { FinalVerifyRun, VerifyOutcome } from './cutover.js';

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
  /** Compare everything (`--full-final-verify`; cutover.finalVerify chooses otherwise: auto, delta or full). */
  full?: boolean;
  /**
   * Settles once legacy is fenced: the choice between delta and full, the connections and the catalog reads are
   * done before (outside the window), the reads of rows after. Absent: legacy is fenced already.
   */
  fenced?: Promise<void>;
}

/**
 * The final verify of a cutover. With writes fenced and the drain exact there is no lag to excuse, so nothing is
 * re-checked later: every difference is drift, and the run is not recorded in verify_runs (that record is
 * `replicator verify`'s, which the go/no-go reads).
 * - Delta (cutover.finalVerify delta, or auto while few rows changed): only the V2 rows of legacy rows changed
 *   since the last clean full verify (delta-verify.ts) — in proportion to what changed, not to the tables.
 * - Full (`full`, a shop's cutover, letters in the DLQ, no clean full verify with a recorded position to start
 *   from, or so much changed since that the full one is quicker): `runVerify` over every entity (with `shop`: that
 *   shop's bundles, components and discounts).
 */
export function finalVerify(
  config: ReplicatorConfig,
  o: FinalVerifyOptions = {},
  logger: Logger = silentLogger(),
): Promise<VerifyOutcome> {
  return startFinalVerify(config, o, logger).drained();
}

/**
 * finalVerify prepared before the fence and begun as it is taken (the cutover's, `fenced`): the delta reads the
 * legacy side of what changed while the drain runs, and compares once it is exact (`drained`); the full one reads
 * and transforms every legacy row while the drain runs (legacy is fenced: its snapshot is final) and hashes the
 * target's chunks once it is exact. Which one is chosen from what the lineage held at the start.
 */
export function startFinalVerify(
  config: ReplicatorConfig,
  o: FinalVerifyOptions = {},
  logger: Logger = silentLogger(),
): FinalVerifyRun {
  const target = config.target;
  if (!target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'cutover verify needs target.url');
  // The full verify's snapshots: legacy's once fenced (its rows are read and transformed while the drain runs), the
  // target's once the drain is exact (`drained`); both rejected when the attempt is abandoned.
  const abandoning = new AbortController();
  const abandoned = new Promise<never>((_, reject) =>
    abandoning.signal.addEventListener(
      'abort',
      () => reject(new ReplicatorError(ErrorCodes.CUTOVER_FAILED, 'final verify abandoned')),
      { once: true },
    ),
  );
  abandoned.catch(() => {});
  let drainExact = () => {};
  let waiting = () => {};
  const snapshotsAfter = {
    ...(o.fenced ? { legacy: Promise.race([o.fenced, abandoned]) } : {}),
    target: Promise.race([new Promise<void>((resolve) => (drainExact = resolve)), abandoned]),
    waiting: () => waiting(),
  };
  // Unused by the delta: rejected unobserved when it is abandoned.
  for (const gate of [snapshotsAfter.legacy, snapshotsAfter.target]) gate?.catch(() => {});
  // The full verify's: connected and its catalogs read, waiting for the fence.
  const waited = new Promise<void>((resolve) => (waiting = resolve));
  const full = (why: string) => {
    const report = runVerify({
      legacyUrl: config.source.url,
      targetUrl: target.url,
      ...(o.shop !== undefined ? { shop: o.shop } : {}),
      recheck: { rounds: 0 },
      persist: false,
      logger,
      snapshotsAfter,
    });
    report.catch(() => {});
    report.finally(waiting).catch(() => {});
    return { kind: 'full' as const, why, report };
  };
  let begun = (async () => {
    const base = await withTarget(target.url, async (c) => {
      const run = await lastCleanFullRun(c);
      return run
        ? { ...run, changed: await changedSince(c, run.settledLsn), rows: run.legacyRows, users: run.users }
        : undefined;
    });
    const why = whyFullFinalVerify({ ...o, mode: config.cutover.finalVerify, base });
    if (!base || why) return full(why ?? 'no base');
    const delta = startDeltaVerify({
      legacyUrl: config.source.url,
      targetUrl: target.url,
      since: base.settledLsn,
      queued: base.queue,
      ...(o.fenced ? { fenced: o.fenced } : {}),
      logger,
    });
    return { kind: 'delta' as const, base, delta };
  })();
  begun.catch(() => {});
  const prepared = begun.then((b) => (b.kind === 'delta' ? b.delta.prepared : waited));
  prepared.catch(() => {});
  return {
    prepared,
    fencing: async () => {
      const b = await begun;
      if (b.kind !== 'delta') return;
      // Chosen at the start, before the cutover waited for a lull: legacy took writes meanwhile.
      const changed = await withTarget(target.url, (c) => changedSince(c, b.base.settledLsn)).catch(
        () => undefined,
      );
      if (changed === undefined) return;
      const why = whyFullFinalVerify({
        ...o,
        mode: config.cutover.finalVerify,
        base: { ...b.base, changed },
      });
      if (!why) return;
      await b.delta.abandon();
      begun = Promise.resolve(full(`${why}, by the fence`));
      await waited;
    },
    drained: async () => {
      const b = await begun;
      if (b.kind === 'delta') {
        const report = await b.delta.finish();
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
          summary: `delta since ${report.since} (the verify of ${b.base.finishedAt}): ${report.legacyRows} legacy row(s) changed, ${report.keys} V2 row(s) compared (${report.byValue} by value) in ${report.seconds.toFixed(2)} s (${report.finishSeconds.toFixed(2)} s after the drain: ${Object.entries(
            report.finishMs,
          )
            .map(([k, v]) => `${k} ${v} ms`)
            .join(', ')})${differences ? `; ${differences}` : ', all match'}`,
        };
      }
      const called = Date.now();
      drainExact();
      const report = await b.report;
      const outcome = verifyOutcome(report);
      return {
        ...outcome,
        summary: `full (${b.why}): ${outcome.summary} (${((Date.now() - called) / 1000).toFixed(2)} s after the drain: legacy side ${report.targetMs.legacy} ms, target hashes ${report.targetMs.hashes} ms, compare ${report.targetMs.compare} ms)`,
      };
    },
    abandon: async () => {
      abandoning.abort();
      const b = await begun.catch(() => undefined);
      if (b?.kind === 'delta') await b.delta.abandon();
      // Ends at its next legacy batch, its connections closed.
      else await b?.report.catch(() => {});
    },
  };
}

/**
 * Why the final verify must be a full one, or undefined for the delta. `base`: the last clean full verify, with the
 * legacy rows changed since (`changed`), and the legacy rows (`rows`) and V2 users (`users`) it counted.
 */
export function whyFullFinalVerify(o: {
  mode: 'auto' | 'delta' | 'full';
  full?: boolean;
  shop?: string;
  deadLetters?: number;
  base?: { changed: number; rows: number; users: number };
}): string | undefined {
  if (o.mode === 'full' || o.full) return 'asked for';
  if (o.shop !== undefined) return `shop ${o.shop}`;
  if ((o.deadLetters ?? 0) > 0) return `${o.deadLetters} dead letter(s)`;
  if (!o.base) return 'no clean full verify to start from: run `replicator verify`';
  // The delta reads each changed row and, for its user, the user's other rows: about changed × (1 + rows per user)
  // legacy rows, each costing it ~10× what a row costs the full verify (looked up one by one, not hashed in
  // chunks). Past a tenth of the rows the full one is the quicker.
  const perUser = o.base.rows / Math.max(1, o.base.users);
  const reads = o.base.changed * (1 + perUser);
  if (o.mode === 'auto' && reads * 10 > o.base.rows)
    return `${o.base.changed} of ~${Math.round(o.base.rows)} legacy rows changed since the last verify, ~${Math.round(perUser)} per user: the full verify is the quicker`;
  return undefined;
}

/** Legacy rows the sink applied a change of since `lsn` (an index-only count). */
async function changedSince(c: pg.ClientBase, lsn: string): Promise<number> {
  const { rows } = await c.query<{ n: number }>(
    'SELECT count(*)::float8 AS n FROM replicator.lineage WHERE commit_lsn >= $1::pg_lsn',
    [lsn],
  );
  return rows[0]!.n;
}

async function withTarget<T>(url: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  const client = await connect(url, {}, 'target');
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}
