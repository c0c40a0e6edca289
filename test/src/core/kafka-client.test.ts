import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createKafka } from '../../../src/core/kafka-client.js';
import { createLogger } from '../../../src/core/logger.js';

/** The kafkajs client's log lines as our logger writes them. */
function capture() {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as { level: number; msg: string });
      done();
    },
  });
  const kafka = createKafka(
    { brokers: ['127.0.0.1:1'], clientId: 'test' },
    createLogger({ level: 'debug', destination }),
  );
  return { log: kafka.logger(), lines };
}

describe('createKafka logging', () => {
  it.each([
    "The coordinator is loading and hence can't process requests for this group",
    'This is not the correct coordinator for this group',
    'The coordinator is not available',
    'This server is not the leader for that topic-partition',
    'The group is rebalancing, so a rejoin is needed',
    'Topic with this name already exists',
  ])('an error response kafkajs handles itself is debug, not error: %s', (error) => {
    const { log, lines } = capture();
    log.error('Response InitProducerId(key: 22, version: 1)', { error });
    expect(lines.map((l) => l.level)).toEqual([20]);
  });

  it('any other error response stays an error, and warnings stay warnings', () => {
    const { log, lines } = capture();
    log.error('Response Produce(key: 0, version: 7)', {
      error: 'The request included a message larger than the max',
    });
    log.warn('Limiting retries for the idempotent producer may invalidate EoS guarantees');
    expect(lines.map((l) => l.level)).toEqual([50, 40]);
  });
});
