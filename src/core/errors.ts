import { describePgUrl } from './redact.js';

/**
 * Every error this project raises carries a stable code from this list, whether retrying can help, and the
 * underlying cause. The CLI maps codes to exit codes (see `exitCodeFor`); dead-letter records carry the code.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** The config file does not exist. */
  CONFIG_MISSING: 'CONFIG_MISSING',
  STACK_TOOL_MISSING: 'STACK_TOOL_MISSING',
  STACK_START_FAILED: 'STACK_START_FAILED',
  PG_SETTING_WRONG: 'PG_SETTING_WRONG',
  PG_CONNECTION_FAILED: 'PG_CONNECTION_FAILED',
  /** A PostgreSQL server refused the connection, its host did not resolve, or connecting timed out. */
  PG_UNREACHABLE: 'PG_UNREACHABLE',
  /** A PostgreSQL server rejected the credentials (SQLSTATE 28P01/28000). */
  PG_AUTH_FAILED: 'PG_AUTH_FAILED',
  /** The database named in a PostgreSQL URL does not exist (SQLSTATE 3D000). */
  PG_DATABASE_MISSING: 'PG_DATABASE_MISSING',
  PREFLIGHT_FAILED: 'PREFLIGHT_FAILED',
  REPLICATION_PROTOCOL: 'REPLICATION_PROTOCOL',
  REPLICATION_STREAM_LOST: 'REPLICATION_STREAM_LOST',
  KAFKA_UNAVAILABLE: 'KAFKA_UNAVAILABLE',
  /** No configured Kafka broker could be connected to. */
  KAFKA_UNREACHABLE: 'KAFKA_UNREACHABLE',
  VALUE_DECODE_FAILED: 'VALUE_DECODE_FAILED',
  KEY_COLUMN_MISSING: 'KEY_COLUMN_MISSING',
  SCHEMA_REGISTRY_FAILED: 'SCHEMA_REGISTRY_FAILED',
  METRICS_LISTEN_FAILED: 'METRICS_LISTEN_FAILED',
  ABORTED: 'ABORTED',
  CUTOVER_REFUSED: 'CUTOVER_REFUSED',
  CUTOVER_FAILED: 'CUTOVER_FAILED',
  /** `verify` found V2 rows that differ from what the legacy rows produce (after the re-checks). */
  VERIFY_DRIFT: 'VERIFY_DRIFT',
  /** The target lacks the V2 tables or the replicator schema: `replicator init-target` has not run there. */
  TARGET_NOT_INITIALIZED: 'TARGET_NOT_INITIALIZED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCodes.PG_CONNECTION_FAILED,
  ErrorCodes.REPLICATION_STREAM_LOST,
  ErrorCodes.KAFKA_UNAVAILABLE,
  ErrorCodes.PG_UNREACHABLE,
  ErrorCodes.KAFKA_UNREACHABLE,
  ErrorCodes.SCHEMA_REGISTRY_FAILED,
]);

export interface ReplicatorErrorOptions {
  cause?: unknown;
  /** Overrides the code's default retryability. */
  retryable?: boolean;
  /** Structured facts for logs and dead-letter headers; never secrets. */
  details?: Record<string, unknown>;
}

export class ReplicatorError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: ReplicatorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReplicatorError';
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

export function isReplicatorError(e: unknown, code?: ErrorCode): e is ReplicatorError {
  return e instanceof ReplicatorError && (code === undefined || e.code === code);
}

/**
 * The exit status of each error code: one status per code (0 is success, 1 an unexpected error). README.md's
 * "Exit codes" table lists the same (a test keeps them equal).
 */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = Object.freeze({
  CONFIG_INVALID: 2,
  CONFIG_MISSING: 3,
  STACK_TOOL_MISSING: 4,
  STACK_START_FAILED: 5,
  PG_SETTING_WRONG: 6,
  PG_CONNECTION_FAILED: 7,
  PG_UNREACHABLE: 8,
  PG_AUTH_FAILED: 9,
  PG_DATABASE_MISSING: 10,
  PREFLIGHT_FAILED: 11,
  REPLICATION_PROTOCOL: 12,
  REPLICATION_STREAM_LOST: 13,
  KAFKA_UNAVAILABLE: 14,
  KAFKA_UNREACHABLE: 15,
  VALUE_DECODE_FAILED: 16,
  KEY_COLUMN_MISSING: 17,
  SCHEMA_REGISTRY_FAILED: 18,
  METRICS_LISTEN_FAILED: 19,
  CUTOVER_REFUSED: 20,
  CUTOVER_FAILED: 21,
  VERIFY_DRIFT: 22,
  TARGET_NOT_INITIALIZED: 23,
  ABORTED: 130,
});

export function exitCodeFor(e: unknown): number {
  return e instanceof ReplicatorError ? EXIT_CODES[e.code] : 1;
}

/** Wraps anything thrown into a ReplicatorError without losing it. */
export function toReplicatorError(e: unknown, code: ErrorCode, message: string): ReplicatorError {
  if (e instanceof ReplicatorError) return e;
  const why = e instanceof Error ? e.message : String(e);
  return new ReplicatorError(code, `${message}: ${why}`, { cause: e });
}

