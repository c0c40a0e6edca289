import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseWalMessage,
  standbyStatusUpdate,
} from '../../../connectors/pgoutput-source/replication-stream.js';
import { ErrorCodes, isReplicatorError, ReplicatorError } from '../../../src/core/errors.js';

/** 2000-01-01T00:00:00Z in Unix milliseconds: PostgreSQL's epoch. */
const PG_EPOCH_MS = 946_684_800_000;

const LSN_A = (0x16n << 32n) | 0xb374d848n;
const LSN_B = (0x16n << 32n) | 0xb374d9a0n;

function xlogData(walStart: bigint, walEnd: bigint, sendTimeUs: bigint, data: Buffer): Buffer {
  const header = Buffer.alloc(25);
  header[0] = 0x77; // 'w'
  header.writeBigUInt64BE(walStart, 1);
  header.writeBigUInt64BE(walEnd, 9);
  header.writeBigInt64BE(sendTimeUs, 17);
  return Buffer.concat([header, data]);
}

function keepalive(walEnd: bigint, sendTimeUs: bigint, reply: number): Buffer {
  const buf = Buffer.alloc(18);
  buf[0] = 0x6b; // 'k'
  buf.writeBigUInt64BE(walEnd, 1);
  buf.writeBigInt64BE(sendTimeUs, 9);
  buf[17] = reply;
  return buf;
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('parseWalMessage', () => {
  it("parses XLogData ('w'): start and end LSNs, and the payload after the 25-byte header", () => {
    const payload = Buffer.from([0x42, 1, 2, 3, 0, 0xff]);
    const msg = parseWalMessage(xlogData(LSN_A, LSN_B, 123_456_789n, payload));
    expect(msg).toEqual({ kind: 'xlog', walStart: LSN_A, walEnd: LSN_B, data: payload });
    if (msg.kind !== 'xlog') throw new Error('not xlog');
    expect(typeof msg.walStart).toBe('bigint');
    expect(Buffer.compare(msg.data, payload)).toBe(0);
  });

  it('parses XLogData with an empty payload and LSNs that use all 64 bits', () => {
    const max = 0xffffffffffffffffn;
    const msg = parseWalMessage(xlogData(max, max - 1n, 0n, Buffer.alloc(0)));
    expect(msg).toMatchObject({ kind: 'xlog', walStart: max, walEnd: max - 1n });
    if (msg.kind !== 'xlog') throw new Error('not xlog');
    expect(msg.data.length).toBe(0);
  });

  it("parses a primary keepalive ('k') without a reply request", () => {
    expect(parseWalMessage(keepalive(LSN_A, 42n, 0))).toEqual({
      kind: 'keepalive',
      walEnd: LSN_A,
      replyRequested: false,
    });
  });

  it("parses a primary keepalive ('k') that requests a reply", () => {
    expect(parseWalMessage(keepalive(LSN_B, 42n, 1))).toEqual({
      kind: 'keepalive',
      walEnd: LSN_B,
      replyRequested: true,
    });
  });

  it('turns an unknown message type into a coded ReplicatorError instead of a plain throw', () => {
    for (const type of [0x00, 0x72 /* 'r' is ours, never the server's */, 0x78, 0xff]) {
      const chunk = Buffer.alloc(34);
      chunk[0] = type;
      const e = thrownBy(() => parseWalMessage(chunk));
      expect(e).toBeInstanceOf(ReplicatorError);
      expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
      expect((e as ReplicatorError).message).toContain(`0x${type.toString(16)}`);
      expect((e as ReplicatorError).retryable).toBe(false);
    }
  });

  it('an empty chunk is a protocol error too', () => {
    const e = thrownBy(() => parseWalMessage(Buffer.alloc(0)));
    expect(isReplicatorError(e, ErrorCodes.REPLICATION_PROTOCOL)).toBe(true);
  });
});

describe('standbyStatusUpdate', () => {
  it("lays out 'r', write/flush/apply = the durable LSN, the clock and the reply flag", () => {
    const nowMs = Date.UTC(2026, 0, 1);
    const buf = standbyStatusUpdate(LSN_A, nowMs);
    expect(buf.length).toBe(34);
    expect(buf[0]).toBe(0x72);
    expect(buf.readBigUInt64BE(1)).toBe(LSN_A);
    expect(buf.readBigUInt64BE(9)).toBe(LSN_A);
    expect(buf.readBigUInt64BE(17)).toBe(LSN_A);
    expect(buf[33]).toBe(0);
    expect(standbyStatusUpdate(LSN_A, nowMs, true)[33]).toBe(1);
    expect(standbyStatusUpdate(LSN_A, nowMs, false)[33]).toBe(0);
  });

  it('writes the clock as microseconds since 2000-01-01T00:00:00Z', () => {
    const nowMs = Date.UTC(2026, 0, 1);
    const buf = standbyStatusUpdate(LSN_A, nowMs);
    expect(buf.readBigInt64BE(25)).toBe(BigInt(Date.UTC(2026, 0, 1) - 946684800000) * 1000n);
    // 9497 days (26 years, 7 of them leap) after PostgreSQL's epoch; pg-logical-replication 2.5.0 was 7 days off.
    expect(buf.readBigInt64BE(25)).toBe(9497n * 86_400n * 1_000_000n);
    expect(standbyStatusUpdate(0n, PG_EPOCH_MS).readBigInt64BE(25)).toBe(0n);
    expect(standbyStatusUpdate(0n, PG_EPOCH_MS - 1).readBigInt64BE(25)).toBe(-1000n);
  });

  it('holds for any LSN and any clock value', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.integer({ min: 0, max: Date.UTC(9999, 11, 31) }),
        fc.boolean(),
        (lsn, nowMs, reply) => {
          const buf = standbyStatusUpdate(lsn, nowMs, reply);
          return (
            buf.length === 34 &&
            buf[0] === 0x72 &&
            buf.readBigUInt64BE(1) === lsn &&
            buf.readBigUInt64BE(9) === lsn &&
            buf.readBigUInt64BE(17) === lsn &&
            buf.readBigInt64BE(25) === BigInt(nowMs - PG_EPOCH_MS) * 1000n &&
            buf[33] === (reply ? 1 : 0)
          );
        },
      ),
    );
  });
});
