/**
 * A cutover's fence record, on the fence control topic (`fencePrefix`), never on a change topic: the source
 * publishes it once it has read the fence's transaction, in stream order, so when Kafka has it, Kafka has every
 * change committed before the fence. The cutover's drain then waits for the sink's stored offsets to reach the
 * change partitions' end offsets.
 */
export interface FenceMarker {
  marker: 'fence';
  cutoverId: string;
  /** The fence's logical message's WAL position (its transaction is the fence's). */
  lsn: string;
}

export function isFenceMarker(v: unknown): v is FenceMarker {
  return typeof v === 'object' && v !== null && (v as { marker?: unknown }).marker === 'fence';
}
