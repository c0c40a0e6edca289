import { pino } from 'pino';

export type Logger = pino.Logger;

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
      level: options.level ?? process.env.REPLICATOR_LOG_LEVEL ?? 'info',
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
export const commandLogger = (level = process.env.REPLICATOR_LOG_LEVEL ?? 'error'): Logger =>
  createLogger({ level, destination: pino.destination(2) });
