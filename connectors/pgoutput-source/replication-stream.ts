import pg from 'pg';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import { formatLsn, type Lsn, readLsn } from '../../src/core/lsn.js';
import { TEXT_FORMAT_OPTIONS } from '../../src/core/pg-text-types.js';
import { quoteIdent, quoteLiteral } from '../../src/core/sql.js';

/**
 * The streaming replication protocol, spoken directly over a `pg` replication connection. We do not use
 * pg-logical-replication's LogicalReplicationService: its 2.5.0 acknowledges the last *received* LSN from a timer
 * (keepalives included), never answers keepalives that request a reply, writes timestamps on a wrong epoch and
 * throws inside the socket handler on an unknown message. Here the only LSN ever reported is the one the caller
 * says is durable, replies are sent when asked, and anything unexpected ends the stream with an error.
 */

export type WalMessage =
  | { kind: 'xlog'; walStart: Lsn; walEnd: Lsn; data: Buffer }
  | { kind: 'keepalive'; walEnd: Lsn; replyRequested: boolean };

export interface ReplicationStreamOptions {
  url: string;
  slot: string;
  publication: string;
  /** Where to start; 0n lets the server start at the slot's confirmed_flush_lsn. */
  startLsn: Lsn;
  /** Period of standby status updates; must stay below the server's wal_sender_timeout. */
  statusIntervalMs: number;
  /** The highest LSN whose changes are all durable downstream: the only position ever reported. */
  durableLsn: () => Lsn;
  onMessage: (m: WalMessage) => void;
}

/**
 * Session settings under which PostgreSQL renders values as exact, unambiguous text; the walsender (pgoutput) and
 * the snapshot readers both use them, so a row reads the same from either path.
 */

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01T00:00:00Z). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

/** A standby status update ('r'): write, flush and apply positions are all the durable LSN. */
export function standbyStatusUpdate(durable: Lsn, nowMs: number, replyRequested = false): Buffer {
  const buf = Buffer.alloc(34);
  buf[0] = 0x72;
  buf.writeBigUInt64BE(durable, 1);
  buf.writeBigUInt64BE(durable, 9);
  buf.writeBigUInt64BE(durable, 17);
  buf.writeBigInt64BE(BigInt(nowMs) * 1000n - PG_EPOCH_OFFSET_US, 25);
  buf[33] = replyRequested ? 1 : 0;
  return buf;
}

/** Parses one CopyData payload from the walsender. */
export function parseWalMessage(chunk: Buffer): WalMessage {
  const minLength = chunk[0] === 0x77 ? 25 : chunk[0] === 0x6b ? 18 : 1;
  if (chunk.length < minLength) {
    throw new ReplicatorError(
      ErrorCodes.REPLICATION_PROTOCOL,
      `truncated replication message (${chunk.length} bytes)`,
    );
  }
  switch (chunk[0]) {
    case 0x77: // 'w' XLogData
      return {
        kind: 'xlog',
        walStart: readLsn(chunk, 1),
        walEnd: readLsn(chunk, 9),
        data: chunk.subarray(25),
      };
    case 0x6b: // 'k' primary keepalive
      return { kind: 'keepalive', walEnd: readLsn(chunk, 1), replyRequested: chunk[17] === 1 };
    default:
      throw new ReplicatorError(
        ErrorCodes.REPLICATION_PROTOCOL,
        `unknown replication message type 0x${(chunk[0] ?? 0).toString(16)}`,
      );
  }
}

interface PgConnection {
  on(event: 'copyData', fn: (msg: { chunk: Buffer }) => void): void;
  once(event: 'replicationStart', fn: () => void): void;
  sendCopyFromChunk(buf: Buffer): void;
  stream: { pause(): void; resume(): void; isPaused(): boolean };
}

export class ReplicationStream {
  private client: pg.Client | undefined;
  private connection: PgConnection | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private lastReported: Lsn = 0n;
  private endResolve!: () => void;
  private endReject!: (e: unknown) => void;
  /** Settles when the stream ends: resolves after stop(), rejects when the server or the protocol ends it. */
  readonly ended: Promise<void>;

