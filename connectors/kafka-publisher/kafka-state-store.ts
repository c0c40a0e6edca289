import { randomUUID } from 'node:crypto';
import { type Kafka, Partitioners } from 'kafkajs';

/**
 * Small durable key → JSON state in a compacted single-partition topic. The source keeps its snapshot marker here,
 * so the legacy database needs no table of ours and the source role stays REPLICATION + SELECT.
 */
export class KafkaStateStore {
  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
  ) {}

  /** The latest value written for `key`, reading the topic from the start up to its current end. */
  async get<T>(key: string): Promise<T | undefined> {
    const admin = this.kafka.admin();
    await admin.connect();
    let high: number;
    try {
      const offsets = await admin.fetchTopicOffsets(this.topic);
      high = Number(offsets.find((o) => o.partition === 0)?.high ?? 0);
    } finally {
      await admin.disconnect();
    }
    if (high === 0) return undefined;
    const consumer = this.kafka.consumer({
      groupId: `replicator-state-reader-${randomUUID()}`,
      readUncommitted: false,
    });
    await consumer.connect();
    try {
      let latest: T | undefined;
      let deleted = false;
      await consumer.subscribe({ topic: this.topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ message }) => {
              if (message.key?.toString() === key) {
                deleted = message.value === null;
                latest = message.value === null ? undefined : (JSON.parse(message.value.toString()) as T);
              }
              if (Number(message.offset) >= high - 1) resolve();
            },
          })
          .catch(reject);
      });
      return deleted ? undefined : latest;
    } finally {
      await consumer.disconnect();
    }
  }

  async put(key: string, value: unknown): Promise<void> {
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    try {
      await producer.send({
        topic: this.topic,
        acks: -1,
        messages: [{ key, value: JSON.stringify(value), partition: 0 }],
      });
    } finally {
      await producer.disconnect();
    }
  }
}
