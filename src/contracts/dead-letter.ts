/**
 * The dead-letter record: a message that could not be applied goes to `<kafka.topicPrefix>.dlq` with its original
 * key and value and these headers, which say why, where it came from and which legacy row it is.
 */
export interface DeadLetterInfo {
  /** Reason code (a transform's reason, a stage reason such as MALFORMED_EVENT, or the target's SQLSTATE). */
  code: string;
  message: string;
  /** The stage that gave up on it. */
  stage: string;
  /** The transform module involved, or '-'. */
  transform: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: string;
  /** schema.table of the legacy row, when known. */
  table?: string;
}

const H = {
  code: 'error.code',
  message: 'error.message',
  stage: 'stage',
  transform: 'transform',
  sourceTopic: 'source.topic',
  sourcePartition: 'source.partition',
  sourceOffset: 'source.offset',
  table: 'source.table',
} as const;

/**
 * The code of a change larger than its topic's max.message.bytes: the source dead-letters it in place of the
 * change (whose value is replaced by a summary — table, key, size, position) so the stream moves on. Such a letter
 * has no change to replay: raise the topic's limit and re-emit the row with `verify --repair`.
 */
export const EVENT_TOO_LARGE = 'EVENT_TOO_LARGE';

/**
 * The code of changes Kafka deleted (its retention) before the sink applied them: the sink found a partition's log
 * starting past the offset it had stored. One letter per gap, without key or value (the changes are gone), its
 * source offset the first one lost; nothing to replay: `verify --repair` re-emits the legacy rows V2 lacks.
 */
export const CHANGES_LOST = 'CHANGES_LOST';

/** Letters that carry no change to send back (`dlq replay` passes over them). */
export const UNREPLAYABLE_CODES: ReadonlySet<string> = new Set([EVENT_TOO_LARGE, CHANGES_LOST]);

/** The Kafka headers of a dead letter. */
export function deadLetterHeaders(d: DeadLetterInfo): Record<string, string> {
  return {
    [H.code]: d.code,
    [H.message]: d.message,
    [H.stage]: d.stage,
    [H.transform]: d.transform,
    [H.sourceTopic]: d.sourceTopic,
    [H.sourcePartition]: String(d.sourcePartition),
    [H.sourceOffset]: d.sourceOffset,
    ...(d.table ? { [H.table]: d.table } : {}),
  };
}

/** Reads a dead letter's headers back (missing ones as ''). */
export function readDeadLetterHeaders(get: (name: string) => string): DeadLetterInfo {
  return {
    code: get(H.code),
    message: get(H.message),
    stage: get(H.stage),
    transform: get(H.transform),
    sourceTopic: get(H.sourceTopic),
    sourcePartition: Number(get(H.sourcePartition) || -1),
    sourceOffset: get(H.sourceOffset),
    ...(get(H.table) ? { table: get(H.table) } : {}),
  };
}

/** Identity of a letter by where it came from: a replayed batch that dead-letters again must not count twice. */
export const deadLetterOrigin = (
  d: Pick<DeadLetterInfo, 'sourceTopic' | 'sourcePartition' | 'sourceOffset'>,
) => `${d.sourceTopic}/${d.sourcePartition}/${d.sourceOffset}`;

/**
 * Header of a change re-published by `dlq replay`: `<dlq topic>/<partition>:<offset>` of the letter. The sink applies
 * such a change even at the position its row's lineage already records — the rejection it repairs recorded it —
 * though never over a newer one.
 */
export const REPLAYED_FROM_HEADER = 'replicator.replayed-from';

/**
 * A replay marker: a record in the DLQ topic, without key or value, whose headers say a letter was replayed — the
 * letter's id (`<partition>:<offset>`) and identity (its origin and code headers), where the change went and when.
 * `dlq list` hides a replayed letter (unless asked for all) and `dlq replay` does not send it again.
 */
export const REPLAY_MARKER = {
  of: 'replicator.replay-of',
  to: 'replicator.replayed-to',
  at: 'replicator.replayed-at',
} as const;
