import { readFileSync } from 'node:fs';
import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import {
  classifyConnectionError,
  ErrorCodes,
  EXIT_CODES,
  exitCodeFor,
  isReplicatorError,
  isTransient,
  ReplicatorError,
} from '../../../src/core/errors.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

/** The rows of README's "Exit codes" table: code → exit status. */
function readmeExitCodes(): Map<string, number> {
  const section = readme.split(/^### Exit codes$/m)[1]?.split(/^#/m)[0] ?? '';
  const rows = new Map<string, number>();
  for (const m of section.matchAll(/^\| `([A-Z_]+)` \| (\d+) \| .+ \|$/gm)) {
    expect(rows.has(m[1] as string), `${m[1]} listed twice`).toBe(false);
    rows.set(m[1] as string, Number(m[2]));
  }
  return rows;
}

describe('exit codes', () => {
  it('README lists exactly EXIT_CODES (and UNEXPECTED = 1)', () => {
    expect(Object.fromEntries(readmeExitCodes())).toEqual({ UNEXPECTED: 1, ...EXIT_CODES });
  });

  it('every error code has one, its own, and 0/1 are not any code’s', () => {
    expect(Object.keys(EXIT_CODES).sort()).toEqual(Object.values(ErrorCodes).sort());
    const statuses = Object.values(EXIT_CODES);
    expect(new Set(statuses).size).toBe(statuses.length);
    expect(statuses).not.toContain(0);
    expect(statuses).not.toContain(1);
    expect(EXIT_CODES.CONFIG_INVALID).toBe(2);
    expect(EXIT_CODES.ABORTED).toBe(130);
    expect(exitCodeFor(new Error('x'))).toBe(1);
  });
});

const pgError = (code: string, message: string) =>
  Object.assign(new Error(message), { code, severity: 'FATAL' });
const url = 'postgres://app:s3cret@db.example:6543/legacy';

describe('classifyConnectionError', () => {
  it.each([
    ['28P01', 'password authentication failed for user "app"', ErrorCodes.PG_AUTH_FAILED],
    ['28000', 'no pg_hba.conf entry for host', ErrorCodes.PG_AUTH_FAILED],
    ['3D000', 'database "legacy" does not exist', ErrorCodes.PG_DATABASE_MISSING],
    ['ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:6543', ErrorCodes.PG_UNREACHABLE],
    ['ENOTFOUND', 'getaddrinfo ENOTFOUND db.example', ErrorCodes.PG_UNREACHABLE],
  ])('PostgreSQL %s → %s, naming host:port/db and not the password', (code, message, expected) => {
    const e = classifyConnectionError(pgError(code, message), { kind: 'postgres', url, role: 'source' });
    expect(isReplicatorError(e, expected)).toBe(true);
    const msg = (e as ReplicatorError).message;
    expect(msg).toContain('db.example:6543/legacy');
    expect(msg).not.toContain('s3cret');
  });

  it('a pg connection timeout is PG_UNREACHABLE', () => {
    const e = classifyConnectionError(new Error('Connection terminated due to connection timeout'), {
      kind: 'postgres',
      url,
    });
    expect(isReplicatorError(e, ErrorCodes.PG_UNREACHABLE)).toBe(true);
  });

  it('kafkajs connection errors (wrapped in retries) → KAFKA_UNREACHABLE naming the brokers', () => {
    const conn = Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:1'), {
      name: 'KafkaJSConnectionError',
    });
    const retries = Object.assign(new Error(conn.message), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      originalError: conn,
    });
    const e = classifyConnectionError(retries, { kind: 'kafka', brokers: ['127.0.0.1:1', 'k2:9092'] });
    expect(isReplicatorError(e, ErrorCodes.KAFKA_UNREACHABLE)).toBe(true);
    expect((e as ReplicatorError).message).toContain('127.0.0.1:1,k2:9092');
  });

  it('leaves other errors (and ReplicatorErrors) unchanged', () => {
    const other = pgError('42P01', 'relation "users" does not exist');
    expect(classifyConnectionError(other, { kind: 'postgres', url })).toBe(other);
    const ours = new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'x');
    expect(classifyConnectionError(ours, { kind: 'kafka', brokers: ['b:1'] })).toBe(ours);
    expect(classifyConnectionError(new Error('boom'), { kind: 'kafka', brokers: ['b:1'] })).toBeInstanceOf(
      Error,
    );
  });
});

describe('isTransient', () => {
  const refused = () => new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1');

  it('a broker connection error, and kafkajs giving up on one after its retries, are transient', () => {
    expect(isTransient(refused())).toBe(true);
    const exceeded = new KafkaJSNumberOfRetriesExceeded(refused(), { retryCount: 5, retryTime: 1000 });
    expect(isTransient(exceeded)).toBe(true);
    // What an outer kafkajs retrier makes of the inner one's "retries exceeded" (seen when the broker was down
    // for a minute): non-retriable for kafkajs, but caused by a refused connection, so a later session can work.
    // (kafkajs's type declarations leave out the options its constructors take.)
    const Wrap = KafkaJSNonRetriableError as unknown as new (
      e: Error,
      o: { cause: unknown },
    ) => KafkaJSNonRetriableError;
    const wrapped = new Wrap(exceeded, { cause: (exceeded as { cause?: unknown }).cause ?? exceeded });
    expect(wrapped.retriable).toBe(false);
    expect(isTransient(wrapped)).toBe(true);
  });

  it('kafkajs errors that retrying cannot fix, and plain bugs, are not', () => {
    const auth = new KafkaJSNonRetriableError(new Error('SASL authentication failed'));
    expect(isTransient(auth)).toBe(false);
    expect(isTransient(new TypeError('x is not a function'))).toBe(false);
    expect(isTransient(new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'bad'))).toBe(false);
  });
});
