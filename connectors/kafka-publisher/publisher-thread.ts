import { parentPort, workerData } from 'node:worker_threads';
import { createKafka, type KafkaConnection } from '../../src/core/kafka-client.js';
import { createLogger } from '../../src/core/logger.js';
import { KafkaPublisher, type KafkaPublisherTuning } from './kafka-publisher.js';
import { kafkajsProducer } from './kafkajs-producer.js';
import { ChunkReader } from './message-chunk.js';
import { platformaticProducer } from './platformatic-producer.js';
import { type FromThread, type ToThread, toShape } from './threaded-publisher.js';

/**
 * The publisher thread (see ThreadedPublisher): a KafkaPublisher fed with the chunks the source's thread packs.
 * Its log lines go to the parent, which writes them with its own logger.
 */
const data = workerData as {
  connection: KafkaConnection;
  client: 'platformatic' | 'kafkajs';
  logLevel: string;
  tuning: KafkaPublisherTuning;
};
const port = parentPort!;
const post = (m: FromThread) => port.postMessage(m);
const logger = createLogger({
  level: data.logLevel,
  destination: { write: (line: string) => post({ type: 'log', line }) },
});
const reader = new ChunkReader();
/** Messages Kafka acknowledged so far, and their weight: the source's thread subtracts them from what it packed. */
let ackedMessages = 0;
let ackedBytes = 0;
const publisher = new KafkaPublisher({
  createProducer:
    data.client === 'kafkajs'
      ? kafkajsProducer(createKafka(data.connection, logger))
      : platformaticProducer(data.connection),
  logger,
  ...data.tuning,
  // The source's thread bounds what is in flight (it counts what it packed); here nothing waits.
  maxBufferedMessages: Number.POSITIVE_INFINITY,
  maxBufferedBytes: Number.POSITIVE_INFINITY,
  checkpoint: (lsn) => post({ type: 'checkpoint', lsn }),
  acknowledged: ({ messages, bytes }) => {
    ackedMessages += messages;
    ackedBytes += bytes;
    post({ type: 'acknowledged', messages: ackedMessages, bytes: ackedBytes });
  },
  onRetry: (e) => post({ type: 'retry', error: toShape(e) }),
  onReconnect: () => post({ type: 'reconnect' }),
});

port.on('message', (m: ToThread) => {
  void handle(m).catch((e: unknown) => {
    post({ type: 'failed', error: toShape(e) });
  });
});

async function handle(m: ToThread): Promise<void> {
  switch (m.type) {
    case 'start':
      await publisher.start();
      post({ type: 'started' });
      return;
    case 'chunk':
      for (const e of reader.entries(m.chunk)) {
        if (e.kind === 'mark') publisher.mark(e.lsn);
        else publisher.publish(e.message);
      }
      return;
    case 'flush':
      await publisher.flush();
      post({ type: 'flushed', id: m.id });
      return;
    case 'close':
      await publisher.close();
      post({ type: 'closed' });
      port.close();
      return;
  }
}
