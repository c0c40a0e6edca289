import type { Admin } from 'kafkajs';

export interface TopicSpec {
  topic: string;
  partitions: number;
  replicationFactor: number;
  compact?: boolean;
}

/**
 * Creates the topics that are missing and returns every topic's actual partition count (an existing topic keeps
 * its own count; broadcasts must reach all of its partitions).
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<Map<string, number>> {
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
  return new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
}
