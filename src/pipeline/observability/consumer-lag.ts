import type { Admin } from 'kafkajs';

export interface PartitionLag {
  topic: string;
  partition: number;
  /** The group's committed offset; null when it has committed none (lag then counts from the log start). */
  committed: string | null;
  high: string;
  lag: number;
}

/**
 * Per-partition lag of a consumer group on `topics`: the partition's end offset minus the group's committed offset.
 * Topics that do not exist yet are left out. On topics written in Kafka transactions the end offset counts the
 * commit markers too, so a caught-up group may show a lag of one per partition.
 */
export async function readConsumerLag(
  admin: Admin,
  groupId: string,
  topics: string[],
): Promise<PartitionLag[]> {
  const existing = new Set(await admin.listTopics());
  const present = topics.filter((t) => existing.has(t));
  if (present.length === 0) return [];
  const committed = new Map<string, string>();
  for (const t of await admin.fetchOffsets({ groupId, topics: present })) {
    for (const p of t.partitions) committed.set(`${t.topic}/${p.partition}`, p.offset);
  }
  const out: PartitionLag[] = [];
  for (const topic of present) {
    for (const p of await admin.fetchTopicOffsets(topic)) {
      const c = committed.get(`${topic}/${p.partition}`);
      const has = c !== undefined && Number(c) >= 0;
      const from = has ? BigInt(c) : BigInt(p.low);
      const lag = BigInt(p.high) - from;
      out.push({
        topic,
        partition: p.partition,
        committed: has ? c : null,
        high: p.high,
        lag: Number(lag > 0n ? lag : 0n),
      });
    }
  }
  return out;
}

/** Messages currently held in a topic (end − start offsets, summed over partitions); 0 when it does not exist. */
export async function topicSize(admin: Admin, topic: string): Promise<number> {
  if (!(await admin.listTopics()).includes(topic)) return 0;
  let n = 0n;
  for (const p of await admin.fetchTopicOffsets(topic)) n += BigInt(p.high) - BigInt(p.low);
  return Number(n);
}
