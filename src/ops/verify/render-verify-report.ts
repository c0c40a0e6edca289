import type { VerifyReport } from './verify.js';

const n = (x: number) => x.toLocaleString('en-US');
const pad = (s: string, w: number) => (s.length >= w ? s : s + ' '.repeat(w - s.length));
const lpad = (s: string, w: number) => (s.length >= w ? s : ' '.repeat(w - s.length) + s);

/** Columns left-aligned: the first, and those listed; the others (numbers) right-aligned. */
function table(head: string[], rows: string[][], left: readonly number[] = []): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 || left.includes(i) ? pad(c, widths[i]!) : lpad(c, widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)];
}

/** Where two JSON values differ, as paths (`contact.firstName`), at most `max`. */
function jsonPaths(a: unknown, b: unknown, path: string, out: string[], max = 3): void {
  if (out.length >= max) return;
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      jsonPaths(a[k], b[k], Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`, out, max);
    }
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.push(`${path}: expected ${short(a ?? null)}, actual ${short(b ?? null)}`);
  }
}

const short = (v: unknown) => {
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/** The human form of a verify report (stdout of `replicator verify` without --json). */
export function renderVerifyReport(r: VerifyReport): string {
  const out: string[] = [];
  out.push(
    `verify ${r.runId}  snapshot ${r.snapshotLsn}${r.shop !== null ? `  shop ${r.shop}` : ''}  ${r.clean ? 'CLEAN' : 'DRIFT'}`,
    `${n(r.legacyRows)} legacy rows, ${n(r.targetRows)} target rows in ${r.seconds.toFixed(1)} s (${n(r.rowsPerSecond)} legacy rows/s)`,
    '',
  );
  out.push(
    ...table(
      ['entity', 'expected', 'actual', 'chunks', 'mismatched', 'missing', 'extra', 'different', 'in flux'],
      r.entities.map((e) => [
        e.entity,
        n(e.expected),
        n(e.actual),
        n(e.chunks),
        n(e.mismatchedChunks),
        n(e.missing),
        n(e.extra),
        n(e.different),
        n(e.inFlux),
      ]),
    ),
  );
  if (r.shops.length > 0) {
    out.push('', 'per shop (expected/actual):');
    out.push(
      ...table(
        ['shop', 'bundles', 'components', 'discounts', 'drift'],
        r.shops.map((s) => [
          s.shop,
          `${n(s.bundles.expected)}/${n(s.bundles.actual)}`,
          `${n(s.components.expected)}/${n(s.components.actual)}`,
          `${n(s.discounts.expected)}/${n(s.discounts.actual)}`,
          n(s.drift),
        ]),
      ),
    );
  }
  out.push('', 'legacy rows (unmigrated: rejected by a transform, dead-lettered by the pipeline):');
  out.push(
    ...table(
      ['table', 'rows', 'migrated', 'skipped', 'rejected', 'reasons'],
      r.legacy.map((t) => {
        const rejected = Object.values(t.rejected).reduce((a, b) => a + b, 0);
        return [
          t.table,
          n(t.rows),
          n(t.migrated),
          n(t.skipped),
          n(rejected),
          Object.entries(t.rejected)
            .map(([k, v]) => `${k} ${n(v)}`)
            .join(', ') || '-',
        ];
      }),
      [5],
    ),
  );
  const rc = r.recheck;
  out.push(
    '',
    `re-verify queue: ${n(rc.queued)} key(s) differed in the first pass; ${n(rc.resolved)} resolved as lag, ${n(rc.inFlux)} still changing (left queued)${rc.timedOut ? '; the sink did not reach a re-check snapshot in time, so what differs may include lag' : ''}`,
  );
  for (const round of rc.rounds) {
    out.push(
      `  round ${round.round}: snapshot ${round.snapshotLsn}${round.applied ? '' : ' (sink not there in time)'}, ${n(round.keys)} key(s): ${n(round.resolved)} resolved, ${n(round.confirmed)} confirmed drift, ${n(round.inFlux)} in flux (${round.seconds.toFixed(1)} s)`,
    );
  }
  if (r.repair) {
    const p = r.repair;
    out.push(
      '',
      `repair: ${n(p.keys)} drifted key(s); re-emitted ${n(p.reads)} legacy row(s) and ${n(p.deletes)} delete(s) at ${p.lsn}; ${n(p.fixed)} fixed, ${n(p.unrepairable)} not repairable through the pipeline (no legacy row produces them)`,
    );
  }
  const samples = r.entities.flatMap((e) => e.samples);
  if (samples.length > 0) {
    out.push('', 'drift (samples):');
    for (const s of samples) {
      out.push(`  ${s.entity} ${s.kind} ${JSON.stringify(s.key)}`);
      if (s.kind === 'different') {
        for (const c of s.columns) {
          const paths: string[] = [];
          jsonPaths(s.expected?.[c] ?? null, s.actual?.[c] ?? null, c, paths);
          for (const p of paths) out.push(`    ${p}`);
        }
      }
      if (s.sources.length > 0)
        out.push(
          `    from ${s.sources
            .slice(0, 3)
            .map((x) => `${x.table} ${JSON.stringify(x.key)}`)
            .join(', ')}${s.sources.length > 3 ? ` and ${s.sources.length - 3} more` : ''}`,
        );
    }
  }
  return `${out.join('\n')}\n`;
}
