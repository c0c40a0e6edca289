import { randomUUID } from 'node:crypto';
import { type IHeaders, type Kafka, Partitioners } from 'kafkajs';
import {
  type DeadLetterInfo,
  deadLetterHeaders,
  deadLetterOrigin,
  REPLAY_MARKER,
  REPLAYED_FROM_HEADER,
  readDeadLetterHeaders,
  UNREPLAYABLE_CODES,
} from '../../contracts/dead-letter.js';

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
  /** Set when `dlq replay` re-published it: where the change went (`topic/partition@offset`) and when. */
  replayed?: { to: string; at: string };
}

export interface ListOptions {
  /** Also the letters already replayed (default: only those that were not). */
  all?: boolean;
  /** Stop reading when nothing more arrives for this long. Default 2 s. */
  idleMs?: number;
}

const header = (h: IHeaders | undefined, name: string): string => {
  const v = h?.[name];
  return v === undefined ? '' : String(Array.isArray(v) ? v[0] : v);
};

/**
 * Reads the whole DLQ topic (from its start to its current end). Stops when every partition reached the end it
 * had when the read began, or when nothing more arrives for `idleMs`. A letter sent again (the sink crashed after
 * sending it and before committing the batch, then replayed the batch) is listed once: letters are identified by
 * their origin (source topic, partition, offset) and reason. A letter that `dlq replay` re-published (a replay
 * marker names it) is left out unless `all` is set, and then carries `replayed`.
 */
export async function listDeadLetters(
  kafka: Kafka,
  topic: string,
  options: ListOptions = {},
): Promise<DeadLetter[]> {
  const idleMs = options.idleMs ?? 2_000;
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
  /** Replay markers: letter identity → where and when it was replayed (the latest marker wins). */
  const replays = new Map<string, { to: string; at: string }>();
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
            const replayOf = header(message.headers, REPLAY_MARKER.of);
            if (replayOf) {
              replays.set(identity, {
                to: header(message.headers, REPLAY_MARKER.to),
                at: header(message.headers, REPLAY_MARKER.at),
              });
            } else if (!seen.has(identity)) {
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
  const identity = (d: DeadLetter) =>
    `${deadLetterOrigin({ ...d, sourcePartition: Number(d.sourcePartition) })}/${d.code}`;
  const listed: DeadLetter[] = [];
  for (const d of out) {
    const replayed = replays.get(identity(d));
    if (!replayed) listed.push(d);
    else if (options.all) listed.push({ ...d, replayed });
  }
  return listed;
}

/**
 * Re-publishes dead letters to the topic they came from, with their key and a `replicator.replayed-from` header —
 * after a fix to a transform, to the target or to the data — and marks each replayed: a marker record in the DLQ
 * topic (after the change is acknowledged), so `dlq list` no longer shows it and a later replay does not send it
 * again. Without `ids`: every letter not replayed yet; with `ids` (`<partition>:<offset>`, as `dlq list --all`
 * shows them): those, replayed or not. Letters of changes too large for their topic (EVENT_TOO_LARGE) or deleted by
 * Kafka before they were applied (CHANGES_LOST) carry no change and are never replayed: re-emit the rows with
 * `verify --repair` (after raising the topic's limit, for the first). Replays are safe: the sink applies a replayed
 * change at its own position (the rejection's), never over a newer change of the row; a change that is still
 * rejected is dead-lettered anew.
 */
export async function replayDeadLetters(
  kafka: Kafka,
  topic: string,
  ids?: readonly string[],
): Promise<DeadLetter[]> {
  const explicit = ids !== undefined && ids.length > 0;
  const all = await listDeadLetters(kafka, topic, { all: explicit });
  const chosen = explicit ? all.filter((d) => ids.includes(d.id)) : all;
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const replayed: DeadLetter[] = [];
  await producer.connect();
  try {
    for (const d of chosen) {
      // An oversized change's letter holds a summary, and lost changes' none: there is nothing to send back.
      if (!d.sourceTopic || UNREPLAYABLE_CODES.has(d.code)) continue;
      const [sent] = await producer.send({
        topic: d.sourceTopic,
        acks: -1,
        messages: [{ key: d.key, value: d.value, headers: { [REPLAYED_FROM_HEADER]: `${topic}/${d.id}` } }],
      });
      const to = `${d.sourceTopic}/${sent?.partition ?? '?'}@${sent?.baseOffset ?? '?'}`;
      const at = new Date().toISOString();
      const info: DeadLetterInfo = {
        code: d.code,
        message: d.message,
        stage: d.stage,
        transform: d.transform,
        sourceTopic: d.sourceTopic,
        sourcePartition: Number(d.sourcePartition),
        sourceOffset: d.sourceOffset,
        ...(d.table ? { table: d.table } : {}),
      };
      await producer.send({
        topic,
        acks: -1,
        messages: [
          {
            key: null,
            value: null,
            partition: Number(d.id.slice(0, d.id.indexOf(':'))),
            headers: {
              ...deadLetterHeaders(info),
              [REPLAY_MARKER.of]: d.id,
              [REPLAY_MARKER.to]: to,
              [REPLAY_MARKER.at]: at,
            },
          },
        ],
      });
      replayed.push({ ...d, replayed: { to, at } });
    }
  } finally {
    await producer.disconnect();
  }
  return replayed;
}
