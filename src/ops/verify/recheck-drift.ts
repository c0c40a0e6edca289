import pg from 'pg';
import type { JsonRow, JsonValue, TransformModule, V2Entity } from '../../contracts/transform-api.js';
import type { Logger } from '../../core/logger.js';
import { parseLsn } from '../../core/lsn.js';
import { TEXT_FORMAT_OPTIONS, textTypes } from '../../core/pg-text-types.js';
import { quoteIdent } from '../../core/sql.js';
import {
  canonicalRow,
  canonicalValue,
  type EntityShape,
  exactJsonTypes,
  hashLine,
  hashRowSql,
  keyObject,
  keyText,
} from './canonical-row.js';
import { type RowDiff, rowDiff } from './compare-entity.js';
import { ExpectedState, keysByTable } from './expected-state.js';
import { LegacyReader, type LegacyTable } from './legacy-reader.js';
import { settledLsn } from './settled-lsn.js';

/**
 * No JIT on verify's connections: its key lookups (unnest of thousands of keys, GIN probes) are estimated at
 * millions of rows, past jit_above_cost, and compiling them took 300 ms of a 680 ms lineage read inside the
 * cutover's fence; its whole-table hashes ran no faster with it (bench:verify, within noise).
 */
const NO_JIT = '-c jit=off';

/** Session settings of verify's target connections: timestamps as UTC text, like the sink's. */
export const TARGET_OPTIONS = `-c TimeZone=UTC -c DateStyle=ISO,YMD ${NO_JIT}`;

/** Session settings of verify's legacy connections: the source's (values read as it decodes them). */
export const LEGACY_OPTIONS = `${TEXT_FORMAT_OPTIONS} ${NO_JIT}`;

/** A V2 key in the re-verify queue. */
export interface RecheckItem {
  entity: V2Entity;
  values: JsonValue[];
  keyText: string;
  /** Legacy rows (refText) the row derives from, as far as known: the expected side's origin, then the lineage's. */
  refs: Set<string>;
  /** users: the normalized email. */
  email?: string;
  /** Re-checks at which it still differed while the target had not applied anything newer for its legacy rows. */
  confirmations: number;
  /** At the last re-check the target had already applied a change newer than that re-check's snapshot. */
  inFlux: boolean;
  diff: RowDiff;
}

export interface RecheckRound {
  round: number;
  snapshotLsn: string;
  /** Whether the sink reached the snapshot LSN before the timeout. */
  applied: boolean;
  keys: number;
  resolved: number;
  confirmed: number;
  inFlux: number;
  seconds: number;
}

export interface RecheckOptions {
  legacyUrl: string;
  targetUrl: string;
  tables: ReadonlyMap<string, LegacyTable>;
  modules: readonly TransformModule[];
  shapes: Readonly<Record<V2Entity, EntityShape>>;
  waitForApplied: (lsn: string) => Promise<boolean>;
  rounds: number;
  /** Differing re-checks (with the sink past the snapshot and nothing newer applied) that make a key drift. */
  confirmations?: number;
  logger: Logger;
  onRound?: (round: RecheckRound) => void;
}

export interface RecheckResult {
  drift: RecheckItem[];
  inFlux: RecheckItem[];
  rounds: RecheckRound[];
  /** The sink did not reach a re-check's snapshot in time: what still differs may include lag. */
  timedOut: boolean;
}

/**
 * The re-verify queue, worked off in rounds. Each round takes a fresh legacy snapshot that sees every commit before
 * a settled position P (read first; transactions then in flight waited for) and none after its own LSN S; waits
 * until the sink has applied past S; then compares each queued key's target row with what the legacy rows it
 * derives from (re-read in that snapshot) produce.
 * - Equal: the difference was lag; the key leaves the queue.
 * - Different, and the lineage shows the sink applied nothing at or after P for those legacy rows: the target holds
 *   their state as of before P, which the snapshot shows too — one confirmation. `confirmations` of them (2 by
 *   default, so one fetch of partition skew cannot fake drift) make the key drift.
 * - Different, but the sink already applied a change of those rows at or after P (written again meanwhile): "in
 *   flux", nothing concluded; re-checked next round, and after the last round left queued as in flux, never
 *   reported as drift — lag never becomes drift.
 */
