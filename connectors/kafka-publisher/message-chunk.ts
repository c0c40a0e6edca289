import type { OutMessage } from '../../src/contracts/publisher.js';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import type { Lsn } from '../../src/core/lsn.js';
import { messageBytes } from './kafka-publisher.js';

/**
 * The publisher thread's input: messages and positions packed in stream order into one transferable buffer, so
 * handing thousands of them to the thread costs one postMessage and no structured clone.
 *
 * Entry layout: u8 kind, then
 * - TOPIC: u16 length, utf8 name (the next topic index);
 * - MESSAGE: u16 topic index, i32 partition (-1: the producer's partitioner), i32 key length (-1: null), key,
 *   i32 value length (-1: null, a tombstone), value, u16 header count, each header as i32 length + utf8 name,
 *   i32 length + utf8 value;
 * - MARK: u32 high, u32 low half of the LSN.
 */
const TOPIC = 1;
const MESSAGE = 2;
const MARK = 3;
const CHUNK_BYTES = 256 * 1024;

export type ChunkEntry = { kind: 'message'; message: OutMessage } | { kind: 'mark'; lsn: Lsn };

export class ChunkWriter {
  private buf: Buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private at = 0;
  private readonly topics = new Map<string, number>();
  /** Entries in the current chunk. */
  entries = 0;

  get full(): boolean {
    return this.at >= CHUNK_BYTES / 2;
  }

  /** Packs `m`; returns its weight against the buffer limits (messageBytes, as the thread's publisher counts it). */
  message(m: OutMessage): number {
    let topic = this.topics.get(m.topic);
    if (topic === undefined) {
      topic = this.topics.size;
      this.topics.set(m.topic, topic);
      this.room(3 + m.topic.length * 3);
      this.buf[this.at++] = TOPIC;
      this.at += 2;
      const n = this.buf.write(m.topic, this.at, 'utf8');
      this.buf.writeUInt16LE(n, this.at - 2);
      this.at += n;
      this.entries++;
    }
    const key = m.key;
    const value = m.value;
    const headers = m.headers ? Object.entries(m.headers) : [];
    // Worst case of UTF-16 → UTF-8 is three bytes a code unit: reserve that, then write and record the real length.
    let need =
      1 + 2 + 4 + 4 + 4 + 2 + (key === null ? 0 : typeof key === 'string' ? key.length * 3 : key.length);
    need += value === null ? 0 : typeof value === 'string' ? value.length * 3 : value.length;
    for (const [k, v] of headers) need += 8 + (k.length + v.length) * 3;
    this.room(need);
    const b = this.buf;
    b[this.at++] = MESSAGE;
    b.writeUInt16LE(topic, this.at);
    b.writeInt32LE(m.partition ?? -1, this.at + 2);
    this.at += 6;
    const keyBytes = this.nullable(key);
    const valueBytes = this.nullable(value);
    b.writeUInt16LE(headers.length, this.at);
    this.at += 2;
    for (const [k, v] of headers) {
      this.field(k);
      this.field(v);
    }
    this.entries++;
    return messageBytes(keyBytes, valueBytes);
  }

  mark(lsn: Lsn): void {
    this.room(9);
    this.buf[this.at] = MARK;
    this.buf.writeUInt32LE(Number(lsn >> 32n), this.at + 1);
    this.buf.writeUInt32LE(Number(lsn & 0xffffffffn), this.at + 5);
    this.at += 9;
    this.entries++;
  }

  /** The packed chunk (its own ArrayBuffer, to transfer); the writer starts a new one. */
  take(): ArrayBuffer {
    const out = (this.buf.buffer as ArrayBuffer).slice(this.buf.byteOffset, this.buf.byteOffset + this.at);
    this.at = 0;
    this.entries = 0;
    return out;
  }

  /** As `field`, with null as length -1. */
  private nullable(v: string | Buffer | null): number {
    if (v !== null) return this.field(v);
    this.buf.writeInt32LE(-1, this.at);
    this.at += 4;
    return 0;
  }

  /** Length-prefixed bytes of a string (as UTF-8) or a buffer; returns the byte count. */
  private field(v: string | Buffer): number {
    const n = typeof v === 'string' ? this.buf.write(v, this.at + 4, 'utf8') : v.copy(this.buf, this.at + 4);
    this.buf.writeInt32LE(n, this.at);
    this.at += 4 + n;
    return n;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
}

/** Reads a chunk back; keys and values are views into it (no copy). Topic indexes carry over between chunks. */
export class ChunkReader {
  private readonly topics: string[] = [];

  *entries(chunk: ArrayBuffer): Generator<ChunkEntry> {
    const b = Buffer.from(chunk);
    let at = 0;
    const bytes = () => {
      const n = b.readInt32LE(at);
      at += 4;
      if (n < 0) return null;
      const v = b.subarray(at, at + n);
      at += n;
      return v;
    };
    while (at < b.length) {
      const kind = b[at++];
      if (kind === TOPIC) {
        const n = b.readUInt16LE(at);
        this.topics.push(b.toString('utf8', at + 2, at + 2 + n));
        at += 2 + n;
      } else if (kind === MESSAGE) {
        const topic = this.topics[b.readUInt16LE(at)]!;
        const partition = b.readInt32LE(at + 2);
        at += 6;
        const key = bytes();
        const value = bytes();
        const headerCount = b.readUInt16LE(at);
        at += 2;
        const message: OutMessage = { topic, key, value };
        if (partition >= 0) message.partition = partition;
        if (headerCount > 0) {
          const headers: [string, string][] = [];
          for (let i = 0; i < headerCount; i++) {
            const k = bytes()!.toString('utf8');
            headers.push([k, bytes()!.toString('utf8')]);
          }
          // fromEntries defines own properties: a header named __proto__ stays a header (assigning it would set
          // the object's prototype).
          message.headers = Object.fromEntries(headers);
        }
        yield { kind: 'message', message };
      } else if (kind === MARK) {
        const lsn = (BigInt(b.readUInt32LE(at)) << 32n) | BigInt(b.readUInt32LE(at + 4));
        at += 8;
        yield { kind: 'mark', lsn };
      } else {
        throw new ReplicatorError(
          ErrorCodes.ABORTED,
          `corrupt publisher chunk: entry kind ${kind} at ${at - 1}`,
        );
      }
    }
  }
}
