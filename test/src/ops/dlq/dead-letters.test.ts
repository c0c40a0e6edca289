import { describe, expect, it } from 'vitest';
import { listDeadLetters, replayDeadLetters } from '../../../../src/ops/dlq/dead-letters.js';
import { readTopics } from '../../../helpers/kafka-read.js';
import { freshTopic, testKafka } from '../../../helpers/resources.js';

const kafka = testKafka();

describe('dead letters', () => {
  it('lists dead letters with their headers, replays chosen ones to the topic they came from and marks them replayed', async () => {
    const dlq = await freshTopic('dlq');
    const origin = await freshTopic('origin', 2);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: dlq,
      messages: [1, 2, 3].map((i) => ({
        key: `{"id":${i}}`,
        value: `{"after":{"id":${i}}}`,
        headers: {
          'error.code': i === 2 ? 'BOOKING_INVALID_EMAIL' : 'BOOKING_UNKNOWN_STATUS',
          'error.message': `bad row ${i}`,
          stage: 'transform',
          transform: 'bookings',
          'source.topic': origin,
          'source.partition': '0',
          'source.offset': String(10 + i),
        },
      })),
    });
    // The same letter sent again (the sink crashed after sending it, before its batch committed): listed once.
    await producer.send({
      topic: dlq,
      messages: [
        {
          key: '{"id":1}',
          value: '{"after":{"id":1}}',
          headers: {
            'error.code': 'BOOKING_UNKNOWN_STATUS',
            'error.message': 'bad row 1',
            stage: 'transform',
            transform: 'bookings',
            'source.topic': origin,
            'source.partition': '0',
            'source.offset': '11',
          },
        },
      ],
    });
    await producer.disconnect();

    const letters = await listDeadLetters(kafka, dlq);
    expect(letters.map((d) => [d.id, d.code, d.sourceOffset])).toEqual([
      ['0:0', 'BOOKING_UNKNOWN_STATUS', '11'],
      ['0:1', 'BOOKING_INVALID_EMAIL', '12'],
      ['0:2', 'BOOKING_UNKNOWN_STATUS', '13'],
    ]);
    const replayed = await replayDeadLetters(kafka, dlq, ['0:1']);
    expect(replayed.map((d) => d.id)).toEqual(['0:1']);
    const again = await readTopics(kafka, [origin], (m) => m.length >= 1, 30_000, 1_000);
    expect(again.map((m) => [m.key, m.value, m.headers['replicator.replayed-from']])).toEqual([
      ['{"id":2}', '{"after":{"id":2}}', `${dlq}/0:1`],
    ]);
    // Marked replayed: left out of the list, shown with `all` (with where it went), not replayed again.
    expect((await listDeadLetters(kafka, dlq)).map((d) => d.id)).toEqual(['0:0', '0:2']);
    const all = await listDeadLetters(kafka, dlq, { all: true });
    expect(all.map((d) => [d.id, d.replayed?.to])).toEqual([
      ['0:0', undefined],
      ['0:1', `${origin}/${again[0]!.partition}@${again[0]!.offset}`],
      ['0:2', undefined],
    ]);
    const rest = await replayDeadLetters(kafka, dlq);
    expect(rest.map((d) => d.id)).toEqual(['0:0', '0:2']);
    expect(await listDeadLetters(kafka, dlq)).toEqual([]);
    expect((await replayDeadLetters(kafka, dlq)).map((d) => d.id)).toEqual([]);
    const origins = await readTopics(kafka, [origin], (m) => m.length >= 3, 30_000, 1_000);
    expect(origins.map((m) => m.key).sort()).toEqual(['{"id":1}', '{"id":2}', '{"id":3}']);
  });
});
