import { sleep } from '../../core/retry.js';
import type { StatusReport } from './read-status.js';
import { CLEAR_SCREEN, renderWatchFrame } from './render-watch-frame.js';
import { emptyHistory, pushSample, sampleOf } from './status-history.js';

export interface WatchOptions {
  /** Time from the start of one reading to the start of the next (a slower reading starts the next at once). */
  intervalMs: number;
  /** Stops the watch (Ctrl-C, SIGTERM). */
  signal: AbortSignal;
  /** A terminal: each frame replaces the last (ANSI clear + home); otherwise frames follow, a blank line apart. */
  tty: boolean;
  write: (text: string) => void;
  /** Samples drawn per sparkline. */
  keep?: number;
  now?: () => number;
}

/**
 * `replicator status --watch`: reads a status report (`read`, e.g. readStatus) every interval and writes a frame
 * of the recent history until `signal` aborts; returns the number of frames written. A reading still in flight
 * when the signal comes is not waited for: it only reads, and closes its own connections when it ends.
 */
export async function watchStatus(read: () => Promise<StatusReport>, o: WatchOptions): Promise<number> {
  const now = o.now ?? Date.now;
  const keep = o.keep ?? 30;
  const aborted = new Promise<undefined>((resolve) => {
    if (o.signal.aborted) resolve(undefined);
    o.signal.addEventListener('abort', () => resolve(undefined), { once: true });
  });
  let history = emptyHistory();
  let frames = 0;
  while (!o.signal.aborted) {
    const started = now();
    const reading = read();
    reading.catch(() => {}); // abandoned on abort: its failure, if any, no longer matters
    const report = await Promise.race([reading, aborted]);
    if (report === undefined) break;
    history = pushSample(history, sampleOf(report, started), keep);
    const frame = renderWatchFrame(history, { intervalMs: o.intervalMs, keep });
    o.write(o.tty ? `${CLEAR_SCREEN}${frame}` : `${frames > 0 ? '\n' : ''}${frame}`);
    frames++;
    await sleep(Math.max(0, started + o.intervalMs - now()), o.signal);
  }
  return frames;
}
