/** A cutover's fence marker as it travels through every partition of the raw and V2 topics. */
export interface FenceMarker {
  marker: 'fence';
  cutoverId: string;
  /** The marker's own WAL position (its transaction is the fence's). */
  lsn: string;
  /** Where this copy came from, added by the transform stage: the drain needs every origin on every partition. */
  origin?: { topic: string; partition: number };
}

export function isFenceMarker(v: unknown): v is FenceMarker {
  return typeof v === 'object' && v !== null && (v as { marker?: unknown }).marker === 'fence';
}
