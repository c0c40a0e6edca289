/**
 * The Postgres sink: V2 unit topics → the V2 database, exactly once (offsets and lineage in the target), with the
 * V2 domain (entity order, derived users) handed in as a V2 model (src/contracts/v2-model.ts).
 */
export { PostgresSink, type PostgresSinkOptions } from './postgres-sink.js';
export {
  dropToastImages,
  ensureReplicatorSchema,
  ensureSchemaObjects,
  type SchemaObjects,
} from './target-schema.js';
export { readColumnTypes } from './unit-applier.js';
