import type { DeadLetterInfo } from '../../src/contracts/dead-letter.js';
import { isFenceMarker } from '../../src/contracts/fence.js';
import {
  type JsonRow,
  type LegacyChange,
  SchemaDriftRejection,
  type TransformModule,
  TransformRejection,
  type TransformResult,
} from '../../src/contracts/transform-api.js';
import type { V2Unit } from '../../src/contracts/v2-unit.js';

/**
 * Why the apply stage itself (not a transform) dead-letters an event. UNCHANGED_TOAST is no longer produced (an
 * update with unchanged TOASTed values is completed from the image store or the legacy row, see toast-images.ts);
 * it stays so that letters written by earlier versions keep a known reason.
 */
export const StageReasons = {
  MALFORMED_EVENT: 'MALFORMED_EVENT',
  UNCHANGED_TOAST: 'UNCHANGED_TOAST',
  TRANSFORM_THREW: 'TRANSFORM_THREW',
} as const;

type DeadInfo = Omit<DeadLetterInfo, 'sourceTopic' | 'sourcePartition' | 'sourceOffset'>;

/**
 * A change whose new row lacks columns PostgreSQL did not send (unchanged TOASTed values, `unchangedToast`): its
 * transform runs once the sink has completed `change.after` with those columns' values (`RawChangeReader.complete`).
 */
export interface PendingToast {
  change: LegacyChange;
  source: V2Unit['source'];
  /** The columns to fill in, as the event lists them. */
  unchanged: string[];
  module: TransformModule;
}

/** The raw change event as the apply stage reads it (the source's envelope, parsed; see src/contracts/change-event). */
interface RawEnvelope {
  before: JsonRow | null;
  after: JsonRow | null;
  op: 'c' | 'u' | 'd' | 'r' | 't';
  source: {
    schema: string;
    table: string;
    commitLsn: string;
    seq: number;
    txId: number | null;
    commitTs: string | null;
    /** Debezium's marks ('true', 'last', … 'false'); a boolean in events written before the Debezium envelope. */
    snapshot: string | boolean;
    unchangedToast?: string[] | null;
  };
}

/** Whether a `source.snapshot` says the row was read, not streamed (any mark but 'false'). */
function isSnapshotMark(mark: unknown): boolean {
  return mark === true || (typeof mark === 'string' && mark !== 'false');
}

/** What one raw message means to the apply stage. */
export type RawEntry =
  | { kind: 'skip' }
  | { kind: 'heartbeat'; ts: string; lsn?: string }
  /**
   * A unit to apply; with `dead`, the row was invalid (the unit removes what it produced) and is dead-lettered.
   * `after`: the legacy row as the event carries it (null for a delete or a truncate), for the image store.
   */
  | { kind: 'unit'; unit: V2Unit; dead?: DeadInfo; after: JsonRow | null }
  /** An update (or key change) with unchanged TOASTed columns: to complete, then transform. */
  | { kind: 'toast'; pending: PendingToast }
  /** Nothing to apply (V2 stays as it is) and a dead letter. */
  | { kind: 'dead'; dead: DeadInfo }
  /** The row does not fit the module's declared legacy schema: the table's changes wait (see DriftedChange). */
  | { kind: 'drift'; drifted: DriftedChange };

/**
 * A change whose row no longer has the shape its module declares (SchemaDriftRejection): the legacy schema changed.
 * The apply stage holds its partition here rather than dead-letter it and every later row of the table; once the
 * current legacy row fits the module again (the schema restored, or a module that accepts it deployed), the change
 * is applied as that row (`RawChangeReader.retry`), as an unchanged TOASTed value is re-read.
 */
export interface DriftedChange {
  change: LegacyChange;
  source: V2Unit['source'];
  module: TransformModule;
  columns: readonly string[];
  message: string;
}

/**
 * Turns a raw message into what to apply, running the transform module of its table in process: the one hop
 * from the change topics to the target. Pure: no I/O (decoding a framed Avro value happens before).
 */
export class RawChangeReader {
  private readonly byTable = new Map<string, TransformModule>();

  constructor(
    modules: readonly TransformModule[],
    private readonly heartbeatTopic: string,
  ) {
    for (const m of modules) for (const t of m.tables) this.byTable.set(t, m);
  }