export async function recheckDrift(items: RecheckItem[], o: RecheckOptions): Promise<RecheckResult> {
  const need = o.confirmations ?? 2;
  const rounds: RecheckRound[] = [];
  const drift: RecheckItem[] = [];
  let queue = items;
  let timedOut = false;
  for (let round = 1; round <= o.rounds && queue.length > 0; round++) {
    const started = Date.now();
    const { snapshotLsn, applied, next, resolved, confirmed } = await oneRound(queue, o, need);
    for (const item of confirmed) drift.push(item);
    const r: RecheckRound = {
      round,
      snapshotLsn,
      applied,
      keys: queue.length,
      resolved,
      confirmed: confirmed.length,
      inFlux: next.filter((i) => i.inFlux).length,
      seconds: (Date.now() - started) / 1000,
    };
    rounds.push(r);
    o.onRound?.(r);
    o.logger.info(r, 'verify: re-check round');
    queue = next;
    if (!applied) {
      timedOut = true;
      break;
    }
  }
  const inFlux: RecheckItem[] = [];
  for (const item of queue) (item.inFlux && !timedOut ? inFlux : drift).push(item);
  return { drift, inFlux, rounds, timedOut };
}

async function oneRound(queue: RecheckItem[], o: RecheckOptions, need: number) {
  const legacy = new pg.Client({ connectionString: o.legacyUrl, options: LEGACY_OPTIONS });
  const target = new pg.Client({ connectionString: o.targetUrl, types: textTypes, options: TARGET_OPTIONS });
  await legacy.connect();
  try {
    // The snapshot sees every commit before `settled` (read before it, in-flight commits waited for) and none
    // after `snapshotLsn` (read in it): commits between the two may or may not be visible.
    const settled = parseLsn((await settledLsn(legacy, { logger: o.logger })).lsn);
    await legacy.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshotLsn = (await legacy.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l'))
      .rows[0]!.l;
    const applied = await o.waitForApplied(snapshotLsn);
    await target.connect();
    await target.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const actual = await readTargetRows(target, queue, o.shapes);
    takeUserEmails(queue, actual);
    const lsnByRef = await readLineage(target, queue, o.shapes);
    await target.query('COMMIT');

    const reader = new LegacyReader(legacy);
    const byTable = keysByTable(
      queue.flatMap((item) => [...item.refs]),
      (t) => o.tables.has(t),
    );
    const tables = await reader.describe([...byTable.keys()]);
    const state = new ExpectedState(o.modules, o.shapes);
    for (const t of tables) {
      for (const record of await reader.readByKeys(t, byTable.get(t.name)!))
        state.add(t.name, record.key, record.row);
    }
    await legacy.query('COMMIT');

    const next: RecheckItem[] = [];
    const confirmed: RecheckItem[] = [];
    let resolved = 0;
    for (const item of queue) {
      if (matchesLegacy(item, state, actual, o.shapes)) {
        resolved++;
        continue;
      }
      // Changed at or after `settled`: the snapshot may or may not show that change, so nothing is concluded.
      item.inFlux = [...item.refs].some((r) => (lsnByRef.get(r) ?? 0n) >= settled);
      if (applied && !item.inFlux) item.confirmations++;
      if (item.confirmations >= need) confirmed.push(item);
      else next.push(item);
    }
    return { snapshotLsn, applied, next, resolved, confirmed };
  } finally {
    await target.end().catch(() => {});
    await legacy.end().catch(() => {});
  }
}

/**
 * Whether a queued key's target row (`actual`, by itemId) is what the legacy rows in `state` produce (both absent
 * counts); when not, `item.diff` says how they differ.
 */
export function matchesLegacy(
  item: RecheckItem,
  state: ExpectedState,
  actual: ReadonlyMap<string, JsonRow>,
  shapes: Readonly<Record<V2Entity, EntityShape>>,
): boolean {
  const shape = shapes[item.entity];
  const expected = expectedRow(item, state);
  const found = actual.get(itemId(item)) ?? null;
  if (expected === null && found === null) return true;
  if (expected !== null && found !== null && canonicalRow(shape, expected) === canonicalRow(shape, found))
    return true;
  const kind = expected === null ? 'extra' : found === null ? 'missing' : 'different';
  item.diff = rowDiff(item.entity, shape, kind, item.values, expected, found);
  return false;
}

/** A queued user known only by its id (an extra row, a key left in flux) takes its email from its target row. */
export function takeUserEmails(queue: readonly RecheckItem[], actual: ReadonlyMap<string, JsonRow>): void {
  for (const item of queue) {
    if (item.entity === 'users' && !item.email) {
      const email = actual.get(itemId(item))?.email;
      if (typeof email === 'string') item.email = email;
    }
  }
}

/**
 * Merges the lineage's email index's pending list (GIN fastupdate) into the index: every lookup reads the whole
 * list, ~1 ms per email with the sink's recent writes pending (115 pages: 80 ms to merge, then 1,255 lookups in
 * 93 ms instead of 1.5 s). Bounded by gin_pending_list_limit. Skipped when not allowed (only the lineage's owner
 * may) or before the sink has created it: it only saves time. Called by the delta final verify, whose users are
 * looked up by email; not by every re-check round, which under live writes would merge again each time.
 */
export async function flushLineageEmails(client: pg.ClientBase, logger: Logger): Promise<void> {
  await client
    .query(
      "SELECT gin_clean_pending_list(to_regclass('replicator.lineage_emails')) WHERE to_regclass('replicator.lineage_emails') IS NOT NULL",
    )
    .catch((e: unknown) =>
      logger.debug({ err: e instanceof Error ? e.message : String(e) }, 'verify: lineage index not merged'),
    );
}

const itemId = (item: { entity: string; keyText: string }) => `${item.entity}\u0000${item.keyText}`;

/** The target rows of the queued keys, by itemId; json columns as RawJson. */
export function readTargetRows(
  client: pg.ClientBase,
  queue: readonly RecheckItem[],
  shapes: Readonly<Record<V2Entity, EntityShape>>,
): Promise<Map<string, JsonRow>> {
  // JSON as its text: compared exactly (canonicalValue), not as doubles.
  return readTargetByKey(
    client,
    queue,
    shapes,
    () => 't.*',
    exactJsonTypes,
    (row) => row,
  );
}

/**
 * The hashLine text of the queued keys' target rows, by itemId, computed by the target (hashRowSql): a row whose
 * expected hashLine is the same text is equal to it, so only the others need their rows read (matchesLine).
 */
export function readTargetLines(
  client: pg.ClientBase,
  queue: readonly RecheckItem[],
  shapes: Readonly<Record<V2Entity, EntityShape>>,
): Promise<Map<string, string>> {
  return readTargetByKey(
    client,
    queue,
    shapes,
    (shape) =>
      `${shape.key.map((k) => `t.${quoteIdent(k.name)}`).join(', ')}, ${hashRowSql(shape)} AS "?line"`,
    textTypes,
    (row) => String(row['?line']),
  );
}

async function readTargetByKey<T>(
  client: pg.ClientBase,
  queue: readonly RecheckItem[],
  shapes: Readonly<Record<V2Entity, EntityShape>>,
  select: (shape: EntityShape) => string,
  types: pg.CustomTypesConfig,
  value: (row: JsonRow) => T,
): Promise<Map<string, T>> {
  const out = new Map<string, T>();
  const byEntity = new Map<V2Entity, RecheckItem[]>();
  for (const item of queue) {
    const list = byEntity.get(item.entity) ?? [];
    list.push(item);
    byEntity.set(item.entity, list);
  }
  for (const [entity, list] of byEntity) {
    const shape = shapes[entity];
    const table = quoteIdent(entity);
    const on = shape.key.map((k) => `t.${quoteIdent(k.name)} = k.${quoteIdent(k.name)}`).join(' AND ');
    const { rows } = await client.query<JsonRow>({
      text: `SELECT ${select(shape)} FROM ${table} t
         JOIN (SELECT DISTINCT ${shape.key.map((k) => quoteIdent(k.name)).join(', ')}
                 FROM json_populate_recordset(NULL::${table}, $1::json)) k ON ${on}`,
      values: [JSON.stringify(list.map((i) => keyObject(shape, i.values)))],
      types,
    });
    for (const row of rows) {
      out.set(
        itemId({ entity, keyText: keyText(shape.key.map((k) => canonicalValue(k.kind, row[k.name]))) }),
        value(row),
      );
    }
  }
  return out;
}

/**
 * Whether a queued key's target row is, by its hashLine text (`lines`, readTargetLines), what the legacy rows in
 * `state` produce (both absent is a match). False is not drift: the same value spelt differently (an offset, a
 * numeric's scale) differs here, so the caller compares those rows with matchesLegacy.
 */
export function matchesLine(
  item: RecheckItem,
  state: ExpectedState,
  lines: ReadonlyMap<string, string>,
  shapes: Readonly<Record<V2Entity, EntityShape>>,
): boolean {
  const line = lines.get(itemId(item));
  const expected = expectedRow(item, state);
  if (expected === null || line === undefined) return expected === null && line === undefined;
  return hashLine(shapes[item.entity], expected) === line;
}

/** What the legacy rows in `state` make of a queued key (a user: derived from its email's rows), or null. */
function expectedRow(item: RecheckItem, state: ExpectedState): JsonRow | null {
  if (item.entity === 'users') return item.email ? state.deriveUser(item.email) : null;
  return state.rows.get(item.entity)?.get(item.keyText)?.row ?? null;
}

/**
 * The lineage of the queued keys' legacy rows: the commit LSN of the change last applied for each (refText →
 * LSN). Also adds to each item the legacy rows the lineage says produce it (an extra row's origin) or, for a user,
 * whose V2 rows carry its email.
 */
export async function readLineage(
  client: pg.ClientBase,
  queue: readonly RecheckItem[],
  shapes: Readonly<Record<V2Entity, EntityShape>>,
): Promise<Map<string, bigint>> {
  const lsnByRef = new Map<string, bigint>();
  const exists = (await client.query("SELECT to_regclass('replicator.lineage') IS NOT NULL AS ok")).rows[0]
    ?.ok;
  if (!exists) return lsnByRef;
  const refTables: string[] = [];
  const refKeys: string[] = [];
  const outputs: string[] = [];
  const byOutput = new Map<string, RecheckItem[]>();
  const byEmail = new Map<string, RecheckItem[]>();
  for (const item of queue) {
    for (const ref of item.refs) {
      const i = ref.indexOf('\u0000');
      refTables.push(ref.slice(0, i));
      refKeys.push(ref.slice(i + 1));
    }
    if (item.entity === 'users') {
      if (item.email) byEmail.set(item.email, [...(byEmail.get(item.email) ?? []), item]);
      continue;
    }
    // The lineage lists the upserted rows a legacy row produced; a component is found through its bundle.
    const [entity, key] =
      item.entity === 'bundle_components'
        ? (['bundles', { id: keyObject(shapes[item.entity], item.values).bundle_id ?? null }] as const)
        : ([item.entity, keyObject(shapes[item.entity], item.values)] as const);
    const id = outputId(shapes, entity, key);
    if (item.refs.size === 0) outputs.push(JSON.stringify([entity, key]));
    byOutput.set(id, [...(byOutput.get(id) ?? []), item]);
  }
  const parts = [
    `SELECT source_table, source_key, commit_lsn::text AS lsn, outputs, emails FROM replicator.lineage
      WHERE (source_table, source_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
  ];
  const values: unknown[] = [refTables, refKeys];
  if (outputs.length > 0) {
    values.push(outputs);
    parts.push(`SELECT l.source_table, l.source_key, l.commit_lsn::text, l.outputs, l.emails FROM replicator.lineage l
      CROSS JOIN LATERAL jsonb_array_elements(l.outputs) o JOIN unnest($${values.length}::jsonb[]) k(v) ON o.value = k.v`);
  }
  if (byEmail.size > 0) {
    values.push([...byEmail.keys()]);
    // One GIN probe per email: PostgreSQL estimates `emails && <many emails>` to match most rows and scans the
    // whole lineage, testing every row against every email (1.8 s for 1,255 emails over 115,000 rows; 93 ms so).
    parts.push(`SELECT l.source_table, l.source_key, l.commit_lsn::text, l.outputs, l.emails
      FROM unnest($${values.length}::text[]) e(email) JOIN replicator.lineage l ON l.emails @> ARRAY[e.email]`);
  }
  const { rows } = await client.query<{
    source_table: string;
    source_key: string;
    lsn: string;
    outputs: [V2Entity, JsonRow][];
    emails: string[];
  }>(parts.join('\nUNION\n'), values);
  for (const r of rows) {
    const ref = `${r.source_table}\u0000${r.source_key}`;
    lsnByRef.set(ref, parseLsn(r.lsn));
    for (const [entity, key] of r.outputs) {
      for (const item of byOutput.get(outputId(shapes, entity, key)) ?? []) item.refs.add(ref);
    }
    for (const email of r.emails) for (const item of byEmail.get(email) ?? []) item.refs.add(ref);
  }
  return lsnByRef;
}

function outputId(shapes: Readonly<Record<V2Entity, EntityShape>>, entity: V2Entity, key: JsonRow): string {
  const shape = shapes[entity];
  return `${entity}\u0000${keyText(shape.key.map((k) => canonicalValue(k.kind, key[k.name])))}`;
}
