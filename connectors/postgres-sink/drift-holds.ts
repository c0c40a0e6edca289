import type { Logger } from '../../src/core/logger.js';
import type { DriftedChange } from './raw-change.js';

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A partition held at a change whose row no longer fits its module's legacy schema. */
export interface DriftHold extends TopicPartition {
  /** The held change's offset: where the partition resumes. */
  offset: string;
  /** schema.table of the legacy table. */
  table: string;
  columns: readonly string[];
  message: string;
  since: Date;
}

export interface DriftHoldsOptions {
  /** Stop fetching the partition, and fetch it from `offset` when it is resumed. */
  pause: (tp: TopicPartition, offset: string) => void;
  resume: (tp: TopicPartition) => void;
  /** Persists the finding (for `status`); `hold` null: the partition flows again. */
  record: (tp: TopicPartition, hold: DriftHold | null) => Promise<void>;
  /** The partitions held, per legacy table, after each change (metrics). */
  onChange?: (table: string, heldPartitions: number) => void;
  logger: Logger;
  /** How often a held partition is fetched again to see whether the drift is over (default 5 s). */
  probeMs?: number;
}

const keyOf = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

/**
 * Schema drift, held per partition. A change whose row no longer fits its module's declared legacy schema stops
 * its partition there — the table's other partitions stop at their own first such change, other tables flow — and
 * a finding records it. Every `probeMs` a held partition is fetched again from the held change, which the sink
 * re-checks against the legacy row as it is now; when that fits (the schema restored, or a module that accepts it
 * deployed) the partition flows on and the finding is cleared. No change is skipped or dead-lettered meanwhile, so
 * WAL is not held either: the changes wait in Kafka.
 */
export class DriftHolds {
  private readonly held = new Map<string, DriftHold & { probing: boolean }>();
  private timer: NodeJS.Timeout | undefined;
  /** Findings are written one after another, so a hold and its release land in that order. */
  private recording: Promise<void> = Promise.resolve();

  constructor(private readonly o: DriftHoldsOptions) {}

  /** Starts probing the held partitions. */
  start(): void {
    this.timer ??= setInterval(() => this.probe(), this.o.probeMs ?? 5_000);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Held and not being probed: nothing else may resume it (e.g. a queue draining below its high-water mark). */
  blocks(tp: TopicPartition): boolean {
    const h = this.held.get(keyOf(tp));
    return h !== undefined && !h.probing;
  }

  /** Holds the partition at this change (again, after a probe that found the drift still there). */
  hold(tp: TopicPartition, offset: string, d: DriftedChange): void {
    const key = keyOf(tp);
    const previous = this.held.get(key);
    const hold = {
      ...tp,
      offset,
      table: d.change.table,
      columns: d.columns,
      message: d.message,
      since: previous?.since ?? new Date(),
      probing: false,
    };
    this.held.set(key, hold);
    this.o.pause(tp, offset);
    if (previous?.offset === offset && previous.message === d.message) return;
    this.o.logger.warn(
      { table: hold.table, topic: tp.topic, partition: tp.partition, offset, columns: d.columns },
      `schema drift: ${d.message}; the table's changes wait here until the legacy schema or its module fits again`,
    );
    this.changed(tp, hold);
  }

  /** A batch of the partition went through without drift: it flows again. */
  passed(tp: TopicPartition): void {
    const key = keyOf(tp);
    const hold = this.held.get(key);
    if (!hold) return;
    this.held.delete(key);
    this.o.logger.info(
      { table: hold.table, topic: tp.topic, partition: tp.partition, offset: hold.offset },
      'schema drift over: the table flows again',
    );
    this.changed(tp, null, hold.table);
  }

  /**
   * A new assignment: every hold is forgotten (a partition still owned is resumed and fetched again from its stored
   * offset, so its drift is found again) and the findings of the assigned partitions are cleared — this instance
   * owns them now, and records them again if they still drift.
   */
  reset(assigned: readonly TopicPartition[]): void {
    const owned = new Set(assigned.map(keyOf));
    const tables = new Set<string>();
    for (const [key, h] of this.held) {
      this.held.delete(key);
      tables.add(h.table);
      if (owned.has(key)) this.o.resume(h);
    }
    for (const table of tables) this.o.onChange?.(table, 0);
    for (const tp of assigned) this.write(tp, null);
  }

  private probe(): void {
    for (const h of this.held.values()) {
      if (h.probing) continue;
      h.probing = true;
      this.o.resume(h);
    }
  }

  private count(table: string): number {
    let n = 0;
    for (const h of this.held.values()) if (h.table === table) n++;
    return n;
  }

  private changed(tp: TopicPartition, hold: DriftHold | null, table = hold?.table): void {
    if (table !== undefined) this.o.onChange?.(table, this.count(table));
    this.write(tp, hold ? { ...hold } : null);
  }

  private write(tp: TopicPartition, snapshot: DriftHold | null): void {
    this.recording = this.recording
      .then(() => this.o.record(tp, snapshot))
      .catch((e: unknown) =>
        this.o.logger.warn(
          { err: e instanceof Error ? e.message : String(e) },
          'could not record the schema drift finding in the target',
        ),
      );
  }
}