  /** `decoded`: the parsed value, or the Error that decoding raised; `key`: the Kafka key's text. */
  read(topic: string, key: string | null, decoded: unknown): RawEntry {
    if (decoded === null || decoded === undefined) return { kind: 'skip' };
    if (topic === this.heartbeatTopic) {
      const h = decoded as { sentAt?: unknown; lsn?: unknown };
      if (typeof h.sentAt !== 'string') return { kind: 'skip' };
      return { kind: 'heartbeat', ts: h.sentAt, ...(typeof h.lsn === 'string' ? { lsn: h.lsn } : {}) };
    }
    // Fence markers were written into every change partition by versions before the drain by offsets: skipped.
    if (isFenceMarker(decoded)) return { kind: 'skip' };
    const dead = (code: string, message: string, transform = '-', table?: string): RawEntry => ({
      kind: 'dead',
      dead: { code, message, stage: 'sink', transform, ...(table ? { table } : {}) },
    });
    let event: RawEnvelope;
    let rowKey: JsonRow;
    try {
      if (decoded instanceof Error) throw decoded;
      event = decoded as RawEnvelope;
      rowKey = key ? (JSON.parse(key) as JsonRow) : {};
      if (!event.source || typeof event.source.table !== 'string') throw new Error('no source block');
    } catch (e) {
      return dead(
        StageReasons.MALFORMED_EVENT,
        `not a change event: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    const table = `${event.source.schema}.${event.source.table}`;
    const module = this.byTable.get(table);
    if (!module) return { kind: 'skip' };
    const source: V2Unit['source'] = {
      table,
      key: rowKey,
      op: event.op,
      commitLsn: event.source.commitLsn,
      seq: event.source.seq,
      txId: event.source.txId,
      commitTs: event.source.commitTs,
      snapshot: isSnapshotMark(event.source.snapshot),
    };
    if (event.op === 't') {
      return {
        kind: 'unit',
        unit: { v: 1, kind: 'change', source: { ...source, key: {} }, ops: [], truncate: true },
        after: null,
      };
    }
    const change: LegacyChange = {
      op: event.op,
      table,
      key: rowKey,
      before: event.before,
      after: event.after,
    };
    if (event.source.unchangedToast?.length && event.after) {
      // The new row is incomplete; transforming it as it is would lose those columns.
      return {
        kind: 'toast',
        pending: { change, source, unchanged: [...event.source.unchangedToast], module },
      };
    }
    return this.transform(module, change, source);
  }

  /**
   * Runs the pending change's transform on its new row completed with `values` (the unchanged columns' values; a
   * column absent from `values` stays absent, and the transform judges the row as it is).
   */
  complete(p: PendingToast, values: JsonRow): RawEntry {
    const after: JsonRow = { ...p.change.after };
    for (const column of p.unchanged) {
      if (Object.hasOwn(values, column)) after[column] = values[column]!;
      else delete after[column];
    }
    return this.transform(p.module, { ...p.change, after }, p.source);
  }

  /** The drifted change's transform run again on `row`, the legacy row as it is now. */
  retry(d: DriftedChange, row: JsonRow): RawEntry {
    return this.transform(d.module, { ...d.change, after: row }, d.source);
  }

  private transform(module: TransformModule, change: LegacyChange, source: V2Unit['source']): RawEntry {
    const table = change.table;
    let result: TransformResult;
    try {
      result = module.transform(change);
    } catch (e) {
      // A transform must not throw; if one does, it is a bug in that module, and the row is dead-lettered.
      const why = e instanceof Error ? e.message : String(e);
      result = { ok: false, rejection: new TransformRejection(StageReasons.TRANSFORM_THREW, why) };
    }
    if (!result.ok && result.rejection instanceof SchemaDriftRejection) {
      const { columns, message } = result.rejection;
      return { kind: 'drift', drifted: { change, source, module, columns, message } };
    }
    if (!result.ok) {
      // An invalid row counts as absent in V2: an empty unit removes what it produced before.
      return {
        kind: 'unit',
        unit: { v: 1, kind: 'change', source, ops: [] },
        after: change.after,
        dead: {
          code: result.rejection.reason,
          message: result.rejection.message,
          stage: 'sink',
          transform: module.name,
          table,
        },
      };
    }
    return {
      kind: 'unit',
      unit: { v: 1, kind: 'change', source, ops: result.ops },
      after: change.after,
    };
  }
}
