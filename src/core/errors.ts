/**
 * Every error this project raises carries a stable code from this list, whether retrying can help, and the
 * underlying cause. The CLI maps codes to exit codes (see `exitCodeFor`); dead-letter records carry the code.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  STACK_TOOL_MISSING: 'STACK_TOOL_MISSING',
  STACK_START_FAILED: 'STACK_START_FAILED',
  PG_SETTING_WRONG: 'PG_SETTING_WRONG',
  PG_CONNECTION_FAILED: 'PG_CONNECTION_FAILED',
  PREFLIGHT_FAILED: 'PREFLIGHT_FAILED',
  REPLICATION_PROTOCOL: 'REPLICATION_PROTOCOL',
  REPLICATION_STREAM_LOST: 'REPLICATION_STREAM_LOST',
  KAFKA_UNAVAILABLE: 'KAFKA_UNAVAILABLE',
  VALUE_DECODE_FAILED: 'VALUE_DECODE_FAILED',
  KEY_COLUMN_MISSING: 'KEY_COLUMN_MISSING',
  SCHEMA_REGISTRY_FAILED: 'SCHEMA_REGISTRY_FAILED',
  METRICS_LISTEN_FAILED: 'METRICS_LISTEN_FAILED',
  ABORTED: 'ABORTED',
  CUTOVER_REFUSED: 'CUTOVER_REFUSED',
  CUTOVER_FAILED: 'CUTOVER_FAILED',
  /** `verify` found V2 rows that differ from what the legacy rows produce (after the re-checks). */
  VERIFY_DRIFT: 'VERIFY_DRIFT',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCodes.PG_CONNECTION_FAILED,
  ErrorCodes.REPLICATION_STREAM_LOST,
  ErrorCodes.KAFKA_UNAVAILABLE,
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

const EXIT_CODES: Record<ErrorCode, number> = {
  CONFIG_INVALID: 2,
  STACK_TOOL_MISSING: 3,
  STACK_START_FAILED: 3,
  PG_SETTING_WRONG: 4,
  PG_CONNECTION_FAILED: 5,
  PREFLIGHT_FAILED: 6,
  REPLICATION_PROTOCOL: 7,
  REPLICATION_STREAM_LOST: 7,
  KAFKA_UNAVAILABLE: 8,
  VALUE_DECODE_FAILED: 9,
  KEY_COLUMN_MISSING: 9,
  SCHEMA_REGISTRY_FAILED: 10,
  METRICS_LISTEN_FAILED: 11,
  ABORTED: 130,
  CUTOVER_REFUSED: 11,
  CUTOVER_FAILED: 12,
  VERIFY_DRIFT: 13,
};

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
  if (e.name.startsWith('KafkaJS'))
    return err.retriable !== false || /Connection|Retries|Timeout/.test(e.name);
  // pg's own wording for a client whose connection failed (no SQLSTATE: the socket is gone).
  return /Connection terminated|connection closed|not queryable|timeout/i.test(e.message);
}
