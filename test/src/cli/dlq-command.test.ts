import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { deadLetterHeaders } from '../../../src/contracts/dead-letter.js';
import { dlqTopic } from '../../../src/contracts/topics.js';
import { ensureTopics } from '../../../src/core/kafka-topics.js';
import { freshName, kafkaBrokers, pgAdminUrl, testKafka } from '../../helpers/resources.js';

const run = promisify(execFile);
const bin = new URL('../../../bin/replicator.js', import.meta.url).pathname;

describe('replicator dlq list', () => {
  it('--json piped into another process: every letter arrives, one JSON object per line, nothing else on stdout', async () => {
    const prefix = freshName('dlqcli');
    const topic = dlqTopic(prefix);
    const kafka = testKafka();
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ topic, partitions: 1, replicationFactor: 1 }]);
    await admin.disconnect();
    const letters = 1_500;
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < letters; i += 500) {
      await producer.send({
        topic,
        messages: Array.from({ length: 500 }, (_, j) => ({
          key: JSON.stringify({ id: String(i + j) }),
          value: JSON.stringify({ after: { id: String(i + j), note: 'x'.repeat(200) } }),
          headers: deadLetterHeaders({
            code: 'BOOKING_UNKNOWN_STATUS',
            message: `bad row ${i + j}`,
            stage: 'sink',
            transform: 'bookings',
            sourceTopic: `${prefix}.public.bookings`,
            sourcePartition: 0,
            sourceOffset: String(i + j),
            table: 'public.bookings',
          }),
        })),
      });
    }
    await producer.disconnect();
    const dir = mkdtempSync(join(tmpdir(), 'dlq-cli-'));
    const config = join(dir, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        source: { url: pgAdminUrl(), tables: ['public.bookings'] },
        kafka: { brokers: [kafkaBrokers()], topicPrefix: prefix },
      }),
    );
    // Through a real pipe to a slow reader: the CLI must not exit before stdout is drained.
    const { stdout } = await run(
      'bash',
      ['-c', `node ${bin} dlq list --json --config ${config} | (sleep 1; cat) | wc -l`],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    expect(Number(stdout.trim())).toBe(letters);
    const { stdout: json } = await run(process.execPath, [bin, 'dlq', 'list', '--json', '--config', config], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const lines = json.trim().split('\n');
    expect(lines.length).toBe(letters);
    const parsed = lines.map((l) => JSON.parse(l) as { table: string; key: string; code: string });
    expect(parsed.every((d) => d.table === 'public.bookings' && d.key.startsWith('{"id":'))).toBe(true);
  }, 120_000);
});
