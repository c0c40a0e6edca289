import type { Lsn } from '../core/lsn.js';

/** One record for Kafka. An explicit partition is for broadcasts (truncate, fence markers) to every partition. */
export interface OutMessage {
  topic: string;
  key: string | null;
  value: string | Buffer;
  partition?: number;
  headers?: Record<string, string>;
}

/**
 * The source's output stage. Messages and positions are queued in stream order; a position is reported to
 * `checkpoint` (a function given at construction) only once every message queued before it is acknowledged,
 * so the caller may then tell PostgreSQL that the WAL up to that position can go.
 */
export interface Publisher {
  /** Queues a message; false when the buffer is over its limit and the caller should wait for `drained()`. */
  publish(m: OutMessage): boolean;
  /** Queues a position; see the interface comment. */
  mark(lsn: Lsn): void;
  /** Resolves when the buffer is back under its low-water mark. */
  drained(): Promise<void>;
  /** Resolves when everything queued so far is acknowledged. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
