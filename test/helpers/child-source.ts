import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReplicatorConfig } from '../../src/pipeline/config/load-config.js';

const bin = new URL('../../bin/replicator.js', import.meta.url).pathname;

/** The daemon as a real child process (`replicator start`), so tests can kill -9 it. */
export class ChildReplicator {
  private child: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'replicator-test-'));
  readonly configFile = join(this.dir, 'config.json');
  readonly logFile = join(this.dir, 'replicator.log');
  private exited: Promise<number | null> | undefined;

  constructor(
    config: ReplicatorConfig,
    private readonly role: 'source' | 'sink' | 'all' = 'source',
    private readonly env: Record<string, string> = {},
  ) {
    const { tables, ...source } = config.source;
    const file = { ...config, source: { ...source, tables: tables.map((t) => `${t.schema}.${t.table}`) } };
    writeFileSync(this.configFile, JSON.stringify(file, null, 2));
  }

  start(): void {
    const out = openSync(this.logFile, 'a');
    this.child = spawn(process.execPath, [bin, 'start', '--role', this.role, '--config', this.configFile], {
      stdio: ['ignore', out, out],
      // Any free port for /metrics: several daemons run at once (a standby, a restarted one not yet gone).
      env: { ...process.env, REPLICATOR_LOG_LEVEL: 'info', REPLICATOR_METRICS_PORT: '0', ...this.env },
    });
    const child = this.child;
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  /** null while the process runs. */
  get exitCode(): number | null {
    return this.child?.exitCode ?? null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** kill -9: no flush, no acknowledgement, no goodbye. */
  async kill9(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait; returns the exit code. */
  async stop(): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null) return this.child?.exitCode ?? null;
    this.child.kill('SIGTERM');
    return (await this.exited) ?? null;
  }

  log(): string {
    return readFileSync(this.logFile, 'utf8');
  }

  /** Waits until the log contains `pattern` (e.g. 'streaming'); throws with the log when it never does. */
  async waitForLog(pattern: RegExp, timeoutMs = 30_000, from = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (pattern.test(this.log().slice(from))) return;
      if (this.child?.exitCode !== null && this.child?.exitCode !== undefined) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`log never matched ${pattern}:\n${this.log().slice(-4000)}`);
  }
}
