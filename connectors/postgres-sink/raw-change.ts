import type { DeadLetterInfo } from '../../src/contracts/dead-letter.js';
import { type FenceMarker, isFenceMarker } from '../../src/contracts/fence.js';
import {
  type JsonRow,
  type LegacyChange,
  type TransformModule,
  TransformRejection,
  type TransformResult,
} from '../../src/contracts/transform-api.js';
import type { V2Unit } from '../../src/contracts/v2-unit.js';

/** Why the apply stage itself (not a transform) dead-letters an event. */
export const StageReasons = {
  MALFORMED_EVENT: 'MALFORMED_EVENT',
  UNCHANGED_TOAST: 'UNCHANGED_TOAST',
  TRANSFORM_THREW: 'TRANSFORM_THREW',
} as const;

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
    snapshot: boolean;
    unchangedToast?: string[];
  };
}

/** What one raw message means to the apply stage. */
export type RawEntry =
  | { kind: 'skip' }
  | { kind: 'heartbeat'; ts: string; lsn?: string }
  | { kind: 'marker'; marker: FenceMarker }
  /** A unit to apply; with `dead`, the row was invalid (the unit removes what it produced) and is dead-lettered. */
  | {
      kind: 'unit';
      unit: V2Unit;
      dead?: Omit<DeadLetterInfo, 'sourceTopic' | 'sourcePartition' | 'sourceOffset'>;
    }
  /** Nothing to apply (V2 stays as it is) and a dead letter. */
  | { kind: 'dead'; dead: Omit<DeadLetterInfo, 'sourceTopic' | 'sourcePartition' | 'sourceOffset'> };

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
    if (isFenceMarker(decoded)) return { kind: 'marker', marker: decoded };
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
      snapshot: event.source.snapshot,
    };
    if (event.op === 't') {
      return {
        kind: 'unit',
        unit: { v: 1, kind: 'change', source: { ...source, key: {} }, ops: [], truncate: true },
      };
    }
    if (event.source.unchangedToast?.length) {
      // The new row is incomplete; writing it would lose those columns. Keep V2 as it is and say why.
      return dead(
        StageReasons.UNCHANGED_TOAST,
        `columns ${event.source.unchangedToast.join(', ')} were unchanged TOAST values not sent by PostgreSQL; set REPLICA IDENTITY FULL on ${table}`,
        module.name,
        table,
      );
    }
    const change: LegacyChange = {
      op: event.op,
      table,
      key: rowKey,
      before: event.before,
      after: event.after,
    };
    let result: TransformResult;
    try {
      result = module.transform(change);
    } catch (e) {
      // A transform must not throw; if one does, it is a bug in that module, and the row is dead-lettered.
      const why = e instanceof Error ? e.message : String(e);
      result = { ok: false, rejection: new TransformRejection(StageReasons.TRANSFORM_THREW, why) };
    }
    if (!result.ok) {
      // An invalid row counts as absent in V2: an empty unit removes what it produced before.
      return {
        kind: 'unit',
        unit: { v: 1, kind: 'change', source, ops: [] },
        dead: {
          code: result.rejection.reason,
          message: result.rejection.message,
          stage: 'sink',
          transform: module.name,
          table,
        },
      };
    }
    return { kind: 'unit', unit: { v: 1, kind: 'change', source, ops: result.ops } };
  }
}
