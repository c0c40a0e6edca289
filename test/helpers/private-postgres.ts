import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './daemon.js';

const exec = promisify(execFile);

/**
 * A PostgreSQL cluster of the test's own (initdb in a temp dir, its own port, logical replication on) for tests
 * that restart or stop the server or need password authentication: the shared server on :5432 serves every other
 * file and trusts every local connection, so it is never restarted and never checks a password.
 */
export interface PrivatePostgres {
  readonly port: number;
  /** A URL for `database` as `user` (the superuser `postgres` by default), with `password` if given. */
  url(database?: string, user?: string, password?: string): string;
  start(): Promise<void>;
  /** Fast shutdown: every connection is terminated, as in a failover or a maintenance restart. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the server and removes its files. */
  destroy(): Promise<void>;
}

export interface PrivatePostgresOptions {
  /** pg_hba.conf lines placed before the default `trust` for local connections (e.g. a scram-sha-256 rule). */
  hba?: string[];
}

/** initdb and pg_ctl refuse to run as root; as root they run as the `postgres` OS user. */
const asRoot = userInfo().uid === 0;
async function pgTool(tool: string, args: string[]): Promise<void> {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', tool, ...args]] : [tool, args];
  await exec(cmd, argv, { timeout: 120_000 });
}

async function postgresUid(): Promise<{ uid: number; gid: number }> {
  const { stdout } = await exec('id', ['-u', 'postgres']);
  const { stdout: g } = await exec('id', ['-g', 'postgres']);
  return { uid: Number(stdout.trim()), gid: Number(g.trim()) };
}

export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'private-pg-'));
  if (asRoot) {
    const { uid, gid } = await postgresUid();
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const port = await freePort();
  await pgTool('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  writeFileSync(
    join(data, 'postgresql.auto.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'wal_level = logical',
      'max_replication_slots = 10',
      'max_wal_senders = 10',
      // A test cluster: durability is not what it tests, speed is welcome.
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(data, 'pg_hba.conf'),
    [
      ...(options.hba ?? []),
      'local all all trust',
      'host all all 127.0.0.1/32 trust',
      'local replication all trust',
      'host replication all 127.0.0.1/32 trust',
      '',
    ].join('\n'),
  );
  if (asRoot) {
    const { uid, gid } = await postgresUid();
    chownSync(join(data, 'postgresql.auto.conf'), uid, gid);
    chownSync(join(data, 'pg_hba.conf'), uid, gid);
  }
  const ctl = (action: string, extra: string[] = []) =>
    pgTool('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', action, ...extra]);
  const cluster: PrivatePostgres = {
    port,
    url: (database = 'postgres', user = 'postgres', password?: string) => {
      const u = new URL(`postgres://127.0.0.1:${port}/${database}`);
      u.username = user;
      if (password !== undefined) u.password = password;
      return u.toString();
    },
    start: () => ctl('start'),
    stop: () => ctl('stop', ['-m', 'fast']),
    restart: () => ctl('restart', ['-m', 'fast']),
    destroy: async () => {
      await ctl('stop', ['-m', 'immediate']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
