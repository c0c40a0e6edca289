import { Kafka, KafkaJSConnectionError, KafkaJSError, logLevel } from 'kafkajs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, ReplicatorError } from '../../../../src/core/errors.js';
import { RETRIED_CODES, stageErrorCode } from '../../../../src/pipeline/observability/stage-errors.js';
import { freePort } from '../../../helpers/daemon.js';
import { pgAdminUrl, withAdmin } from '../../../helpers/resources.js';

const pgError = (code: string, message = 'x') =>
  Object.assign(new Error(message), { code, severity: 'FATAL' });

describe('stageErrorCode (the code label of replicator_stage_errors_total)', () => {
  it('is a ReplicatorError’s own code, also when it is a cause of what was thrown', () => {
    const e = new ReplicatorError(ErrorCodes.REPLICATION_STREAM_LOST, 'stream ended');
    expect(stageErrorCode(e)).toBe('REPLICATION_STREAM_LOST');
    expect(stageErrorCode(new Error('wrapped', { cause: e }))).toBe('REPLICATION_STREAM_LOST');
  });

  it('names what the drivers throw unwrapped: PostgreSQL SQLSTATEs, sockets, kafkajs', () => {
    expect(stageErrorCode(pgError('57P01'))).toBe('PG_CONNECTION_FAILED');
    expect(stageErrorCode(pgError('08006'))).toBe('PG_CONNECTION_FAILED');
    expect(stageErrorCode(pgError('53300'))).toBe('PG_CONNECTION_FAILED');
    expect(stageErrorCode(pgError('28P01'))).toBe('PG_AUTH_FAILED');
    expect(stageErrorCode(pgError('3D000'))).toBe('PG_DATABASE_MISSING');
    expect(stageErrorCode(new Error('Connection terminated unexpectedly'))).toBe('PG_CONNECTION_FAILED');
    expect(stageErrorCode(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(
      'PG_CONNECTION_FAILED',
    );
    expect(stageErrorCode(new KafkaJSConnectionError('Connection error: ECONNREFUSED'))).toBe(
      'KAFKA_UNREACHABLE',
    );
    expect(stageErrorCode(new KafkaJSError('The coordinator is not available', { retriable: true }))).toBe(
      'KAFKA_UNAVAILABLE',
    );
  });

  it('is UNEXPECTED for anything else (a deadlock, a bug, a thrown string)', () => {
    expect(stageErrorCode(pgError('40P01'))).toBe('UNEXPECTED');
    expect(stageErrorCode(new TypeError('undefined is not a function'))).toBe('UNEXPECTED');
    expect(stageErrorCode('nope')).toBe('UNEXPECTED');
  });

  it('classifies the errors pg and kafkajs really throw: a refused connection, a terminated one', async () => {
    const closed = await freePort();
    const url = new URL(pgAdminUrl());
    url.port = String(closed);
    const refused = await new pg.Client({ connectionString: url.toString() }).connect().catch((e) => e);
    expect(stageErrorCode(refused)).toBe('PG_UNREACHABLE');

    const client = new pg.Client({ connectionString: pgAdminUrl(), application_name: 'stage-errors-test' });
    await client.connect();
    client.on('error', () => {});
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await withAdmin((c) => c.query('SELECT pg_terminate_backend($1)', [pid]));
    const terminated = await client.query('SELECT 1').catch((e) => e);
    await client.end().catch(() => {});
    expect(stageErrorCode(terminated)).toBe('PG_CONNECTION_FAILED');

    const producer = new Kafka({
      clientId: 'stage-errors-test',
      brokers: [`127.0.0.1:${closed}`],
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
    }).producer();
    const kafkaDown = await producer.connect().catch((e) => e);
    await producer.disconnect().catch(() => {});
    expect(stageErrorCode(kafkaDown)).toBe('KAFKA_UNREACHABLE');
  });

  it('starts series for the default-retryable codes and UNEXPECTED, which is what a retried error carries', () => {
    expect([...RETRIED_CODES].sort()).toEqual(
      [
        'KAFKA_UNAVAILABLE',
        'KAFKA_UNREACHABLE',
        'PG_CONNECTION_FAILED',
        'PG_UNREACHABLE',
        'REPLICATION_STREAM_LOST',
        'SCHEMA_REGISTRY_FAILED',
        'UNEXPECTED',
      ].sort(),
    );
  });
});
