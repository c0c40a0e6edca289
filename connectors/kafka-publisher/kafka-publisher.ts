import type { OutMessage, Publisher } from '../../src/contracts/publisher.js';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { Lsn } from '../../src/core/lsn.js';
import { sleep } from '../../src/core/retry.js';

/** How sends are batched (the thread variant passes these on). */
export type KafkaPublisherTuning = Pick<
  KafkaPublisherOptions,
  'maxBatchBytes' | 'maxBatchMessages' | 'lingerMs'
>;

/** A message's weight against the buffer limits: its key and value bytes plus framing. */
export function messageBytes(key: number, value: number): number {
  return key + value + 64;
}

const byteLength = (v: string | Buffer) => (typeof v === 'string' ? Buffer.byteLength(v) : v.length);

/**
 * What the publisher needs of a Kafka client: an idempotent, acks=all producer that sends a batch in order and
 * throws if any of it was not acknowledged. Made anew after a failed send.
 */
export interface ProducerClient {
  connect(): Promise<void>;
  send(messages: readonly OutMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

export interface KafkaPublisherOptions {
  createProducer: () => ProducerClient;
  logger: Logger;
  /** Called with a position once every message queued before it is acknowledged (acks=all). */
  checkpoint: (lsn: Lsn) => void;
  /** Called after each batch Kafka acknowledged, with its size (as weighed against the buffer limits). */
  acknowledged?: (batch: { messages: number; bytes: number }) => void;
  maxBufferedMessages: number;
  maxBufferedBytes: number;
  /** Bytes per produce request; kept under the broker's default message.max.bytes (1 MiB per partition batch). */
  maxBatchBytes?: number;
  maxBatchMessages?: number;
  /** How long a partly filled batch waits for more before it is sent. */
  lingerMs?: number;
  /** Called with each failed send (or producer connect) that is retried (metrics). */
  onRetry?: (error: unknown) => void;
  /** Called when a new producer has connected after a failed send (metrics). */
  onReconnect?: () => void;
}

type Entry = { kind: 'message'; m: OutMessage; bytes: number } | { kind: 'mark'; lsn: Lsn };

/**
 * Batches messages into idempotent, acks=all produce requests, one request in flight, in queue order — so a
 * position is acknowledged only after everything before it. A failed send is retried (with a new producer and
 * backoff) until it succeeds or the publisher is closed: nothing is skipped, and no position passes a failure.
 */
export class KafkaPublisher implements Publisher {
  private queue: Entry[] = [];
  private head = 0;
  private bufferedMessages = 0;
  private bufferedBytes = 0;
  private producer: ProducerClient | undefined;
  private closed = false;
  private wake: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];
  private flushWaiters: { upTo: number; resolve: () => void }[] = [];
  /** Entries ever enqueued / ever completed: flush() waits for `completed` to reach `enqueued`. */
  private enqueued = 0;
  private completed = 0;
  private loopDone: Promise<void> | undefined;
  private fatal: unknown;
  private readonly maxBatchBytes: number;
  private readonly maxBatchMessages: number;
  private readonly lingerMs: number;

  constructor(private readonly o: KafkaPublisherOptions) {
    this.maxBatchBytes = o.maxBatchBytes ?? 900_000;
    this.maxBatchMessages = o.maxBatchMessages ?? 10_000;
    this.lingerMs = o.lingerMs ?? 2;
  }

  async start(): Promise<void> {
    this.producer = await this.connectProducer();
    this.loopDone = this.loop();
  }

  publish(m: OutMessage): boolean {
    this.throwIfFatal();
    const bytes = messageBytes(
      m.key === null ? 0 : byteLength(m.key),
      m.value === null ? 0 : byteLength(m.value),
    );
    this.push({ kind: 'message', m, bytes });
    this.bufferedMessages++;
    this.bufferedBytes += bytes;
    return !this.full();
  }

  mark(lsn: Lsn): void {
    this.throwIfFatal();
    this.push({ kind: 'mark', lsn });
  }

  drained(): Promise<void> {
    if (!this.full()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  flush(): Promise<void> {
    this.throwIfFatal();
    if (this.completed >= this.enqueued) return Promise.resolve();
    const upTo = this.enqueued;
    return new Promise((resolve) => {
      this.flushWaiters.push({ upTo, resolve });
      this.wake?.();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.loopDone;
    await this.producer?.disconnect().catch(() => {});
    this.producer = undefined;
  }

  get buffered(): { messages: number; bytes: number } {
    return { messages: this.bufferedMessages, bytes: this.bufferedBytes };
  }

  private full(): boolean {
    return (
      this.bufferedMessages >= this.o.maxBufferedMessages || this.bufferedBytes >= this.o.maxBufferedBytes
    );
  }

  private push(e: Entry): void {
    this.queue.push(e);
    this.enqueued++;
    if (this.wake && (this.queue.length - this.head >= this.maxBatchMessages || e.kind === 'mark'))
      this.wake();
  }

  private throwIfFatal(): void {
    if (this.fatal) throw this.fatal;
  }

  private async connectProducer(): Promise<ProducerClient> {
    const producer = this.o.createProducer();
    await producer.connect();
    return producer;
  }

  private waitForWork(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    let backoffMs = 250;
    while (!this.closed || this.head < this.queue.length) {
      if (this.head >= this.queue.length) {
        if (this.closed) break;
        await this.waitForWork(1_000);
        continue;
      }
      // Give a partly filled batch a moment to fill, unless someone is waiting for a flush.
      if (
        this.queue.length - this.head < this.maxBatchMessages &&
        this.flushWaiters.length === 0 &&
        !this.closed
      ) {
        await this.waitForWork(this.lingerMs);
      }
      const { end, messages, lastMark, count, bytes } = this.takeBatch();
      try {
        if (messages.length > 0) {
          if (!this.producer) {
            // Only a failed send drops the producer: this is a reconnect.
            this.producer = await this.connectProducer();
            this.o.onReconnect?.();
          }
          await this.producer.send(messages);
        }
      } catch (e) {
        if (this.closed) {
          this.o.logger.warn(
            { err: errorText(e) },
            'publisher closed with unsent messages; they will be re-read',
          );
          break;
        }
        this.o.onRetry?.(e);
        this.o.logger.warn({ err: errorText(e), retryInMs: backoffMs }, 'kafka send failed; retrying');
        const old = this.producer;
        this.producer = undefined;
        await old?.disconnect().catch(() => {});
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 10_000);
        continue;
      }
      backoffMs = 250;
      this.completed += end - this.head;
      this.head = end;
      this.bufferedMessages -= count;
      this.bufferedBytes -= bytes;
      if (messages.length > 0) this.o.acknowledged?.({ messages: count, bytes });
      // Drop what was sent now: a long-lived array of sent messages is what would hold memory, not the buffer.
      if (this.head >= 4096) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (lastMark !== undefined) {
        try {
          this.o.checkpoint(lastMark);
        } catch (e) {
          this.fatal = new ReplicatorError(ErrorCodes.ABORTED, 'checkpoint callback failed', { cause: e });
          break;
        }
      }
      this.settleWaiters();
    }
    this.settleWaiters();
  }

  private takeBatch() {
    const messages: OutMessage[] = [];
    let i = this.head;
    let count = 0;
    let bytes = 0;
    let lastMark: Lsn | undefined;
    for (; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (e.kind === 'mark') {
        lastMark = e.lsn;
        continue;
      }
      if (count > 0 && (count >= this.maxBatchMessages || bytes + e.bytes > this.maxBatchBytes)) break;
      messages.push(e.m);
      count++;
      bytes += e.bytes;
    }
    return { end: i, messages, lastMark, count, bytes };
  }

  private settleWaiters(): void {
    if (!this.full()) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
    const pending: typeof this.flushWaiters = [];
    for (const w of this.flushWaiters) {
      if (this.completed >= w.upTo || (this.closed && this.head >= this.queue.length)) w.resolve();
      else pending.push(w);
    }
    this.flushWaiters = pending;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
