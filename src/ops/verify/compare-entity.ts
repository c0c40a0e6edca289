import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { JsonRow, JsonValue, V2Entity } from '../../contracts/transform-api.js';
import { quoteIdent } from '../../core/sql.js';
import {
  canonicalRow,
  canonicalValue,
  compareKeys,
  differingColumns,
  type EntityShape,
  exactJsonTypes,
  hashLine,
  hashRowSql,
  keyObject,
  keyText,
  keyValues,
} from './canonical-row.js';
import type { ExpectedRow } from './expected-state.js';

/** One V2 row that is not what the legacy rows say it should be. */
export interface RowDiff {
  entity: V2Entity;
  kind: 'missing' | 'extra' | 'different';
  values: JsonValue[];
  keyText: string;
  key: JsonRow;
  /** Columns that differ (kind 'different'). */
  columns: string[];
  expected: JsonRow | null;
  actual: JsonRow | null;
}

export interface EntityComparison {
  entity: V2Entity;
  expected: number;
  actual: number;
  chunks: number;
  mismatchedChunks: number;
  diffs: RowDiff[];
}

/** A key range of the target's rows: the rows after the previous chunk's last key up to `last`, hashed. */
export interface TargetChunk {
  last: JsonValue[];
  rows: number;
  hash: string;
}

/** Restricts the target rows: a condition on alias `t`, with its bound values ($1…). */
export interface TargetFilter {
  sql: string;
  values: unknown[];
}

const keyColumn = (k: EntityShape['key'][number]) =>
  `t.${quoteIdent(k.name)}${k.kind === 'text' ? ' COLLATE "C"' : ''}`;

/** `ORDER BY` of the key: text keys COLLATE "C", the order compareKeys implements. */
const orderBy = (shape: EntityShape) => shape.key.map(keyColumn).join(', ');

const md5 = (lines: readonly string[]) => createHash('md5').update(lines.join('\n')).digest('hex');

/**
 * The target's side of an entity, computed by the target: its rows in key order cut into chunks of `chunkRows`,
 * each chunk's last key, row count and the md5 of its rows' hashLine text (hashRowSql) — so no row crosses the
 * network unless its chunk mismatches. Run it inside the REPEATABLE READ transaction whose snapshot the
 * comparison is about; it is one statement per entity, which the caller may start before the legacy side is read.
 */
export async function hashTargetChunks(
  client: pg.ClientBase,
  entity: V2Entity,
  shape: EntityShape,
  chunkRows: number,
  filter?: TargetFilter,
): Promise<TargetChunk[]> {
  const values: unknown[] = [...(filter?.values ?? [])];
  values.push(chunkRows);
  const chunk = `$${values.length}`;
  const last = shape.key.map((k, i) => `(array_agg(t.${quoteIdent(k.name)} ORDER BY t.rn DESC))[1] AS k${i}`);
  const { rows } = await client.query<Record<string, JsonValue> & { n: number; h: string }>({
    text: `SELECT count(*)::int AS n, md5(string_agg(t.line, E'\\n' ORDER BY t.rn)) AS h, ${last.join(', ')}
             FROM (SELECT t.*, ${hashRowSql(shape)} AS line, row_number() OVER (ORDER BY ${orderBy(shape)}) AS rn
                     FROM ${quoteIdent(entity)} t ${filter ? `WHERE ${filter.sql}` : ''}) t
            GROUP BY (t.rn - 1) / ${chunk}
            ORDER BY (t.rn - 1) / ${chunk}`,
    values,
  });
  return rows.map((r) => ({
    last: shape.key.map((k, i) => canonicalValue(k.kind, r[`k${i}`])),
    rows: r.n,
    hash: r.h,
  }));
}

export interface CompareEntityOptions {
  /** A target connection inside the transaction `targetChunks` were computed in. */
  client: pg.ClientBase;
  entity: V2Entity;
  shape: EntityShape;
  /** The expected rows, in key order (compareKeys). */
  expected: readonly ExpectedRow[];
  targetChunks: readonly TargetChunk[];
  filter?: TargetFilter;
  onChunk?: (rowsDone: number) => void;
}

/**
 * Compares one entity's expected rows with the target's, chunk by chunk over the target's key ranges (the first
 * range open below, the last open above, so every expected row falls in one): the expected rows of a range are
 * hashed like the target hashed its own (hashLine), and only a range whose hashes differ has its target rows
 * fetched and compared row by row with canonicalRow (equal values however spelt). A key the two sides order
 * differently lands in the wrong range and shows as missing there and extra in its own; those pairs are
 * compared directly at the end.
 */
