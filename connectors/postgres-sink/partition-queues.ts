/** A topic-partition. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface PartitionQueuesOptions<T> {
  /** Partition batches applied at once (one target connection each). */
  concurrency: number;
  /** Most items taken into one `apply` call: everything queued for the partition, up to this. */
  maxBatch: number;
  /** Above this many queued items a partition's fetching is paused (`pause`), and resumed once it is drained. */
  highWater: number;
  /**
   * Above this many queued bytes (`size`, over every partition) the partition that queued more is paused too, and
   * resumed once the total is down to half: what a backlog can hold in memory, whatever the number of partitions.
   */
  maxBytes?: number;
  size?: (item: T) => number;
  apply: (tp: TopicPartition, items: T[]) => Promise<void>;
  pause: (tp: TopicPartition) => void;
  resume: (tp: TopicPartition) => void;
}

interface Lane<T> {
  tp: TopicPartition;
  items: T[];
  /** `size` of each queued item (computed once, on push), and their sum. */
  sizes: number[];
  bytes: number;
  /** One past the highest offset queued: a message fetched again (after a seek or a rejoin) is queued once. */
  next: bigint;
  running: boolean;
  paused: boolean;
}

/**
 * Decouples fetching from applying. kafkajs fetches again only when every batch of the previous fetch has been
 * handled, so one slow partition would hold back all of them; here a fetched batch is only queued, and each
 * partition is applied by itself as soon as a connection is free. Whatever queued up for a partition while its
 * previous batch was being applied is applied together: small batches when traffic is light (latency), large ones
 * under a backlog (throughput). Per-partition order is kept (one batch of a partition at a time, in queue order).
 */
export class PartitionQueues<T extends { offset: string }> {
  private readonly lanes = new Map<string, Lane<T>>();
  private running = 0;
  /** Bytes queued over every lane, and being applied (released when their batch is done). */
  private bytes = 0;
  private failure: unknown;
  /** Rejects with the first error an `apply` threw (the caller stops the stage). */
  readonly failed: Promise<never>;
  private fail!: (e: unknown) => void;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: PartitionQueuesOptions<T>) {
    this.failed = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.failed.catch(() => {});
  }

  push(tp: TopicPartition, items: readonly T[]): void {
    if (items.length === 0) return;
    const lane = this.lane(tp);
    const size = this.o.size;
    for (const item of items) {
      const offset = BigInt(item.offset);
      if (offset < lane.next) continue;
      lane.items.push(item);
      lane.next = offset + 1n;
      if (size) {
        const n = size(item);
        lane.sizes.push(n);
        lane.bytes += n;
        this.bytes += n;
      }
    }
    if (!lane.paused && (lane.items.length > this.o.highWater || this.overBytes())) {
      lane.paused = true;
      this.o.pause(tp);
    }
    this.schedule();
  }

  /** Bytes queued and being applied (tests read it). */
  get queuedBytes(): number {
    return this.bytes;
  }

  private overBytes(): boolean {
    return this.o.maxBytes !== undefined && this.bytes > this.o.maxBytes;
  }

  /** Resumes every paused lane that is below its own mark, once the total is down to half the budget. */
  private resumeDrained(): void {
    if (this.o.maxBytes !== undefined && this.bytes > this.o.maxBytes / 2) return;
    for (const lane of this.lanes.values()) {
      if (lane.paused && lane.items.length <= this.o.highWater / 2) {
        lane.paused = false;
        this.o.resume(lane.tp);
      }
    }
  }

  /** The partition was revoked: drop what is queued (its new owner resumes from the offsets in the target). */
  revoke(tp: TopicPartition): void {
    const lane = this.lanes.get(key(tp));
    if (!lane) return;
    this.bytes -= lane.bytes;
    lane.items = [];
    lane.sizes = [];
    lane.bytes = 0;
    lane.next = 0n;
    if (lane.paused) {
      lane.paused = false;
      this.o.resume(tp);
    }
    // Partitions paused for the byte budget may have nothing queued to apply (whose completion would resume them).
    this.resumeDrained();
  }

  /**
   * The consumer group was joined: a group kafkajs restarted after a crash pauses nothing, whatever was paused
   * before, and a lane that believed itself paused would then queue without bound. Each lane still over its mark,
   * or every lane while the byte budget is exceeded, is paused again; the others fetch.
   */
  rejoined(): void {
    const over = this.overBytes();
    for (const lane of this.lanes.values()) {
      lane.paused = over || lane.items.length > this.o.highWater;
      if (lane.paused) this.o.pause(lane.tp);
      else this.o.resume(lane.tp);
    }
  }

  /** After a rebalance: every partition no longer assigned is revoked. */
  retain(assigned: (tp: TopicPartition) => boolean): void {
    for (const lane of this.lanes.values()) if (!assigned(lane.tp)) this.revoke(lane.tp);
  }

  /** Resolves when nothing is queued or being applied. */
  async idle(): Promise<void> {
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.running === 0 && [...this.lanes.values()].every((l) => l.items.length === 0);
  }

  private lane(tp: TopicPartition): Lane<T> {
    let lane = this.lanes.get(key(tp));
    if (!lane) {
      lane = { tp, items: [], bytes: 0, next: 0n, running: false, paused: false, sizes: [] };
      this.lanes.set(key(tp), lane);
    }
    return lane;
  }

  private schedule(): void {
    if (this.failure !== undefined) return;
    for (const lane of this.lanes.values()) {
      if (this.running >= this.o.concurrency) return;
      if (lane.running || lane.items.length === 0) continue;
      const items = lane.items.splice(0, this.o.maxBatch);
      let taken = 0;
      for (const n of lane.sizes.splice(0, items.length)) taken += n;
      lane.bytes -= taken;
      lane.running = true;
      this.running++;
      void this.o
        .apply(lane.tp, items)
        .then(
          () => {
            // The batch's bytes stay counted until it is applied: it is in memory until then.
            this.bytes -= taken;
            this.resumeDrained();
          },
          (e: unknown) => {
            this.failure ??= e;
            this.fail(e);
          },
        )
        .finally(() => {
          lane.running = false;
          this.running--;
          // Round robin: the lane just served goes to the back, so busy partitions do not starve the others.
          this.lanes.delete(key(lane.tp));
          this.lanes.set(key(lane.tp), lane);
          this.schedule();
          if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
        });
    }
  }
}

const key = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;
