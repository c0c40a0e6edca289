import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, startDetached, stopByPidFile } from './managed-process.js';

/**
 * The Prometheus community's postgres_exporter beside the legacy server: it reports the replication slots
 * (`pg_replication_slots_active`, `pg_replication_slots_pg_wal_lsn_diff` = WAL retained for the slot) from
 * PostgreSQL itself, so the slot is watched — and its alerts can fire — while the replicator is down.
 */
export interface LocalPostgresExporterOptions {
  /** Folder for the log and the PID file (git-ignored under .stack/). */
  dir: string;
  host: string;
  port: number;
  /** The server to watch (a monitoring role is enough; never printed). */
  pgUrl: string;
  /** Debian's `prometheus-postgres-exporter` package installs it on the PATH under this name. */
  binary?: string;
}

type Log = (line: string) => void;

export const POSTGRES_SCRAPE_JOB = 'postgres';

const paths = (o: LocalPostgresExporterOptions) => ({
  pid: join(o.dir, 'postgres-exporter.pid'),
  log: join(o.dir, 'postgres-exporter.log'),
});

export const postgresExporterTarget = (o: Pick<LocalPostgresExporterOptions, 'host' | 'port'>) =>
  `${o.host}:${o.port}`;

async function answers(target: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${target}/metrics`, { signal: AbortSignal.timeout(2000) });
    return res.ok && (await res.text()).includes('pg_up 1');
  } catch {
    return false;
  }
}

/** Starts the exporter unless one already answers at host:port; resolves once it reports `pg_up 1`. */
export async function ensurePostgresExporter(
  o: LocalPostgresExporterOptions,
  log: Log,
): Promise<{ startedPid?: number }> {
  const target = postgresExporterTarget(o);
  const p = paths(o);
  if (await answers(target)) {
    log(`postgres_exporter: already answering at ${target}`);
    return {};
  }
  const binary = o.binary ?? 'prometheus-postgres-exporter';
  await requireTool(binary, 'Debian: apt-get install prometheus-postgres-exporter');
  mkdirSync(o.dir, { recursive: true });
  const url = new URL(o.pgUrl);
  if (!url.searchParams.has('sslmode')) url.searchParams.set('sslmode', 'disable');
  const pid = await startDetached({
    name: 'postgres_exporter',
    command: binary,
    args: [`--web.listen-address=${target}`],
    // The connection string goes through the environment, not the command line (ps shows arguments).
    env: { ...process.env, DATA_SOURCE_NAME: url.toString() },
    logFile: p.log,
    pidFile: p.pid,
    answers: () => answers(target),
    timeoutMs: 30_000,
    pollMs: 200,
    onSpawned: (pid) => log(`postgres_exporter: started pid ${pid} on ${target} (log ${p.log})`),
  });
  return { startedPid: pid };
}

/** Stops the exporter whose PID file `ensurePostgresExporter` wrote (never one it did not start). */
export async function stopPostgresExporter(o: LocalPostgresExporterOptions, log: Log): Promise<boolean> {
  return stopByPidFile(paths(o).pid, 'postgres_exporter', log);
}
