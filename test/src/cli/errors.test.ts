import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../src/core/errors.js';
import { LEGACY_DDL } from '../../../transforms/legacy-schema.js';
import { type PrivatePostgres, startPrivatePostgres } from '../../helpers/private-postgres.js';
import { freshDatabase, freshName, kafkaBrokers, pgAdminUrl, withClient } from '../../helpers/resources.js';

const bin = new URL('../../../bin/replicator.js', import.meta.url).pathname;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function replicator(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

function withPort(url: string, port: string): string {
  const u = new URL(url);
  u.port = port;
  return u.toString();
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** A config file (JSON) in a fresh directory; returns its path. */
function configFile(o: { source?: string; target?: string; brokers?: string[] }): string {
  const dir = mkdtempSync(join(tmpdir(), 'cli-errors-'));
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      source: { url: o.source ?? pgAdminUrl(), tables: ['public.users'] },
      ...(o.target ? { target: { url: o.target } } : {}),
      kafka: { brokers: o.brokers ?? [kafkaBrokers()], topicPrefix: freshName('clierr') },
    }),
  );
  return file;
}

interface Row {
  name: string;
  args: () => string[];
  env?: Record<string, string>;
  code: keyof typeof EXIT_CODES;
  /** What the message must name (the endpoint, the flag, the variable). */
  names: () => string[];
  json: boolean;
}

const missingDb = freshName('nodb');

// The shared server trusts every local connection, so the wrong password is tried on a private cluster whose
// pg_hba asks role `app` for a scram-sha-256 password.
let privatePg: PrivatePostgres;
const WRONG_PASSWORD = 'not-the-password-4f2a';
// A legacy database with its tables beside a target where `init-target` never ran.
let legacy: { url: string };
let uninitialised: { url: string };
beforeAll(async () => {
  privatePg = await startPrivatePostgres({ hba: ['host all app 127.0.0.1/32 scram-sha-256'] });
  await withClient(privatePg.url(), (c) => c.query("CREATE ROLE app LOGIN PASSWORD 'the-password'"));
  legacy = await freshDatabase('clierr_legacy');
  await withClient(legacy.url, (c) => c.query(LEGACY_DDL));
  uninitialised = await freshDatabase('clierr_v2');
});
afterAll(() => privatePg?.destroy());

const rows: Row[] = [
  {
    name: 'a target init-target never ran on (verify --json)',
    args: () => [
      'verify',
      '--json',
      '--config',
      configFile({ source: legacy.url, target: uninitialised.url }),
    ],
    code: 'TARGET_NOT_INITIALIZED',
    names: () => ['replicator init-target', 'users'],
    json: true,
  },
  {
    name: 'a wrong password (verify --json)',
    args: () => [
      'verify',
      '--json',
      '--config',
      configFile({ target: privatePg.url('postgres', 'app', WRONG_PASSWORD) }),
    ],
    code: 'PG_AUTH_FAILED',
    names: () => [`127.0.0.1:${privatePg.port}/postgres`],
    json: true,
  },
  {
    name: 'unreachable Kafka (dlq list --json)',
    args: () => ['dlq', 'list', '--json', '--config', configFile({ brokers: ['127.0.0.1:1'] })],
    code: 'KAFKA_UNREACHABLE',
    names: () => ['127.0.0.1:1'],
    json: true,
  },
  {
    name: 'unreachable PostgreSQL (verify --json)',
    args: () => ['verify', '--json', '--config', configFile({ target: withPort(pgAdminUrl(), '1') })],
    code: 'PG_UNREACHABLE',
    names: () => ['127.0.0.1:1/postgres'],
    json: true,
  },
  {
    name: 'a database that does not exist (verify --json)',
    args: () => [
      'verify',
      '--json',
      '--config',
      configFile({ target: withDatabase(pgAdminUrl(), missingDb) }),
    ],
    code: 'PG_DATABASE_MISSING',
    names: () => [`${new URL(pgAdminUrl()).host}/${missingDb}`],
    json: true,
  },
  {
    name: 'a missing config file (status --json)',
    args: () => ['status', '--json', '--config', '/nonexistent/replicator.config.yaml'],
    code: 'CONFIG_MISSING',
    names: () => ['/nonexistent/replicator.config.yaml'],
    json: true,
  },
  {
    name: 'a non-numeric flag (cutover --max-lag abc)',
    args: () => ['cutover', '--max-lag', 'abc', '--config', configFile({})],
    code: 'CONFIG_INVALID',
    names: () => ['--max-lag', 'abc'],
    json: false,
  },
  {
    name: 'an unknown log level (REPLICATOR_LOG_LEVEL=verbose)',
    args: () => ['status', '--json', '--config', configFile({})],
    env: { REPLICATOR_LOG_LEVEL: 'verbose' },
    code: 'CONFIG_INVALID',
    names: () => ['REPLICATOR_LOG_LEVEL', 'verbose', 'debug', 'warn'],
    json: true,
  },
];

describe('CLI failures: a code, its own exit status, a message naming the endpoint', () => {
  it.each(rows)(
    '$name → $code',
    async (row) => {
      const r = await replicator(row.args(), row.env);
      expect(r.status, r.stderr).toBe(EXIT_CODES[row.code]);
      // stderr is JSON lines: the command's error (the one with a code) and kafkajs's logs, routed through our logger.
      const lines = r.stderr.trim().split('\n');
      for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
      const errors = lines
        .map((l) => JSON.parse(l) as { level: unknown; code?: string; msg: string })
        .filter((l) => l.code !== undefined);
      expect(errors, r.stderr).toHaveLength(1);
      const last = errors[0] as { level: unknown; code: string; msg: string };
      expect(last.level).toBe('error');
      expect(last.code).toBe(row.code);
      for (const n of row.names()) expect(last.msg).toContain(n);
      expect(last.msg).not.toMatch(/\n/);
      // No password, and no URL (which could carry one).
      expect(r.stderr).not.toMatch(/postgres(ql)?:\/\//);
      expect(r.stderr + r.stdout).not.toContain(WRONG_PASSWORD);
      if (row.json) expect(r.stdout.trim(), 'stdout of a --json command').toBe('');
    },
    60_000,
  );

  it('--version prints the package version', async () => {
    const r = await replicator(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
