import { describe, expect, it } from 'vitest';
import { stackSettings, stackStatus, stackUp } from '../../../src/stack/stack.js';

describe('local stack', () => {
  it('`up` on a running stack is a no-op, and `status` tells what runs where', async () => {
    const settings = stackSettings();
    const lines: string[] = [];
    const result = await stackUp(settings, (l) => lines.push(l));
    expect(result.changed).toBe(false);
    expect(result.kafkaPid).toBeUndefined();
    expect(lines.join('\n')).toMatch(/kafka: already answering at 127\.0\.0\.1:9092/);

    const status = await stackStatus(settings);
    expect(status.postgres.reachable).toBe(true);
    expect(status.postgres.url).toBe('127.0.0.1:5432/postgres');
    expect(status.postgres.settings).toMatchObject({ wal_level: 'logical' });
    expect(Number(status.postgres.settings?.max_replication_slots)).toBeGreaterThanOrEqual(16);
    expect(status.kafka.answering).toBe(true);
    expect(status.kafka.brokers).toBe('127.0.0.1:9092');
  });
});
