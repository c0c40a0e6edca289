import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { messageBytes } from '../../../connectors/kafka-publisher/kafka-publisher.js';
import {
  type ChunkEntry,
  ChunkReader,
  ChunkWriter,
} from '../../../connectors/kafka-publisher/message-chunk.js';
import type { OutMessage } from '../../../src/contracts/publisher.js';

type In = { kind: 'message'; m: OutMessage } | { kind: 'mark'; lsn: bigint };

const message = fc.record({
  topic: fc.constantFrom('raw.public.bookings', 'raw.public.bündel', 'dlq'),
  key: fc.option(fc.string({ unit: 'grapheme' }), { nil: null }),
  value: fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 3000 }),
    fc.uint8Array({ maxLength: 500 }).map(Buffer.from),
    fc.constant(null),
  ),
  partition: fc.option(fc.nat(11), { nil: undefined }),
  headers: fc.option(fc.dictionary(fc.string({ minLength: 1 }), fc.string({ unit: 'grapheme' })), {
    nil: undefined,
  }),
});
const entry: fc.Arbitrary<In> = fc.oneof(
  message.map((m) => ({ kind: 'message' as const, m: m as OutMessage })),
  fc.bigInt(0n, (1n << 64n) - 1n).map((lsn) => ({ kind: 'mark' as const, lsn })),
);

const asBuffer = (v: string | Buffer) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
const byteCount = (v: string | Buffer | null) => (v === null ? 0 : asBuffer(v).length);

describe('message chunks (what the source thread hands the publisher thread)', () => {
  it('read back in order, byte for byte, across chunks, with each message weighed as the publisher weighs it', () => {
    fc.assert(
      fc.property(fc.array(fc.array(entry, { maxLength: 40 }), { minLength: 1, maxLength: 4 }), (chunks) => {
        const writer = new ChunkWriter();
        const reader = new ChunkReader();
        for (const entries of chunks) {
          const weights: number[] = [];
          for (const e of entries) {
            if (e.kind === 'mark') writer.mark(e.lsn);
            else weights.push(writer.message(e.m));
          }
          expect(writer.entries).toBeGreaterThanOrEqual(entries.length);
          const out: ChunkEntry[] = [...reader.entries(writer.take())];
          expect(writer.entries).toBe(0);
          expect(out.length).toBe(entries.length);
          out.forEach((o, i) => {
            const e = entries[i]!;
            expect(o.kind).toBe(e.kind);
            if (o.kind === 'mark' && e.kind === 'mark') expect(o.lsn).toBe(e.lsn);
            if (o.kind === 'message' && e.kind === 'message') {
              const { m } = e;
              expect(o.message.topic).toBe(m.topic);
              expect(o.message.key === null ? null : Buffer.from(o.message.key!)).toEqual(
                m.key === null ? null : asBuffer(m.key),
              );
              expect(o.message.value === null ? null : Buffer.from(o.message.value)).toEqual(
                m.value === null ? null : asBuffer(m.value),
              );
              expect(o.message.partition).toBe(m.partition);
              expect(o.message.headers).toEqual(
                m.headers && Object.keys(m.headers).length > 0 ? m.headers : undefined,
              );
            }
          });
          const messages = entries.flatMap((e) => (e.kind === 'message' ? [e.m] : []));
          expect(weights).toEqual(
            messages.map((m) =>
              messageBytes(m.key === null ? 0 : asBuffer(m.key).length, byteCount(m.value)),
            ),
          );
        }
      }),
      // A header named __proto__ (found by CI's run): it must stay a header, not become the object's prototype.
      {
        examples: [
          [
            [
              [
                {
                  kind: 'message',
                  m: { topic: 'dlq', key: null, value: '', headers: Object.fromEntries([['__proto__', '']]) },
                },
              ],
            ],
          ],
        ],
      },
    );
  });
});