  constructor(private readonly options: ReplicationStreamOptions) {
    this.ended = new Promise<void>((resolve, reject) => {
      this.endResolve = resolve;
      this.endReject = reject;
    });
    // Callers await `ended`; this keeps an unobserved rejection from crashing the process first.
    this.ended.catch(() => {});
  }

  /** Connects and starts streaming; resolves once the server has entered COPY BOTH mode. */
  async start(): Promise<void> {
    const { url, slot, publication, startLsn } = this.options;
    const client = new pg.Client({
      connectionString: url,
      replication: 'database',
      options: TEXT_FORMAT_OPTIONS,
      application_name: 'replicator-source',
    } as pg.ClientConfig);
    this.client = client;
    client.on('error', (e) => this.fail(e));
    try {
      await client.connect();
    } catch (e) {
      throw new ReplicatorError(ErrorCodes.PG_CONNECTION_FAILED, 'replication connection failed', {
        cause: e,
      });
    }
    const connection = (client as unknown as { connection: PgConnection }).connection;
    this.connection = connection;
    const started = new Promise<void>((resolve) => connection.once('replicationStart', resolve));
    connection.on('copyData', ({ chunk }) => this.onCopyData(chunk));
    const sql =
      `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL ${formatLsn(startLsn)} ` +
      `(proto_version '1', publication_names ${quoteLiteral(quoteIdent(publication))}, messages 'true')`;
    // The query settles only when streaming ends.
    const streaming = client.query(sql).then(
      () => this.finish(),
      (e: unknown) => this.fail(e),
    );
    await Promise.race([started, streaming.then(() => this.ended)]);
    this.statusTimer = setInterval(() => this.sendStatus(), this.options.statusIntervalMs);
  }

  private onCopyData(chunk: Buffer): void {
    let msg: WalMessage;
    try {
      msg = parseWalMessage(chunk);
    } catch (e) {
      this.fail(e);
      return;
    }
    if (msg.kind === 'keepalive' && msg.replyRequested) this.sendStatus();
    try {
      this.options.onMessage(msg);
    } catch (e) {
      this.fail(e);
    }
  }

  /** Reports the durable LSN now (also done on a timer and whenever the server asks). */
  sendStatus(): void {
    if (!this.connection || this.stopping) return;
    const durable = this.options.durableLsn();
    this.lastReported = durable;
    this.connection.sendCopyFromChunk(standbyStatusUpdate(durable, Date.now()));
  }

  get reportedLsn(): Lsn {
    return this.lastReported;
  }

  /** Backpressure: stop reading the socket (the server then stops sending); status updates still go out. */
  pause(): void {
    this.connection?.stream.pause();
  }

  resume(): void {
    this.connection?.stream.resume();
  }

  get paused(): boolean {
    return this.connection?.stream.isPaused() ?? false;
  }

  /** Reports the durable LSN one last time and closes the connection. */
  async stop(): Promise<void> {
    if (this.stopping) return this.ended;
    this.sendStatus();
    this.stopping = true;
    this.clearTimer();
    this.connection?.stream.resume();
    await this.client?.end().catch(() => {});
    this.endResolve();
    return this.ended;
  }

  private clearTimer(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = undefined;
  }

  private finish(): void {
    this.clearTimer();
    if (this.stopping) this.endResolve();
    else
      this.endReject(new ReplicatorError(ErrorCodes.REPLICATION_STREAM_LOST, 'the server ended replication'));
  }

  private fail(e: unknown): void {
    this.clearTimer();
    if (this.stopping) {
      this.endResolve();
      return;
    }
    this.stopping = true;
    const err =
      e instanceof ReplicatorError
        ? e
        : new ReplicatorError(
            ErrorCodes.REPLICATION_STREAM_LOST,
            `replication stream lost: ${e instanceof Error ? e.message : String(e)}`,
            { cause: e },
          );
    this.endReject(err);
    void this.client?.end().catch(() => {});
  }
}
