import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { OutMessage, Publisher } from '../../src/contracts/publisher.js';
import { type ErrorCode, ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import type { KafkaConnection } from '../../src/core/kafka-client.js';
import type { Logger } from '../../src/core/logger.js';
import type { Lsn } from '../../src/core/lsn.js';
import type { KafkaPublisherOptions, KafkaPublisherTuning } from './kafka-publisher.js';
import { ChunkWriter } from './message-chunk.js';

export type ToThread =
  | { type: 'start' }
  | { type: 'chunk'; chunk: ArrayBuffer }
  | { type: 'flush'; id: number }
  | { type: 'close' };

export type FromThread =
  | { type: 'started' }
  | { type: 'checkpoint'; lsn: Lsn }
  /** Totals since start: messages Kafka acknowledged and their weight (messageBytes). */
  | { type: 'acknowledged'; messages: number; bytes: number }
  | { type: 'flushed'; id: number }
  | { type: 'retry'; error: ErrorShape }
  | { type: 'reconnect' }
  | { type: 'log'; line: string }
  | { type: 'failed'; error: ErrorShape }
  | { type: 'closed' };

export interface ThreadedPublisherOptions
  extends Omit<
    KafkaPublisherOptions,
    'createProducer' | 'logger' | 'maxBatchBytes' | 'maxBatchMessages' | 'lingerMs'
  > {
  /** The brokers and credentials: the thread makes its own client. */
  connection: KafkaConnection;
  /** Which client produces (see platformatic-producer.ts); default platformatic. */
  client?: 'platformatic' | 'kafkajs';
  logger: Logger;
  tuning?: KafkaPublisherTuning;
}

/**
 * tsx's ESM API, found from this file: eval'd code resolves packages from the working directory, which may be
 * anywhere. Read from tsx's own exports map (its `import` entry).
 */
function tsxApi(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const { exports } = require(manifest) as { exports: Record<string, { import: { default: string } }> };
  return pathToFileURL(join(dirname(manifest), exports['./esm/api']!.import.default)).href;
}

/** An error as it crosses the thread boundary: what classifying it reads (names, codes, causes), no stack. */
export interface ErrorShape {
  name: string;
  message: string;
  code?: string;
  retriable?: boolean;
  cause?: ErrorShape;
}

export function toShape(e: unknown, depth = 0): ErrorShape {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const { code, retriable, cause } = e as Error & { code?: unknown; retriable?: unknown };
  return {
    name: e.name,
    message: e.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof retriable === 'boolean' ? { retriable } : {}),
    ...(cause !== undefined && depth < 5 ? { cause: toShape(cause, depth + 1) } : {}),
  };
}

function fromShape(s: ErrorShape): Error {
  const cause = s.cause ? fromShape(s.cause) : undefined;
  // Our own errors come back as themselves (their code decides retries and metrics).
  if (s.name === 'ReplicatorError' && s.code !== undefined && s.code in ErrorCodes)
    return new ReplicatorError(s.code as ErrorCode, s.message, cause ? { cause } : {});
  const e = new Error(s.message, cause ? { cause } : undefined);
  e.name = s.name;
  Object.assign(e, {
    ...(s.code !== undefined ? { code: s.code } : {}),
    ...(s.retriable !== undefined ? { retriable: s.retriable } : {}),
  });
  return e;
}

const PINO_LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

/**
 * The Kafka publisher on its own thread: the source's thread packs messages and positions into chunks (one
 * transferable buffer each, in stream order) and the thread's KafkaPublisher sends them. Producing (record batches,
 * CRCs, partitioning, the client's buffers and their garbage) was ~40 % of the source thread's time; here it runs
 * beside decoding and serialising. Semantics are KafkaPublisher's: positions reported only once everything before
 * them is acknowledged, failed sends retried in order; the buffer limits bound what is packed and not yet acknowledged.
 */
export class ThreadedPublisher implements Publisher {
  private worker: Worker | undefined;
  private readonly writer = new ChunkWriter();
  private posting = false;
  /** Totals since start: messages packed and their weight; acknowledged ones as the thread last reported. */
  private packedMessages = 0;
  private packedBytes = 0;
  private ackedMessages = 0;
  private ackedBytes = 0;
  private fatal: unknown;
  private drainWaiters: (() => void)[] = [];
  private flushes = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();
  private nextFlush = 0;
  private onStarted: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  private onClosed: (() => void) | undefined;

  constructor(private readonly o: ThreadedPublisherOptions) {}

