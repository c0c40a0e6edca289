/**
 * A FIFO between a push-style producer (a socket callback) and an async consumer loop, with high/low-water
 * callbacks so the producer can be paused. Closing ends the consumer's loop; failing makes `next()` reject.
 */
export class AsyncQueue<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: ((v: IteratorResult<T>) => void) | undefined;
  private failWaiter: ((e: unknown) => void) | undefined;
  private closed = false;
  private error: unknown;
  private overHigh = false;

  constructor(
    private readonly highWater: number,
    private readonly onHigh: () => void,
    private readonly onLow: () => void,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.closed) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      this.failWaiter = undefined;
      w({ value: item, done: false });
      return;
    }
    this.items.push(item);
    if (!this.overHigh && this.size >= this.highWater) {
      this.overHigh = true;
      this.onHigh();
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.head < this.items.length) {
      const value = this.items[this.head++] as T;
      if (this.head > 4096 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (this.overHigh && this.size <= this.highWater / 2) {
        this.overHigh = false;
        this.onLow();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }

  /** Ends the consumer's loop once the queued items are taken. */
  close(): void {
    this.closed = true;
    const w = this.waiter;
    this.waiter = undefined;
    this.failWaiter = undefined;
    w?.({ value: undefined, done: true });
  }

  /** Makes the consumer's next (or pending) `next()` reject at once, dropping queued items. */
  fail(e: unknown): void {
    if (this.error !== undefined) return;
    this.error = e;
    this.closed = true;
    this.items = [];
    this.head = 0;
    const f = this.failWaiter;
    this.waiter = undefined;
    this.failWaiter = undefined;
    f?.(e);
  }
}
