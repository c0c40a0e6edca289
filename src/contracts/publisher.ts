import type { Lsn } from '../core/lsn.js';

/** One record for Kafka. An explicit partition is for broadcasts (truncate, fence markers) to every partition. */
export interface OutMessage {
  topic: string;
  key: string | Buffer | null;
  /** null: a tombstone (after a delete, so a compacted topic forgets the key). */
  value: string | Buffer | null;
  partition?: number;
  headers?: Record<string, string>;
  /** Where the change came from — its LSN, or 'snapshot' — for diagnostics (an oversized change's dead letter). */
  position?: string;
  /** schema.table of the change, when the message is one. */
  table?: string;
}

/**
 * The source's output stage. Messages and positions are queued in stream order; a position is reported to
 * `checkpoint` (a function given at construction) only once every message queued before it is acknowledged,
 * so the caller may then tell PostgreSQL that the WAL up to that position can go.
 */
export interface Publisher {
  /** Connects; call once before publishing. */
  start(): Promise<void>;
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

/** Options of a publisher the source creates per session (its own buffer limits and acknowledgement callback). */
export interface PublisherSettings {
  /** Called with a position once every message queued before it is acknowledged. */
  checkpoint: (lsn: Lsn) => void;
  /** Called whenever Kafka acknowledges messages (a position or not): the stream is moving. */
  acknowledged?: () => void;
  maxBufferedMessages: number;
  maxBufferedBytes: number;
}

/** Small durable key → JSON state (the source's snapshot marker), kept outside the legacy database. */
export interface StateStore {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
}
