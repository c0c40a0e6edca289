import { type ErrorCode, ErrorCodes, ReplicatorError } from '../../core/errors.js';

/** The `code` label of `replicator_stage_errors_total`: an error code of src/core/errors.ts, or UNEXPECTED. */
export type StageErrorCode = ErrorCode | 'UNEXPECTED';

/** The stages that count their reconnects and retried errors (the `stage` label). */
export type StageName = 'source' | 'publisher' | 'sink';

/**
 * The codes a retried error can carry: the codes retryable by default (a stage retries only what is transient) and
 * UNEXPECTED. Each stage's series start at zero for these, so that rate() and increase() see a first error too.
 */
export const RETRIED_CODES: readonly StageErrorCode[] = [
  ...Object.values(ErrorCodes).filter((code) => new ReplicatorError(code, '').retryable),
  'UNEXPECTED',
];

type Cause = Error & { code?: unknown; severity?: unknown };

/** `e` and its causes (`cause`; kafkajs: `originalError`; AggregateError: `errors`), outermost first. */
function causes(e: unknown): Cause[] {
  const out: Cause[] = [];
  const queue: unknown[] = [e];
  while (queue.length > 0 && out.length < 20) {
    const x = queue.shift();
    if (!(x instanceof Error) || out.includes(x)) continue;
    out.push(x);
    const o = x as Error & { originalError?: unknown; errors?: unknown };
    queue.push(o.cause, o.originalError);
    if (Array.isArray(o.errors)) queue.push(...o.errors);
  }
  return out;
}

const SOCKET_UNREACHABLE = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)$/;
const KAFKA_CONNECTION = /^KafkaJS(Connection|ConnectionClosed|BrokerNotFound)Error$/;

/**
 * The stable code of an error a stage caught: a ReplicatorError's own (or the first one along its causes). The
 * stages also retry what their drivers throw unwrapped; those get the code that names them: kafkajs errors
 * KAFKA_UNREACHABLE (no connection to a broker) or KAFKA_UNAVAILABLE; PostgreSQL's connection, shutdown and
 * authentication SQLSTATEs and socket errors (outside kafkajs, the stages' only other socket is pg's)
 * PG_CONNECTION_FAILED, PG_UNREACHABLE, PG_AUTH_FAILED or PG_DATABASE_MISSING. Anything else is UNEXPECTED.
 */
export function stageErrorCode(e: unknown): StageErrorCode {
  const chain = causes(e);
  const own = chain.find((c): c is ReplicatorError => c instanceof ReplicatorError);
  if (own) return own.code;
  if (chain.some((c) => c.name.startsWith('KafkaJS')))
    return chain.some((c) => KAFKA_CONNECTION.test(c.name))
      ? ErrorCodes.KAFKA_UNREACHABLE
      : ErrorCodes.KAFKA_UNAVAILABLE;
  for (const c of chain) {
    const code = typeof c.code === 'string' ? c.code : undefined;
    if (code !== undefined && typeof c.severity === 'string') {
      // A PostgreSQL error: its SQLSTATE.
      if (code === '28P01' || code === '28000') return ErrorCodes.PG_AUTH_FAILED;
      if (code === '3D000') return ErrorCodes.PG_DATABASE_MISSING;
      // Connection exceptions, the server shutting down or not accepting connections, too many connections.
      if (code.startsWith('08') || code.startsWith('57P') || code === '53300')
        return ErrorCodes.PG_CONNECTION_FAILED;
      continue;
    }
    if (code !== undefined && SOCKET_UNREACHABLE.test(code)) return ErrorCodes.PG_UNREACHABLE;
    // ECONNRESET, EPIPE…: a connection that was open is gone.
    if (code !== undefined && /^E[A-Z]+$/.test(code)) return ErrorCodes.PG_CONNECTION_FAILED;
    // pg's own wording for a client whose connection ended (no SQLSTATE: the socket is gone).
    if (/Connection terminated|connection closed|not queryable/i.test(c.message))
      return ErrorCodes.PG_CONNECTION_FAILED;
  }
  return 'UNEXPECTED';
}
