/**
 * Debezium's PostgreSQL envelope as its consumers see it (JSON, schemas off): the value's fields and the `source`
 * block's, in Debezium 3.6.1's order (checked against the real connector by `npm run compare:debezium`).
 */
export const DEBEZIUM_ENVELOPE_FIELDS = [
  'before',
  'after',
  'source',
  'transaction',
  'op',
  'ts_ms',
  'ts_us',
  'ts_ns',
];

export const DEBEZIUM_SOURCE_FIELDS = [
  'version',
  'connector',
  'name',
  'ts_ms',
  'snapshot',
  'db',
  'sequence',
  'ts_us',
  'ts_ns',
  'schema',
  'table',
  'txId',
  'lsn',
  'xmin',
  'origin',
  'origin_lsn',
];

/** This replicator's own source fields, after Debezium's (a Debezium consumer ignores them). */
export const OWN_SOURCE_FIELDS = ['commitLsn', 'seq', 'commitTs', 'unchangedToast'];
