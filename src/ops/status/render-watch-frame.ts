import { bytes } from './render-status.js';
import { sparkline } from './sparkline.js';
import { type StatusHistory, seriesOf } from './status-history.js';

/** ANSI: clear the screen and put the cursor home, before each frame on a terminal. */
export const CLEAR_SCREEN = '\x1b[2J\x1b[H';

const count = (n: number | null) => (n === null ? '?' : n.toLocaleString('en-US'));
const rate = (r: number | null | undefined) => (r === null || r === undefined ? '-/s' : `${r.toFixed(1)}/s`);

/**
 * One frame of `replicator status --watch`: health, then one row per quantity with its latest value and a
 * sparkline of its last `keep` samples (rates: one per pair of successive samples), then the latest problems and
 * warnings. Plain text; the caller clears the screen (a terminal) or separates frames (anything else).
 */
export function renderWatchFrame(
  history: StatusHistory,
  options: { intervalMs: number; keep?: number },
): string {
  const keep = options.keep ?? 30;
  const every = `every ${options.intervalMs / 1000} s`;
  const last = history.samples.at(-1);
  if (!last) return `replicator status --watch: reading…  (${every}; Ctrl-C stops)\n`;
  const s = seriesOf(history);
  const line = (label: string, value: string, values: (number | null)[]) =>
    `${label.padEnd(20)}${value.padEnd(26)}${sparkline(values, keep)}`.trimEnd();
  const problems = last.problems.length;
  const drawn = Math.min(keep, history.samples.length);
  const out = [
    `replicator status --watch: ${last.healthy ? 'HEALTHY' : `UNHEALTHY (${problems} problem${problems === 1 ? '' : 's'})`}`,
    `${new Date(last.at).toISOString()}  ${every}; Ctrl-C stops`,
    '',
    `${''.padEnd(20)}${'now'.padEnd(26)}last ${drawn} sample${drawn === 1 ? '' : 's'}`,
    line('source lag', last.sourceLagBytes === null ? '?' : bytes(last.sourceLagBytes), s.sourceLagBytes),
    line(
      'replication lag',
      last.lagSeconds === null ? 'unknown' : `${last.lagSeconds.toFixed(1)} s`,
      s.lagSeconds,
    ),
    line(
      'changes/s (source)',
      `${rate(s.publishedPerSecond.at(-1))} (total ${count(last.published)})`,
      s.publishedPerSecond,
    ),
    line(
      'applied/s (sink)',
      `${rate(s.appliedPerSecond.at(-1))} (total ${count(last.applied)})`,
      s.appliedPerSecond,
    ),
    line('dlq', count(last.dlq), s.dlq),
    line('cutover', last.cutoverPhase ?? 'unknown', s.cutoverPhase),
  ];
  if (last.problems.length > 0) out.push('', 'problems:', ...last.problems.map((p) => `  - ${p}`));
  if (last.warnings.length > 0) out.push('', 'warnings:', ...last.warnings.map((w) => `  - ${w}`));
  return `${out.join('\n')}\n`;
}
