import { CUTOVER_PHASES, type CutoverPhase, phaseNumber } from '../../contracts/cutover-phase.js';
import type { StatusReport } from './read-status.js';

/** What `status --watch` keeps of one status report: gauges, counters (rates come from two of them) and health. */
export interface StatusSample {
  /** When the report was read (ms since the epoch). */
  at: number;
  healthy: boolean;
  problems: string[];
  warnings: string[];
  /** WAL the source has not confirmed yet (slot lag, bytes). */
  sourceLagBytes: number | null;
  /** Age of the newest commit the sink applied (seconds). */
  lagSeconds: number | null;
  /** Counter: changes published to the change topics. */
  published: number | null;
  /** Counter: changes the sink consumed (applied or dead-lettered). */
  applied: number | null;
  dlq: number | null;
  /** The latest cutover's phase; 'none' when no cutover has run, null when unknown. */
  cutoverPhase: string | null;
}

/** The recent samples, oldest first. */
export interface StatusHistory {
  samples: StatusSample[];
}

export const emptyHistory = (): StatusHistory => ({ samples: [] });

export function sampleOf(r: StatusReport, at: number): StatusSample {
  const c = r.cutover;
  return {
    at,
    healthy: r.healthy,
    problems: r.problems,
    warnings: r.warnings,
    sourceLagBytes: r.source.lagBytes ?? null,
    lagSeconds: r.target?.lagSeconds ?? null,
    published: r.kafka.publishedChanges,
    applied: r.target?.appliedChanges ?? null,
    dlq: r.kafka.dlq.messages,
    cutoverPhase:
      c.state === 'present' ? String(c.rows[0]?.phase ?? 'unknown') : c.state === 'none' ? 'none' : null,
  };
}

/**
 * The per-second rate of a counter between two readings; null when either is unknown, no time passed, or the
 * counter went down (its topics or offsets were recreated: no rate is better than a negative one).
 */
export function perSecond(
  prev: { at: number; value: number | null },
  next: { at: number; value: number | null },
): number | null {
  if (prev.value === null || next.value === null) return null;
  const seconds = (next.at - prev.at) / 1000;
  const delta = next.value - prev.value;
  if (!(seconds > 0) || delta < 0) return null;
  return delta / seconds;
}

/**
 * `history` with `sample` appended, keeping `keep` samples plus the one before them (the first of `keep` rates
 * needs it). A new array: the caller's history is not changed.
 */
export function pushSample(history: StatusHistory, sample: StatusSample, keep = 30): StatusHistory {
  return { samples: [...history.samples, sample].slice(-(keep + 1)) };
}

/** The series the watch view draws, one value per sample (the oldest sample's rates: null, no earlier reading). */
export interface StatusSeries {
  sourceLagBytes: (number | null)[];
  lagSeconds: (number | null)[];
  publishedPerSecond: (number | null)[];
  appliedPerSecond: (number | null)[];
  dlq: (number | null)[];
  /** phaseNumber of each sample's phase (none: null). */
  cutoverPhase: (number | null)[];
}

const PHASES: ReadonlySet<string> = new Set<string>([
  ...CUTOVER_PHASES,
  'aborted',
  'rolled-back',
  'dry-run',
  'finalized',
]);

export function seriesOf(history: StatusHistory): StatusSeries {
  const s = history.samples;
  const rate = (key: 'published' | 'applied') =>
    s.map((x, i) =>
      i === 0 ? null : perSecond({ at: s[i - 1]!.at, value: s[i - 1]![key] }, { at: x.at, value: x[key] }),
    );
  return {
    sourceLagBytes: s.map((x) => x.sourceLagBytes),
    lagSeconds: s.map((x) => x.lagSeconds),
    publishedPerSecond: rate('published'),
    appliedPerSecond: rate('applied'),
    dlq: s.map((x) => x.dlq),
    cutoverPhase: s.map((x) =>
      x.cutoverPhase !== null && PHASES.has(x.cutoverPhase)
        ? phaseNumber(x.cutoverPhase as CutoverPhase)
        : null,
    ),
  };
}
