import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type ResourceLimits, Worker } from 'node:worker_threads';
import { type ErrorCode, ErrorCodes, ReplicatorError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * tsx's ESM API, found from this file: eval'd code resolves packages from the working directory, which may be
 * anywhere. Read from tsx's own exports map (its `import` entry).
 */
function tsxApi(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const { exports } = require(manifest) as { exports: Record<string, { import: { default: string } }> };
  return pathToFileURL(join(dirname(manifest), exports['./esm/api']!.import.default)).href;
}

/**
 * A thread running the module `entry` (a URL of a .js or .ts file). Built, modules are .js. Run from source (tsx,
 * vitest) they are .ts: the thread registers tsx's loader itself, as a worker does not inherit the loader hooks of
 * its parent.
 */
export function startThread(entry: URL, workerData: unknown, resourceLimits: ResourceLimits): Worker {
  return entry.pathname.endsWith('.ts')
    ? new Worker(
        `import(${JSON.stringify(tsxApi())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`,
        { eval: true, workerData, resourceLimits },
      )
    : new Worker(entry, { workerData, resourceLimits });
}

/** An error as it crosses the thread boundary: what classifying it reads (names, codes, causes), no stack. */
export interface ErrorShape {
  name: string;
  message: string;
  code?: string;
  /** A PostgreSQL error's severity: with its code (SQLSTATE), how it is told from a Node one. */
  severity?: string;
  retriable?: boolean;
  cause?: ErrorShape;
}

export function toShape(e: unknown, depth = 0): ErrorShape {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const { code, severity, retriable, cause } = e as Error & {
    code?: unknown;
    severity?: unknown;
    retriable?: unknown;
  };
  return {
    name: e.name,
    message: e.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof severity === 'string' ? { severity } : {}),
    ...(typeof retriable === 'boolean' ? { retriable } : {}),
    ...(cause !== undefined && depth < 5 ? { cause: toShape(cause, depth + 1) } : {}),
  };
}

export function fromShape(s: ErrorShape): Error {
  const cause = s.cause ? fromShape(s.cause) : undefined;
  // Our own errors come back as themselves (their code decides retries, metrics and the exit status).
  if (s.name === 'ReplicatorError' && s.code !== undefined && s.code in ErrorCodes)
    return new ReplicatorError(s.code as ErrorCode, s.message, cause ? { cause } : {});
  const e = new Error(s.message, cause ? { cause } : undefined);
  e.name = s.name;
  Object.assign(e, {
    ...(s.code !== undefined ? { code: s.code } : {}),
    ...(s.severity !== undefined ? { severity: s.severity } : {}),
    ...(s.retriable !== undefined ? { retriable: s.retriable } : {}),
  });
  return e;
}

const PINO_LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

/** Writes a log line a thread's logger produced (pino JSON) with `logger`, at its level and with its fields. */
export function logFromThread(logger: Logger, line: string): void {
  const { level, msg, time: _t, pid: _p, hostname: _h, name: _n, ...rest } = JSON.parse(line);
  logger[PINO_LEVELS[level as number] ?? 'info'](rest, msg);
}
