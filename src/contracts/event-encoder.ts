import { type ChangeEvent, serializeEvent } from './change-event.js';

/** The shape of a table as the source knows it at a point in the stream (changes after ALTER TABLE). */
export interface TableShape {
  schema: string;
  table: string;
  topic: string;
  columns: readonly { name: string; typeOid: number; nullable?: boolean }[];
  keyColumns: readonly string[];
}

/**
 * Encodes change-event values for Kafka. `prepare` runs (async) whenever a table's shape is first seen or
 * changes, before any event of that shape is encoded; `encode` is on the hot path and synchronous.
 */
export interface EventEncoder {
  prepare(shape: TableShape): Promise<void>;
  encode(shape: TableShape, event: ChangeEvent): string | Buffer;
}

/** The default: Debezium-shaped JSON (see envelope.ts and the README). */
export const jsonEncoder: EventEncoder = {
  prepare: async () => {},
  encode: (_shape, event) => serializeEvent(event),
};
