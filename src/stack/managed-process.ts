import { execFile, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCodes, ReplicatorError } from '../core/errors.js';

/** What the stack script needs of a background service it starts: its PID file, readiness, stop. */

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Polls `answers` until it holds; fails as soon as the process dies, or after `timeoutMs`, naming the log. */
export async function waitUntilAnswering(o: {
  name: string;
  answers: () => Promise<unknown>;
  alive: () => boolean;
  timeoutMs: number;
  pollMs: number;
  logFile: string;
}): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if (await o.answers()) return;
    if (!o.alive())
      throw new ReplicatorError(ErrorCodes.STACK_START_FAILED, `${o.name} exited; see ${o.logFile}`);
    if (Date.now() > deadline) {
      throw new ReplicatorError(
        ErrorCodes.STACK_START_FAILED,
        `${o.name} did not answer within ${o.timeoutMs} ms; see ${o.logFile}`,
      );
    }
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}

/** SIGTERM to the process of a PID file (never one the file does not name), SIGKILL after 30 s; clears the file. */
export async function stopByPidFile(
  pidFile: string,
  name: string,
  log: (line: string) => void,
): Promise<boolean> {
  const pid = readPid(pidFile);
  if (!pid || !pidAlive(pid)) return false;
  log(`${name}: stopping pid ${pid}`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (pidAlive(pid)) {
    log(`${name}: pid ${pid} ignored SIGTERM for 30 s; sending SIGKILL`);
    process.kill(pid, 'SIGKILL');
  }
  writeFileSync(pidFile, '');
  return true;
}

/**
 * Starts a background service: `command` detached, its output appended to `logFile`, its PID written to `pidFile`
 * (what `stopByPidFile` stops), then waits until `answers` holds. Returns the PID.
 */
export async function startDetached(o: {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  logFile: string;
  pidFile: string;
  answers: () => Promise<unknown>;
  timeoutMs: number;
  pollMs: number;
  /** Called once the process is spawned (to say so), before waiting for it to answer. */
  onSpawned?: (pid: number) => void;
}): Promise<number> {
  const out = openSync(o.logFile, 'a');
  const child = spawn(o.command, o.args, {
    detached: true,
    stdio: ['ignore', out, out],
    ...(o.env ? { env: o.env } : {}),
  });
  child.unref();
  if (!child.pid) throw new ReplicatorError(ErrorCodes.STACK_START_FAILED, `could not spawn ${o.command}`);
  const pid = child.pid;
  writeFileSync(o.pidFile, `${pid}\n`);
  o.onSpawned?.(pid);
  await waitUntilAnswering({
    name: o.name,
    answers: o.answers,
    alive: () => pidAlive(pid),
    timeoutMs: o.timeoutMs,
    pollMs: o.pollMs,
    logFile: o.logFile,
  });
  return pid;
}

/** Fails with STACK_TOOL_MISSING, saying how to install it, unless `binary --version` runs. */
export async function requireTool(binary: string, install: string): Promise<void> {
  try {
    await promisify(execFile)(binary, ['--version']);
  } catch {
    throw new ReplicatorError(
      ErrorCodes.STACK_TOOL_MISSING,
      `${binary} is not installed: install it (${install})`,
    );
  }
}
