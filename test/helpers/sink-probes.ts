import { RawChangeReader } from '../../connectors/postgres-sink/raw-change.js';
import { changeTopics, heartbeatPrefix } from '../../src/contracts/topics.js';
import type { ReplicatorConfig } from '../../src/pipeline/config/load-config.js';
import { transformModules } from '../../transforms/index.js';
import { readTopics } from './kafka-read.js';
import { testKafka, withClient } from './resources.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the sink has an apply transaction open — held before COMMIT by the fault hook — and young enough to
 * still be open when a kill lands (so a kill -9 test can show where it landed).
 */
export async function waitForOpenApplyTransaction(targetUrl: string, maxWaitMs = 30_000): Promise<void> {
  const deadline = Date.now() + maxWaitMs;
  while (Date.now() < deadline) {
    const open = await withClient(
      targetUrl,
      async (c) =>
        (
          await c.query(
            `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'replicator-sink'
               AND state = 'idle in transaction' AND now() - xact_start < interval '300 milliseconds'
               AND now() - state_change < interval '300 milliseconds'`,
          )
        ).rowCount,
    );
    if (open) return;
    await sleep(20);
  }
  throw new Error(`no open apply transaction of the sink within ${maxWaitMs} ms`);
}

/**
 * The dead letters a crash-free run produces, from the raw topics themselves: each change whose transform rejects
 * it (the same pure step the sink runs), as `topic/partition/offset/code`, sorted.
 */
export async function expectedLetters(config: ReplicatorConfig): Promise<string[]> {
  const topics = changeTopics({ rawPrefix: config.kafka.topicPrefix, tables: config.source.tables });
  const reader = new RawChangeReader(transformModules, heartbeatPrefix(config.kafka.topicPrefix));
  const messages = await readTopics(testKafka(), topics, () => false, 5_000);
  const out: string[] = [];
  for (const m of messages) {
    const r = reader.read(m.topic, m.key, m.value === null ? null : JSON.parse(m.value));
    const dead = r.kind === 'dead' ? r.dead : r.kind === 'unit' ? r.dead : undefined;
    if (dead) out.push(`${m.topic}/${m.partition}/${m.offset}/${dead.code}`);
  }
  return out.sort();
}
