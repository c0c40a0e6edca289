import { type Kafka, type Message, Partitioners } from 'kafkajs';
import type { OutMessage } from '../../src/contracts/publisher.js';
import type { ProducerClient } from './kafka-publisher.js';

/** The publisher's producer on kafkajs, the client the rest of the project uses. */
export function kafkajsProducer(kafka: Kafka): () => ProducerClient {
  return () => {
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
    return {
      connect: () => producer.connect(),
      async send(messages: readonly OutMessage[]) {
        const byTopic = new Map<string, Message[]>();
        for (const m of messages) {
          let list = byTopic.get(m.topic);
          if (!list) {
            list = [];
            byTopic.set(m.topic, list);
          }
          list.push({
            key: m.key,
            value: m.value,
            ...(m.partition !== undefined ? { partition: m.partition } : {}),
            ...(m.headers ? { headers: m.headers } : {}),
          });
        }
        await producer.sendBatch({
          topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })),
          acks: -1,
        });
      },
      disconnect: () => producer.disconnect(),
    };
  };
}
