import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import { describePgUrl } from '../core/redact.js';
import { quoteIdent } from '../core/sql.js';

const run = promisify(execFile);

/** What logical decoding for this product needs from the server; checked by `stack up`. */
export const REQUIRED_PG_SETTINGS = [
  { name: 'wal_level', ok: (v: string) => v === 'logical', want: 'logical' },
  { name: 'max_replication_slots', ok: (v: string) => Number(v) >= 16, want: '16' },
  { name: 'max_wal_senders', ok: (v: string) => Number(v) >= 16, want: '16' },
] as const;

export interface LocalCluster {
  version: string;
  name: string;
  port: number;
  status: string;
}

export interface PostgresStatus {
  url: string;
  reachable: boolean;
  version?: string;
  settings?: Record<string, string>;
  cluster?: LocalCluster;
}

type Log = (line: string) => void;

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host === '[::1]' || host === '';
}

/** The Debian cluster serving `port` on this machine, if pg_lsclusters knows one. */
export async function findLocalCluster(url: string): Promise<LocalCluster | undefined> {
  const u = new URL(url);
  if (!isLoopback(u.hostname)) return undefined;
  const port = Number(u.port || 5432);
  let out: string;
  try {
    out = (await run('pg_lsclusters', ['--no-header'])).stdout;
  } catch {
    return undefined;
  }
  for (const line of out.split('\n')) {
    const [version, name, p, status] = line.trim().split(/\s+/);
    if (version && name && Number(p) === port) return { version, name, port, status: status ?? 'unknown' };
  }
  return undefined;
}

async function connect(url: string): Promise<pg.Client | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    return client;
  } catch {
    await client.end().catch(() => {});
    return undefined;
  }
}

async function waitForServer(url: string, timeoutMs: number): Promise<pg.Client> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = await connect(url);
    if (client) return client;
    if (Date.now() > deadline) {
      throw new ReplicatorError(
        ErrorCodes.PG_CONNECTION_FAILED,
        `PostgreSQL at ${describePgUrl(url)} did not answer`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function pgCtl(cluster: LocalCluster, action: 'start' | 'restart' | 'stop'): Promise<void> {
  try {
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', cluster.version, cluster.name, action]);
  } catch (e) {
    throw new ReplicatorError(
      ErrorCodes.STACK_START_FAILED,
      `pg_ctlcluster ${cluster.version} ${cluster.name} ${action} failed`,
      { cause: e },
    );
  }
}

async function readSettings(client: pg.Client): Promise<Record<string, string>> {
  const names = REQUIRED_PG_SETTINGS.map((s) => s.name);
  const { rows } = await client.query<{ name: string; setting: string }>(
    'SELECT name, setting FROM pg_settings WHERE name = ANY($1)',
    [names],
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
}

/**
 * Makes sure PostgreSQL answers at `url` with logical decoding on. A local Debian cluster that is down is started,
 * and one with the wrong settings is reconfigured (ALTER SYSTEM) and restarted; a remote one is never touched —
 * a wrong setting there is an error naming it. Returns whether this call started the cluster.
 */
export async function ensurePostgres(url: string, log: Log): Promise<{ startedCluster?: LocalCluster }> {
  let startedCluster: LocalCluster | undefined;
  let client = await connect(url);
  if (!client) {
    const cluster = await findLocalCluster(url);
    if (!cluster) {
      throw new ReplicatorError(
        ErrorCodes.PG_CONNECTION_FAILED,
        `PostgreSQL at ${describePgUrl(url)} does not answer and is not a local cluster this script can start`,
      );
    }
    log(`postgres: starting local cluster ${cluster.version}/${cluster.name}`);
    await pgCtl(cluster, 'start');
    startedCluster = cluster;
    client = await waitForServer(url, 30_000);
  }
  try {
    const settings = await readSettings(client);
    const wrong = REQUIRED_PG_SETTINGS.filter((s) => !s.ok(settings[s.name] ?? ''));
    if (wrong.length === 0) return startedCluster ? { startedCluster } : {};
    const cluster = await findLocalCluster(url);
    if (!cluster) {
      const what = wrong.map((s) => `${s.name}=${s.want} (is ${settings[s.name]})`).join(', ');
      throw new ReplicatorError(
        ErrorCodes.PG_SETTING_WRONG,
        `PostgreSQL at ${describePgUrl(url)} needs ${what}; set it in postgresql.conf and restart the server`,
      );
    }
    for (const s of wrong) {
      // ALTER SYSTEM takes no bind parameters; the names and values are our own constants.
      await client.query(`ALTER SYSTEM SET ${quoteIdent(s.name)} = '${s.want}'`);
      log(`postgres: set ${s.name}=${s.want} (was ${settings[s.name]}) with ALTER SYSTEM`);
    }
    await client.end();
    client = undefined;
    log(`postgres: restarting local cluster ${cluster.version}/${cluster.name} to apply the settings`);
    await pgCtl(cluster, 'restart');
    client = await waitForServer(url, 30_000);
    const after = await readSettings(client);
    const still = REQUIRED_PG_SETTINGS.filter((s) => !s.ok(after[s.name] ?? ''));
    if (still.length > 0) {
      throw new ReplicatorError(
        ErrorCodes.PG_SETTING_WRONG,
        `after a restart PostgreSQL still has ${still.map((s) => `${s.name}=${after[s.name]}`).join(', ')}`,
      );
    }
    return startedCluster ? { startedCluster } : {};
  } finally {
    await client?.end().catch(() => {});
  }
}

export async function stopLocalCluster(cluster: LocalCluster, log: Log): Promise<void> {
  log(`postgres: stopping local cluster ${cluster.version}/${cluster.name} (started by stack up)`);
  await pgCtl(cluster, 'stop');
}

export async function postgresStatus(url: string): Promise<PostgresStatus> {
  const cluster = await findLocalCluster(url);
  const client = await connect(url);
  if (!client) return { url: describePgUrl(url), reachable: false, ...(cluster ? { cluster } : {}) };
  try {
    const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v"))
      .rows[0]?.v;
    const settings = await readSettings(client);
    return {
      url: describePgUrl(url),
      reachable: true,
      settings,
      ...(version ? { version } : {}),
      ...(cluster ? { cluster } : {}),
    };
  } finally {
    await client.end().catch(() => {});
  }
}
