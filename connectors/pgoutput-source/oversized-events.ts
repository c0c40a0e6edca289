import kafkajs, { type Admin } from 'kafkajs';
import { deadLetterHeaders, EVENT_TOO_LARGE } from '../../src/contracts/dead-letter.js';
import type { OutMessage, Publisher } from '../../src/contracts/publisher.js';
import type { Logger } from '../../src/core/logger.js';

/** Kafka's default max.message.bytes (a topic without its own setting, or a broker that does not say). */
const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
/** A record batch's header and a record's own framing around key, value and headers (generous). */
const RECORD_OVERHEAD_BYTES = 512;

/** The smallest max.message.bytes among `topics` (what the broker would refuse a single change over). */
export async function maxMessageBytes(admin: Admin, topics: readonly string[]): Promise<number> {
  const { resources } = await admin.describeConfigs({
    resources: topics.map((name) => ({
      // (kafkajs is CommonJS: ConfigResourceTypes is not among the names Node's ESM loader detects.)
      type: kafkajs.ConfigResourceTypes.TOPIC,
      name,
      configNames: ['max.message.bytes'],
    })),
    includeSynonyms: false,
  });
  let limit = Number.POSITIVE_INFINITY;
  for (const r of resources) {
    const v = Number(r.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue);
    if (Number.isFinite(v) && v > 0) limit = Math.min(limit, v);
  }
  return Number.isFinite(limit) ? limit : KAFKA_DEFAULT_MAX_MESSAGE_BYTES;
}

export interface OversizedEventsOptions {
  /** Bytes a record may have on its topic (see `maxMessageBytes`). */
  limit: number;
  dlqTopic: string;
  logger: Logger;
  /** Called for each change dead-lettered for its size (metrics). */
  onOversized?: (table: string, bytes: number) => void;
}

const sizeOf = (m: OutMessage): number =>
  (m.value === null ? 0 : Buffer.byteLength(m.value)) +
  (m.key === null ? 0 : Buffer.byteLength(m.key)) +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);

/**
 * Wraps a publisher so that a change too large for its topic — which the broker would refuse on every retry,
 * stalling the stream and holding WAL forever — goes to the dead-letter queue instead, as a summary naming its
 * table, key, size and position; the changes after it flow on. Everything else passes through unchanged.
 */
export function guardOversized(inner: Publisher, o: OversizedEventsOptions): Publisher {
  const budget = o.limit - RECORD_OVERHEAD_BYTES;
  return {
    start: () => inner.start(),
    publish: (m) => {
      // A string of n UTF-16 units is at most 3n bytes: most messages are decided without measuring.
      const cheap =
        (m.value === null ? 0 : typeof m.value === 'string' ? m.value.length * 3 : m.value.length) +
        (m.key?.length ?? 0) * 3;
      if (cheap <= budget / 2 || m.table === undefined) return inner.publish(m);
      const bytes = sizeOf(m);
      if (bytes <= budget) return inner.publish(m);
      const message = `change of ${bytes} bytes exceeds max.message.bytes ${o.limit} of ${m.topic}`;
      o.logger.warn(
        { table: m.table, key: m.key, bytes, limit: o.limit, position: m.position },
        'change too large for its topic: dead-lettered',
      );
      o.onOversized?.(m.table, bytes);
      return inner.publish({
        topic: o.dlqTopic,
        key: m.key,
        value: JSON.stringify({
          table: m.table,
          key: m.key,
          bytes,
          limit: o.limit,
          position: m.position ?? null,
        }),
        headers: deadLetterHeaders({
          code: EVENT_TOO_LARGE,
          message,
          stage: 'source',
          transform: '-',
          sourceTopic: m.topic,
          sourcePartition: -1,
          sourceOffset: m.position ?? '',
          table: m.table,
        }),
      });
    },
    mark: (lsn) => inner.mark(lsn),
    drained: () => inner.drained(),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
}
