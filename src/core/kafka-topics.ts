import type { Admin } from 'kafkajs';

export interface TopicSpec {
  topic: string;
  partitions: number;
  replicationFactor: number;
  compact?: boolean;
}

/** Metadata errors of a topic that is being created (by us or by another stage at the same moment). */
const SETTLING = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE', 'TOPIC_ALREADY_EXISTS']);
const settling = (e: unknown) =>
  SETTLING.has((e as { type?: string }).type ?? '') ||
  ((e as { errors?: unknown[] }).errors ?? []).some((x) => SETTLING.has((x as { type?: string }).type ?? ''));

/**
 * Creates the topics that are missing and returns every topic's actual partition count (an existing topic keeps
 * its own count; broadcasts must reach all of its partitions). Two stages may create the same topics at once (the
 * source and the sink at start): a topic another one just created, or whose leaders are not elected yet, is
 * waited for (bounded) rather than failed on.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<Map<string, number>> {
  for (let attempt = 0; ; attempt++) {
    try {
      const existing = new Set(await admin.listTopics());
      const missing = specs.filter((s) => !existing.has(s.topic));
      if (missing.length > 0) {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((s) => ({
            topic: s.topic,
            numPartitions: s.partitions,
            replicationFactor: s.replicationFactor,
            ...(s.compact ? { configEntries: [{ name: 'cleanup.policy', value: 'compact' }] } : {}),
          })),
        });
      }
      const meta = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) });
      if (meta.topics.some((t) => t.partitions.some((p) => p.leader < 0)))
        throw Object.assign(new Error('a partition has no leader yet'), { type: 'LEADER_NOT_AVAILABLE' });
      return new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
    } catch (e) {
      if (!settling(e) || attempt >= 50) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
