/** The source stage: pgoutput logical replication from the legacy database, and its preflight checks. */
export {
  PgoutputSource,
  type PgoutputSourceOptions,
  type SourceProgress,
  type SourceRole,
  type SourceSettings,
  type SourceTopicSettings,
  snapshotSessionName,
} from './pgoutput-source.js';
export {
  ALL_CHECKS,
  assertPreflight,
  type Check,
  checkPublication,
  describeTable,
  type Finding,
  type FindingLevel,
  type PreflightContext,
  readSlot,
  runPreflight,
  type SlotState,
  type TableInfo,
} from './preflight.js';