const TRANSIENT_PG_CLASSES = ['08', '53', '57', '40', '55']; // connection, resources, shutdown, rollback, in use

/**
 * Whether retrying the operation that threw `e` can help: a ReplicatorError says so itself; PostgreSQL errors of
 * the connection/shutdown/resource classes, socket errors and retriable Kafka errors can; anything else (a bug, a
 * constraint) cannot, and must surface instead of looping.
 */
export function isTransient(e: unknown): boolean {
  if (e instanceof ReplicatorError) return e.retryable;
  if (!(e instanceof Error)) return false;
  const err = e as Error & { code?: unknown; retriable?: unknown; severity?: unknown };
  if (typeof err.code === 'string') {
    if (/^E[A-Z]+$/.test(err.code)) return true; // ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT…
    if (typeof err.severity === 'string') return TRANSIENT_PG_CLASSES.includes(err.code.slice(0, 2));
  }
  if (e.name.startsWith('KafkaJS')) {
    if (err.retriable !== false || /Connection|Retries|Timeout/.test(e.name)) return true;
    // kafkajs gives up after its own retries with a KafkaJSNonRetriableError around the last error: a broker that
    // was down for those retries may be back for the next session, so what decides is the cause.
    const cause = (e as { cause?: unknown }).cause;
    return cause !== undefined && cause !== e && isTransient(cause);
  }
  // pg's own wording for a client whose connection failed (no SQLSTATE: the socket is gone).
  return /Connection terminated|connection closed|not queryable|timeout/i.test(e.message);
}

/** What a connection was for: a PostgreSQL URL (named by host:port/db, never its password) or Kafka brokers. */
export type ConnectionEndpoint =
  | { kind: 'postgres'; url: string; role?: string }
  | { kind: 'kafka'; brokers: readonly string[] };

const SOCKET_UNREACHABLE =
  /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET)$/;

/** The first error along `e`'s cause chain (kafkajs: `originalError`; Node: `cause`; AggregateError: `errors`). */
function causeChain(e: unknown): (Error & { code?: unknown; severity?: unknown })[] {
  const out: (Error & { code?: unknown; severity?: unknown })[] = [];
  const seen = new Set<unknown>();
  const queue: unknown[] = [e];
  while (queue.length > 0 && out.length < 20) {
    const x = queue.shift();
    if (!(x instanceof Error) || seen.has(x)) continue;
    seen.add(x);
    out.push(x as Error & { code?: unknown });
    const o = x as Error & { originalError?: unknown; errors?: unknown };
    queue.push(o.cause, o.originalError);
    if (Array.isArray(o.errors)) queue.push(...o.errors);
  }
  return out;
}

/**
 * Classifies a failure to connect to `endpoint`: PG_UNREACHABLE, PG_AUTH_FAILED, PG_DATABASE_MISSING or
 * KAFKA_UNREACHABLE, with a message naming the endpoint (host:port/db or the broker list, never a password).
 * Anything that is not a connection failure (and any ReplicatorError) is returned unchanged.
 */
export function classifyConnectionError(e: unknown, endpoint: ConnectionEndpoint): unknown {
  if (e instanceof ReplicatorError) return e;
  const chain = causeChain(e);
  if (chain.length === 0) return e;
  const why = chain[0]?.message ?? String(e);
  if (endpoint.kind === 'kafka') {
    const brokers = endpoint.brokers.join(',');
    const kafkaConnection = chain.some(
      (c) =>
        /KafkaJS(Connection|NumberOfRetriesExceeded|ConnectionClosed|RequestTimeout|BrokerNotFound)/.test(
          c.name,
        ) ||
        (typeof c.code === 'string' && SOCKET_UNREACHABLE.test(c.code)),
    );
    if (!kafkaConnection) return e;
    return new ReplicatorError(ErrorCodes.KAFKA_UNREACHABLE, `Kafka brokers ${brokers} unreachable: ${why}`, {
      cause: e,
      details: { brokers },
    });
  }
  const where = `PostgreSQL ${endpoint.role ? `${endpoint.role} ` : ''}${describePgUrl(endpoint.url)}`;
  const details = { endpoint: describePgUrl(endpoint.url) };
  for (const c of chain) {
    const code = typeof c.code === 'string' ? c.code : undefined;
    if (code === '28P01' || code === '28000')
      return new ReplicatorError(ErrorCodes.PG_AUTH_FAILED, `${where}: authentication failed: ${c.message}`, {
        cause: e,
        details,
      });
    if (code === '3D000')
      return new ReplicatorError(
        ErrorCodes.PG_DATABASE_MISSING,
        `${where}: database does not exist: ${c.message}`,
        {
          cause: e,
          details,
        },
      );
    if (
      (code && SOCKET_UNREACHABLE.test(code)) ||
      /timeout expired|Connection terminated due to connection timeout/i.test(c.message)
    )
      return new ReplicatorError(ErrorCodes.PG_UNREACHABLE, `${where} unreachable: ${c.message}`, {
        cause: e,
        details,
      });
  }
  return e;
}

/** Runs `connect` (a first connection to `endpoint`), throwing its failure classified by `classifyConnectionError`. */
export async function withEndpoint<T>(endpoint: ConnectionEndpoint, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (e) {
    throw classifyConnectionError(e, endpoint);
  }
}
