import { transformModules } from '../../transforms/index.js';
import { changeTopic, dlqTopic, heartbeatPrefix, v2Topic } from '../contracts/topics.js';
import type { TransformModule } from '../contracts/transform-api.js';
import type { ReplicatorConfig } from './config/load-config.js';

export interface GroupTopics {
  groupId: string;
  topics: string[];
}

/**
 * The consumer groups of the transform and sink stages and the topics each consumes — what lag is measured on.
 * The same names the stages themselves derive from the config.
 */
export function stageTopics(
  config: Pick<ReplicatorConfig, 'source' | 'kafka' | 'transform' | 'sink'>,
  modules: readonly TransformModule[] = transformModules,
): { transform: GroupTopics; sink: GroupTopics; dlq: string } {
  const { kafka, transform, sink, source } = config;
  const entities = new Set<string>();
  for (const m of modules) for (const t of m.tables) entities.add(m.topicFor(t));
  return {
    transform: {
      groupId: transform.groupId,
      topics: [
        ...source.tables.map((t) => changeTopic(kafka.topicPrefix, t.schema, t.table)),
        heartbeatPrefix(kafka.topicPrefix),
      ],
    },
    sink: {
      groupId: sink.groupId,
      topics: [
        ...[...entities].map((e) => v2Topic(transform.topicPrefix, e)),
        v2Topic(transform.topicPrefix, 'heartbeat'),
      ],
    },
    dlq: dlqTopic(kafka.topicPrefix),
  };
}
