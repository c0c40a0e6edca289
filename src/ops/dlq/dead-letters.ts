import { randomUUID } from 'node:crypto';
import { type IHeaders, type Kafka, Partitioners } from 'kafkajs';
import { deadLetterOrigin, readDeadLetterHeaders } from '../../contracts/dead-letter.js';

export interface DeadLetter {
  /** `<partition>:<offset>` in the DLQ topic. */
  id: string;
  stage: string;
  code: string;
  message: string;
  transform: string;
  sourceTopic: string;
  sourcePartition: string;
  sourceOffset: string;
  /** schema.table of the legacy row, when the stage knew it. */
  table: string;
  key: string | null;
  value: Buffer | null;
  timestamp: string;
}

const header = (h: IHeaders | undefined, name: string): string => {
  const v = h?.[name];
  return v === undefined ? '' : String(Array.isArray(v) ? v[0] : v);
};

/**
 * Reads the whole DLQ topic (from its start to its current end). Stops when every partition reached the end it
 * had when the read began, or when nothing more arrives for `idleMs`. A letter sent again (the sink crashed after
 * sending it and before committing the batch, then replayed the batch) is listed once: letters are identified by
 * their origin (source topic, partition, offset) and reason.
 */
export async function listDeadLetters(kafka: Kafka, topic: string, idleMs = 2_000): Promise<DeadLetter[]> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, number>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic).catch(() => []);
    ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  } finally {
    await admin.disconnect();
  }
  if ([...ends.values()].every((h) => h === 0)) return [];
  const consumer = kafka.consumer({
    groupId: `replicator-dlq-reader-${randomUUID()}`,
    readUncommitted: false,
  });
  const out: DeadLetter[] = [];
  const seen = new Set<string>();
  const reached = new Set<number>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      let idle = setTimeout(resolve, idleMs * 3);
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            clearTimeout(idle);
            idle = setTimeout(resolve, idleMs);
            const info = readDeadLetterHeaders((name) => header(message.headers, name));
            const identity = `${deadLetterOrigin(info)}/${info.code}`;
            if (!seen.has(identity)) {
              seen.add(identity);
              out.push({
                id: `${partition}:${message.offset}`,
                stage: info.stage,
                code: info.code,
                message: info.message,
                transform: info.transform,
                sourceTopic: info.sourceTopic,
                sourcePartition: String(info.sourcePartition),
                sourceOffset: info.sourceOffset,
                table: info.table ?? '',
                key: message.key?.toString('utf8') ?? null,
                value: message.value,
                timestamp: new Date(Number(message.timestamp)).toISOString(),
              });
            }
            if (Number(message.offset) >= (ends.get(partition) ?? 0) - 1) reached.add(partition);
            if ([...ends].every(([p, h]) => h === 0 || reached.has(p))) {
              clearTimeout(idle);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/**
 * Re-publishes dead letters (all, or those with the given ids) to the topic they came from, with their key — after
 * a fix to a transform or to the data. Replays are safe: the sink skips a change older than what it has applied.
 */
export async function replayDeadLetters(
  kafka: Kafka,
  topic: string,
  ids?: readonly string[],
): Promise<DeadLetter[]> {
  const all = await listDeadLetters(kafka, topic);
  const chosen = ids && ids.length > 0 ? all.filter((d) => ids.includes(d.id)) : all;
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    for (const d of chosen) {
      if (!d.sourceTopic) continue;
      await producer.send({
        topic: d.sourceTopic,
        acks: -1,
        messages: [
          { key: d.key, value: d.value, headers: { 'replicator.replayed-from': `${topic}/${d.id}` } },
        ],
      });
    }
  } finally {
    await producer.disconnect();
  }
  return chosen;
}
