import { pino } from 'pino';
import { ErrorCodes, ReplicatorError } from './errors.js';

export type Logger = pino.Logger;

/**
 * REPLICATOR_LOG_LEVEL, or `fallback` when unset; a level pino does not know is CONFIG_INVALID naming the variable
 * and the allowed levels (not a crash inside pino).
 */
export function logLevelFromEnv(fallback = 'info', env: NodeJS.ProcessEnv = process.env): string {
  const level = env.REPLICATOR_LOG_LEVEL;
  if (level === undefined || level === '') return fallback;
  const allowed = [...Object.keys(pino.levels.values), 'silent'];
  if (!allowed.includes(level))
    throw new ReplicatorError(
      ErrorCodes.CONFIG_INVALID,
      `REPLICATOR_LOG_LEVEL=${JSON.stringify(level)} is not a log level; use one of ${allowed.join(', ')}`,
      { details: { variable: 'REPLICATOR_LOG_LEVEL' } },
    );
  return level;
}

/**
 * Structured JSON logs. Connection strings and passwords never reach a log line: these paths are redacted
 * wherever they appear, and code logs `describePgUrl(url)` (host:port/db) instead of URLs.
 */
export function createLogger(
  options: { level?: string; name?: string; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      name: options.name ?? 'replicator',
      level: options.level ?? logLevelFromEnv('info'),
      redact: {
        paths: ['*.password', '*.url', '*.connectionString', 'password', 'url', 'connectionString', '*.sasl'],
        censor: '***',
      },
    },
    options.destination,
  );
}

/** A logger that writes nothing, for tests and library callers that pass none. */
export const silentLogger = (): Logger => pino({ level: 'silent' });

/**
 * The logger of a command whose stdout is its output (a report, JSON lines): diagnostics, kafkajs's included, go to
 * stderr, at `error` unless REPLICATOR_LOG_LEVEL says otherwise.
 */
export const commandLogger = (level = logLevelFromEnv('error')): Logger =>
  createLogger({ level, destination: pino.destination(2) });
