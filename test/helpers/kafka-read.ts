import type { Kafka } from 'kafkajs';
import { freshName } from './resources.js';

export interface ReadMessage {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/**
 * Reads `topics` from the beginning until `until(messages)` holds (or `maxWaitMs` passes, after which the caller's
 * assertions decide). Messages come in partition order per partition.
 */
export async function readTopics(
  kafka: Kafka,
  topics: string[],
  until: (messages: ReadMessage[]) => boolean,
  maxWaitMs = 30_000,
  /** After `until` holds, keep reading this long (to see anything after it, e.g. duplicates). */
  settleMs = 0,
): Promise<ReadMessage[]> {
  await waitForTopics(kafka, topics, maxWaitMs);
  const consumer = kafka.consumer({
    groupId: freshName('reader'),
    readUncommitted: false,
    maxWaitTimeInMs: 200,
  });
  const messages: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, maxWaitMs);
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages) {
              messages.push({
                topic: batch.topic,
                partition: batch.partition,
                offset: Number(m.offset),
                key: m.key?.toString() ?? null,
                value: m.value?.toString() ?? null,
                headers: Object.fromEntries(
                  Object.entries(m.headers ?? {}).map(([k, v]) => [
                    k,
                    Array.isArray(v) ? String(v[0]) : String(v),
                  ]),
                ),
              });
            }
            if (until(messages)) {
              clearTimeout(timer);
              if (settleMs > 0) setTimeout(resolve, settleMs);
              else resolve();
            }
          },
        })
        .catch(reject);
      if (until(messages)) {
        clearTimeout(timer);
        resolve();
      }
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}

/** Parsed change events of the given messages, in read order. */
export const events = (messages: ReadMessage[]) =>
  messages
    .filter((m) => m.value !== null)
    .map((m) => ({ ...m, event: JSON.parse(m.value!) as ChangeEventJson }));

export interface ChangeEventJson {
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  op: 'c' | 'u' | 'd' | 'r' | 't';
  source: {
    schema: string;
    table: string;
    /** Debezium's int64. */
    lsn: number;
    commitLsn: string;
    txId: number | null;
    commitTs: string | null;
    /** Debezium's marks: 'false' for a streamed change. */
    snapshot: string;
    seq: number;
    unchangedToast?: string[];
  };
  ts_ms: number;
}

/** Waits until every topic exists (the source creates its topics when it starts). */
export async function waitForTopics(kafka: Kafka, topics: string[], maxWaitMs = 30_000): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const existing = new Set(await admin.listTopics());
      if (topics.every((t) => existing.has(t)) || Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}
