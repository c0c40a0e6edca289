import { isTransient } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { sleep } from '../../src/core/retry.js';

/** Derived rows (users) to recompute after apply transactions committed, and the position they bring `applied` to. */
export interface Settlement {
  keys: string[];
  /** replicator.pending_derived ids these keys were queued under. */
  ids: string[];
  newestTs: string | undefined;
  newestLsn: bigint | undefined;
}

export interface SettlerOptions {
  /** One settle transaction (recompute `work.keys`, delete `work.ids`, advance `applied`). */
  settle: (work: Settlement) => Promise<void>;
  /** Recomputes whatever pending_derived holds (work a failed or crashed attempt left queued). */
  sweep: () => Promise<void>;
  logger: Logger;
  /** Above this many keys handed over and not settled, `submit` waits (the recompute falls behind). */
  maxPendingKeys?: number;
  /** Called with each error a settle attempt failed on and that is retried (metrics). */
  onRetry?: (error: unknown) => void;
}

/**
 * Settles the derived rows of every partition's batches in one place, one transaction at a time. A batch hands its
 * work over once its apply transaction has committed and goes on with its next batch; each settle takes everything
 * handed over so far, keys of several batches and partitions merged — so partitions neither wait for their own
 * recompute nor for each other's locks on shared emails, and a key touched by many batches is recomputed once. What
 * is handed over is also queued in replicator.pending_derived (by the apply path), so a crash loses nothing: the
 * next session sweeps it.
 */
export class Settler {
  private queue: Settlement[] = [];
  private pendingKeys = 0;
  private sweepDue = true;
  private wake: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];
  private roomWaiters: (() => void)[] = [];
  private busy = false;
  private fatal: unknown;
  /** Rejects with an error retrying cannot fix (the caller ends the session). */
  readonly failed: Promise<never>;
  private fail!: (e: unknown) => void;

  constructor(private readonly o: SettlerOptions) {
    this.failed = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.failed.catch(() => {});
  }

  /** Hands work over; waits only while too much is waiting to be settled. */
  async submit(work: Settlement): Promise<void> {
    if (this.fatal) throw this.fatal;
    this.queue.push(work);
    this.pendingKeys += work.keys.length;
    this.wake?.();
    while (this.pendingKeys > (this.o.maxPendingKeys ?? 50_000) && !this.fatal) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  /** Something may have been left in pending_derived (a failed attempt, another instance): sweep it next. */
  markUnsettled(): void {
    this.sweepDue = true;
    this.wake?.();
  }

  /** Resolves once nothing handed over is left to settle. */
  idle(): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Settles until `signal` aborts; then finishes what was handed over (unless the target is gone). */
  async run(signal: AbortSignal): Promise<void> {
    let backoff = 200;
    const onAbort = () => this.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    while (!signal.aborted || this.queue.length > 0) {
      if (this.queue.length === 0 && !this.sweepDue) {
        this.settleWaiters();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          if (signal.aborted) resolve();
        });
        this.wake = undefined;
        continue;
      }
      this.busy = true;
      const taken = this.queue;
      this.queue = [];
      try {
        if (this.sweepDue) {
          this.sweepDue = false;
          await this.o.sweep();
        }
        if (taken.length > 0) await this.o.settle(merge(taken));
        backoff = 200;
        this.pendingKeys -= taken.reduce((n, w) => n + w.keys.length, 0);
      } catch (e) {
        // Put the work back in front; the keys are queued in pending_derived anyway, so a sweep would find them too.
        this.queue = [...taken, ...this.queue];
        this.sweepDue = true;
        if (!isTransient(e) || signal.aborted) {
          this.fatal = e;
          this.busy = false;
          signal.removeEventListener('abort', onAbort);
          this.settleWaiters();
          this.fail(e);
          return;
        }
        this.o.onRetry?.(e);
        this.o.logger.warn(
          { err: e instanceof Error ? e.message : String(e), retryInMs: backoff },
          'settling derived rows failed; retrying',
        );
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 10_000);
      } finally {
        this.busy = false;
      }
      this.settleWaiters();
    }
    signal.removeEventListener('abort', onAbort);
    this.settleWaiters();
  }

  private settleWaiters(): void {
    if (this.pendingKeys <= (this.o.maxPendingKeys ?? 50_000) || this.fatal) {
      const room = this.roomWaiters;
      this.roomWaiters = [];
      for (const w of room) w();
    }
    if ((!this.busy && this.queue.length === 0) || this.fatal) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of idle) w();
    }
  }
}

/** Several batches' work as one: keys deduplicated, the newest position of all. */
export function merge(works: readonly Settlement[]): Settlement {
  let newestTs: string | undefined;
  let newestLsn: bigint | undefined;
  for (const w of works) {
    if (w.newestTs && (!newestTs || w.newestTs > newestTs)) newestTs = w.newestTs;
    if (w.newestLsn !== undefined && (newestLsn === undefined || w.newestLsn > newestLsn))
      newestLsn = w.newestLsn;
  }
  return {
    keys: [...new Set(works.flatMap((w) => w.keys))],
    ids: works.flatMap((w) => w.ids),
    newestTs,
    newestLsn,
  };
}