  async start(): Promise<void> {
    const workerData = {
      connection: this.o.connection,
      client: this.o.client ?? 'platformatic',
      logLevel: this.o.logger.level,
      tuning: this.o.tuning ?? {},
    };
    // The thread holds at most the buffer limits' worth of small message objects (the bytes are the chunks, outside
    // the heap). Measured: young 16 MB runs as fast as the default and keeps a 1M-row transaction at ~237 MB RSS
    // (< 256 MB with the recommended main heap cap); 8 MB cost ~8 % of throughput, 32 MB reached 261 MB.
    const resourceLimits = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 };
    // Built, this module is .js beside publisher-thread.js. Run from source (tsx, vitest) it is .ts: the thread
    // registers tsx's loader itself, as a worker does not inherit the loader hooks of its parent.
    const worker = import.meta.url.endsWith('.ts')
      ? new Worker(
          `import(${JSON.stringify(tsxApi())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./publisher-thread.ts', import.meta.url).href)}); })`,
          { eval: true, workerData, resourceLimits },
        )
      : new Worker(new URL('./publisher-thread.js', import.meta.url), { workerData, resourceLimits });
    this.worker = worker;
    worker.on('message', (m: FromThread) => this.received(m));
    // A thread that cannot start (a missing file, a broken build) will not start on a retry either.
    worker.on('error', (e) => this.fail(e, this.onStarted === undefined));
    worker.on('exit', (code) => {
      if (this.onClosed) this.onClosed();
      else this.fail(new Error(`publisher thread exited with code ${code}`));
    });
    await new Promise<void>((resolve, reject) => {
      this.onStarted = { resolve, reject };
      this.send({ type: 'start' });
    });
  }

  publish(m: OutMessage): boolean {
    this.throwIfFatal();
    this.packedBytes += this.writer.message(m);
    this.packedMessages++;
    this.schedulePost();
    return !this.full();
  }

  mark(lsn: Lsn): void {
    this.throwIfFatal();
    this.writer.mark(lsn);
    this.schedulePost();
  }

  drained(): Promise<void> {
    if (!this.full() || this.fatal) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  flush(): Promise<void> {
    this.throwIfFatal();
    this.post();
    const id = this.nextFlush++;
    return new Promise((resolve, reject) => {
      this.flushes.set(id, { resolve, reject });
      this.send({ type: 'flush', id });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    if (!this.fatal) {
      this.post();
      await new Promise<void>((resolve) => {
        this.onClosed = resolve;
        this.send({ type: 'close' });
      });
    }
    this.onClosed ??= () => {};
    await worker.terminate();
    this.worker = undefined;
  }

  get buffered(): { messages: number; bytes: number } {
    return { messages: this.packedMessages - this.ackedMessages, bytes: this.packedBytes - this.ackedBytes };
  }

  private full(): boolean {
    return (
      this.packedMessages - this.ackedMessages >= this.o.maxBufferedMessages ||
      this.packedBytes - this.ackedBytes >= this.o.maxBufferedBytes
    );
  }

  private send(m: ToThread, transfer?: ArrayBuffer[]): void {
    this.worker?.postMessage(m, transfer);
  }

  /** A chunk goes to the thread when half full, else at the end of this turn of the event loop (latency). */
  private schedulePost(): void {
    if (this.writer.full) this.post();
    else if (!this.posting) {
      this.posting = true;
      setImmediate(() => this.post());
    }
  }

  private post(): void {
    this.posting = false;
    if (this.writer.entries === 0) return;
    const chunk = this.writer.take();
    this.send({ type: 'chunk', chunk }, [chunk]);
  }

  private received(m: FromThread): void {
    switch (m.type) {
      case 'started':
        this.onStarted?.resolve();
        this.onStarted = undefined;
        return;
      case 'checkpoint':
        try {
          this.o.checkpoint(m.lsn);
        } catch (e) {
          this.fail(new ReplicatorError(ErrorCodes.ABORTED, 'checkpoint callback failed', { cause: e }));
        }
        return;
      case 'acknowledged':
        this.o.acknowledged?.({
          messages: m.messages - this.ackedMessages,
          bytes: m.bytes - this.ackedBytes,
        });
        this.ackedMessages = m.messages;
        this.ackedBytes = m.bytes;
        if (!this.full()) {
          const waiters = this.drainWaiters;
          this.drainWaiters = [];
          for (const w of waiters) w();
        }
        return;
      case 'flushed':
        this.flushes.get(m.id)?.resolve();
        this.flushes.delete(m.id);
        return;
      case 'retry':
        this.o.onRetry?.(fromShape(m.error));
        return;
      case 'reconnect':
        this.o.onReconnect?.();
        return;
      case 'log': {
        const { level, msg, time: _t, pid: _p, hostname: _h, name: _n, ...rest } = JSON.parse(m.line);
        this.o.logger[PINO_LEVELS[level as number] ?? 'info'](rest, msg);
        return;
      }
      case 'failed':
        // Our own errors (a producer's KAFKA_UNREACHABLE, say) keep their code for retries and metrics.
        this.fail(fromShape(m.error));
        return;
      case 'closed':
        return;
    }
  }

  private fail(e: unknown, retryable = true): void {
    if (this.fatal) return;
    this.fatal =
      e instanceof ReplicatorError
        ? e
        : new ReplicatorError(ErrorCodes.ABORTED, 'publisher thread failed', { cause: e, retryable });
    this.onStarted?.reject(this.fatal);
    this.onStarted = undefined;
    for (const f of this.flushes.values()) f.reject(this.fatal);
    this.flushes.clear();
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private throwIfFatal(): void {
    if (this.fatal) throw this.fatal;
  }
}