export async function compareEntity(o: CompareEntityOptions): Promise<EntityComparison> {
  const { client, entity, shape, expected } = o;
  // An empty target is one empty range covering every key.
  const chunks: TargetChunk[] =
    o.targetChunks.length > 0 ? [...o.targetChunks] : [{ last: [], rows: 0, hash: md5([]) }];
  const result: EntityComparison = {
    entity,
    expected: expected.length,
    actual: 0,
    chunks: chunks.length,
    mismatchedChunks: 0,
    diffs: [],
  };
  // A one-column uuid key compares as its text (keyText); other keys by their values.
  const k = shape.key[0]!;
  const byText = shape.key.length === 1 && k.kind !== 'text' && k.kind !== 'integer' && k.kind !== 'bigint';
  const within = (e: ExpectedRow, last: JsonValue[]) =>
    byText ? e.keyText <= String(last[0]) : compareKeys(shape, keyValues(shape, e.row), last) <= 0;
  let i = 0;
  for (let c = 0; c < chunks.length; c++) {
    const chunk = chunks[c]!;
    const open = c === chunks.length - 1;
    const start = i;
    while (i < expected.length && (open || within(expected[i]!, chunk.last))) i++;
    const rows = expected.slice(start, i);
    result.actual += chunk.rows;
    if (md5(rows.map((r) => hashLine(shape, r.row))) !== chunk.hash) {
      result.mismatchedChunks++;
      const lo = c > 0 ? chunks[c - 1]!.last : undefined;
      const actual = await fetchRange(client, entity, shape, lo, open ? undefined : chunk.last, o.filter);
      diffRows(entity, shape, rows, actual, result.diffs);
    }
    o.onChunk?.(i);
  }
  result.diffs = reconcile(shape, result.diffs);
  return result;
}

/** The target rows with keys in (lo, hi] (either bound open), in key order; json columns as RawJson. */
async function fetchRange(
  client: pg.ClientBase,
  entity: V2Entity,
  shape: EntityShape,
  lo: readonly JsonValue[] | undefined,
  hi: readonly JsonValue[] | undefined,
  filter?: TargetFilter,
): Promise<JsonRow[]> {
  const values: unknown[] = [...(filter?.values ?? [])];
  const keys = `(${shape.key.map(keyColumn).join(', ')})`;
  const bound = (b: readonly JsonValue[]) =>
    `(${b.map((v, i) => `$${values.push(v)}${shape.key[i]!.kind === 'text' ? ' COLLATE "C"' : ''}`).join(', ')})`;
  const where = [
    ...(filter ? [filter.sql] : []),
    ...(lo ? [`${keys} > ${bound(lo)}`] : []),
    ...(hi ? [`${keys} <= ${bound(hi)}`] : []),
  ];
  const { rows } = await client.query<JsonRow>({
    text: `SELECT t.* FROM ${quoteIdent(entity)} t ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
            ORDER BY ${orderBy(shape)}`,
    values,
    // JSON as its text: compared exactly (canonicalValue), not as doubles.
    types: exactJsonTypes,
  });
  return rows;
}

/** Row by row, inside one mismatched chunk. */
function diffRows(
  entity: V2Entity,
  shape: EntityShape,
  rows: readonly ExpectedRow[],
  actual: readonly JsonRow[],
  out: RowDiff[],
): void {
  const byKey = new Map<string, JsonRow>();
  for (const row of actual) byKey.set(keyText(keyValues(shape, row)), row);
  for (const e of rows) {
    const a = byKey.get(e.keyText);
    if (!a) {
      out.push(rowDiff(entity, shape, 'missing', keyValues(shape, e.row), e.row, null));
      continue;
    }
    byKey.delete(e.keyText);
    if (canonicalRow(shape, a) !== canonicalRow(shape, e.row)) {
      out.push(rowDiff(entity, shape, 'different', keyValues(shape, e.row), e.row, a));
    }
  }
  for (const a of byKey.values()) out.push(rowDiff(entity, shape, 'extra', keyValues(shape, a), null, a));
}

/** A row diff; 'different' names the columns. */
export function rowDiff(
  entity: V2Entity,
  shape: EntityShape,
  kind: RowDiff['kind'],
  values: JsonValue[],
  expected: JsonRow | null,
  actual: JsonRow | null,
): RowDiff {
  return {
    entity,
    kind,
    values,
    keyText: keyText(values),
    key: keyObject(shape, values),
    columns: kind === 'different' && expected && actual ? differingColumns(shape, expected, actual) : [],
    expected,
    actual,
  };
}

/** A key both missing (in one chunk) and extra (in another) is one row compared in the wrong chunk. */
function reconcile(shape: EntityShape, diffs: RowDiff[]): RowDiff[] {
  const extra = new Map<string, RowDiff>();
  for (const d of diffs) if (d.kind === 'extra') extra.set(d.keyText, d);
  if (extra.size === 0) return diffs;
  const paired = new Set<string>();
  const out: RowDiff[] = [];
  for (const d of diffs) {
    if (d.kind !== 'missing' || !extra.has(d.keyText)) continue;
    paired.add(d.keyText);
    const a = extra.get(d.keyText)!;
    if (canonicalRow(shape, d.expected!) !== canonicalRow(shape, a.actual!)) {
      out.push(rowDiff(d.entity, shape, 'different', d.values, d.expected, a.actual));
    }
  }
  return [...diffs.filter((d) => !paired.has(d.keyText)), ...out];
}
