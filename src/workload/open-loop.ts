import type { Write } from './legacy-workload.js';

/**
 * An open-loop load: write i is due at start + i/rate and is issued then, whatever the earlier writes are doing
 * (they run concurrently, through the caller's pool). Each write's latency runs from the moment it was due to its
 * commit, so a database that slows down shows as latency instead of silently lowering the offered rate
 * (no coordinated omission).
 */

export interface OpenLoopOptions {
  /** Writes per second offered. */
  rate: number;
  durationMs: number;
  /** The next write (called once per due write, in order). */
  next: () => Write;
  /** Runs one write to its commit (e.g. `pool.query(w.sql, w.params)`). */
  execute: (w: Write) => Promise<unknown>;
  /** Stops issuing early; writes already issued are still awaited. */
  signal?: AbortSignal;
  /** Called every `intervalMs` with the writes completed since the previous call. */
  onInterval?: (s: IntervalStats) => void;
  intervalMs?: number;
  /** For tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface IntervalStats {
  /** Seconds since the start. */
  elapsed: number;
  issued: number;
  committed: number;
  failed: number;
  /** Commits per second over the interval. */
  rate: number;
  p50: number;
  p99: number;
}

export interface OpenLoopResult {
  offeredRate: number;
  issued: number;
  committed: number;
  failed: number;
  /** Seconds from the start to the last write's completion. */
  seconds: number;
  /** Writes issued per second over the issuing period. */
  issueRate: number;
  /** Commits per second from the start to the last commit (at least over the issuing period). */
  achievedRate: number;
  /** Commit latency (ms, from when a write was due to its commit). */
  latency: { p50: number; p99: number; max: number; mean: number };
  /** Writes issued more than 10 ms after they were due (the generator itself fell behind). */
  late: number;
  /** Failures by error message (first 200 characters), with counts. */
  errors: Record<string, number>;
  /** Writes issued, by kind. */
  kinds: Record<string, number>;
}

/** The nearest-rank percentile of sorted values; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** `90`, `90s`, `1500ms`, `2m` → milliseconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new Error(`not a duration: ${JSON.stringify(v)} (60, 60s, 1500ms or 2m)`);
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (ms <= 0) throw new Error('a duration must be positive');
  return ms;
}

/** When write i is due (ms after the start) at `rate` writes per second. */
export const dueAt = (i: number, rate: number): number => (i * 1000) / rate;

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runOpenLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const now = o.now ?? (() => performance.now());
  const sleep = o.sleep ?? realSleep;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  let issued = 0;
  let failed = 0;
  let lastDone = 0;
  let late = 0;
  const inflight = new Set<Promise<void>>();
  const start = now();

  let windowLat: number[] = [];
  let windowFailed = 0;
  let windowStart = start;
  const intervalMs = o.intervalMs ?? 5_000;
  const report = () => {
    const t = now();
    const sorted = windowLat.sort((a, b) => a - b);
    o.onInterval?.({
      elapsed: (t - start) / 1000,
      issued,
      committed: latencies.length,
      failed,
      rate: sorted.length / Math.max(0.001, (t - windowStart) / 1000),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
    });
    windowLat = [];
    windowFailed = 0;
    windowStart = t;
  };
  let nextReport = start + intervalMs;

  while (!o.signal?.aborted) {
    // Compared before adding `start`: (start + 400) - start can come out as 399.99999…, one write too many.
    if (dueAt(issued, o.rate) >= o.durationMs) break;
    const due = start + dueAt(issued, o.rate);
    const t = now();
    if (o.onInterval && t >= nextReport) {
      report();
      nextReport += intervalMs;
    }
    if (due > t) {
      await sleep(Math.min(due - t, nextReport - t > 0 ? nextReport - t : due - t));
      continue;
    }
    if (t - due > 10) late++;
    const w = o.next();
    issued++;
    kinds[w.kind] = (kinds[w.kind] ?? 0) + 1;
    const p: Promise<void> = o.execute(w).then(
      () => {
        const done = now();
        latencies.push(done - due);
        windowLat.push(done - due);
        lastDone = Math.max(lastDone, done);
      },
      (e: unknown) => {
        failed++;
        windowFailed++;
        lastDone = Math.max(lastDone, now());
        const msg = (e instanceof Error ? e.message : String(e)).slice(0, 200);
        errors[msg] = (errors[msg] ?? 0) + 1;
      },
    );
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }
  const issuedFor = Math.max(0.001, (now() - start) / 1000, o.signal?.aborted ? 0 : o.durationMs / 1000);
  await Promise.all(inflight);
  if (o.onInterval && windowLat.length + windowFailed > 0) report();
  const seconds = Math.max(0.001, ((lastDone || now()) - start) / 1000);
  const sorted = latencies.sort((a, b) => a - b);
  return {
    offeredRate: o.rate,
    issued,
    committed: sorted.length,
    failed,
    seconds,
    issueRate: issued / issuedFor,
    achievedRate: sorted.length / Math.max(seconds, issuedFor),
    latency: {
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
      mean: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : Number.NaN,
    },
    late,
    errors,
    kinds,
  };
}
