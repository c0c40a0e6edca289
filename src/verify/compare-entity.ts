import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { JsonRow, JsonValue, V2Entity } from '../transform/types.js';
import { quoteIdent } from '../util/sql.js';
import {
  canonicalRow,
  compareKeys,
  differingColumns,
  type EntityShape,
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

export interface CompareEntityOptions {
  /** A target connection inside the caller's (REPEATABLE READ) transaction. */
  client: pg.ClientBase;
  entity: V2Entity;
  shape: EntityShape;
  /** The expected rows, in key order (compareKeys). */
  expected: readonly ExpectedRow[];
  /** Restricts the target rows: a condition on alias `t`, with its bound values. */
  filter?: { sql: string; values: unknown[] };
  chunkRows: number;
  fetchRows?: number;
  onChunk?: (rowsDone: number) => void;
}

/** Reads a cursor a batch at a time, the next batch requested while the current one is used. */
class CursorReader {
  private batch: JsonRow[] = [];
  private i = 0;
  private pending: Promise<pg.QueryResult<JsonRow>> | undefined;
  private done = false;

  constructor(
    private readonly client: pg.ClientBase,
    private readonly name: string,
    private readonly fetchRows: number,
  ) {}

  private fetch() {
    return this.client.query<JsonRow>(`FETCH FORWARD ${this.fetchRows} FROM ${this.name}`);
  }

  start(): void {
    this.pending = this.fetch();
  }

  /** The current row, loading the next batch when needed; undefined at the end. */
  async peek(): Promise<JsonRow | undefined> {
    while (this.i >= this.batch.length) {
      if (this.done || !this.pending) return undefined;
      const result = await this.pending;
      this.batch = result.rows;
      this.i = 0;
      if (result.rows.length < this.fetchRows) {
        this.done = true;
        this.pending = undefined;
      } else {
        this.pending = this.fetch();
      }
    }
    return this.batch[this.i];
  }

  /** Rows of the loaded batch from the current one on, without waiting (may be empty). */
  buffered(): JsonRow[] {
    return this.batch.slice(this.i);
  }

  advance(n = 1): void {
    this.i += n;
  }

  async close(): Promise<void> {
    if (this.pending) await this.pending.catch(() => {});
    this.pending = undefined;
    await this.client.query(`CLOSE ${this.name}`);
  }
}

let cursorSeq = 0;

const md5 = (lines: readonly string[]) => createHash('md5').update(lines.join('\n')).digest('hex');

/**
 * Compares one entity's expected rows with the target's in key-range chunks: the expected rows, in key order, are
 * cut into chunks of `chunkRows`; chunk i covers the keys after chunk i-1's last key up to its own last key (the
 * last chunk is open-ended, so target rows beyond every expected key land in it). The target's rows are read once,
 * in the same key order, through a cursor; each chunk's canonical rows are hashed on both sides, and only a chunk
 * whose hashes differ is compared row by row. A row compared in the wrong chunk (an ordering disagreement) would
 * show as missing in one and extra in another; those pairs are compared directly at the end.
 */
export async function compareEntity(o: CompareEntityOptions): Promise<EntityComparison> {
  const { client, entity, shape, expected } = o;
  const cursor = `verify_target_${++cursorSeq}`;
  const order = shape.key
    .map((k) => `t.${quoteIdent(k.name)}${k.kind === 'text' ? ' COLLATE "C"' : ''}`)
    .join(', ');
  await client.query({
    text: `DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT t.* FROM ${quoteIdent(entity)} t
             ${o.filter ? `WHERE ${o.filter.sql}` : ''} ORDER BY ${order}`,
    values: o.filter?.values ?? [],
  });
  const reader = new CursorReader(client, cursor, o.fetchRows ?? 2_000);
  reader.start();
  const result: EntityComparison = {
    entity,
    expected: expected.length,
    actual: 0,
    chunks: 0,
    mismatchedChunks: 0,
    diffs: [],
  };
  try {
    const chunkCount = Math.max(1, Math.ceil(expected.length / o.chunkRows));
    for (let c = 0; c < chunkCount; c++) {
      const rows = expected.slice(c * o.chunkRows, (c + 1) * o.chunkRows);
      const last = c === chunkCount - 1;
      const hi = rows[rows.length - 1]?.values;
      // The target rows of this key range.
      const actual: JsonRow[] = [];
      for (;;) {
        const head = await reader.peek();
        if (head === undefined) break;
        const buffered = reader.buffered();
        let n = 0;
        if (last || hi === undefined) n = buffered.length;
        else {
          while (n < buffered.length && compareKeys(shape, keyValues(shape, buffered[n]!), hi) <= 0) n++;
        }
        for (let i = 0; i < n; i++) actual.push(buffered[i]!);
        reader.advance(n);
        if (n < buffered.length) break;
      }
      result.chunks++;
      result.actual += actual.length;
      const expectedLines = rows.map((r) => canonicalRow(shape, r.row));
      const actualLines = actual.map((r) => canonicalRow(shape, r));
      if (md5(expectedLines) !== md5(actualLines)) {
        result.mismatchedChunks++;
        diffRows(entity, shape, rows, expectedLines, actual, actualLines, result.diffs);
      }
      o.onChunk?.(c * o.chunkRows + rows.length);
    }
  } finally {
    await reader.close();
  }
  result.diffs = reconcile(shape, result.diffs);
  return result;
}

/** Row by row, inside one mismatched chunk. */
function diffRows(
  entity: V2Entity,
  shape: EntityShape,
  rows: readonly ExpectedRow[],
  expectedLines: readonly string[],
  actual: readonly JsonRow[],
  actualLines: readonly string[],
  out: RowDiff[],
): void {
  const byKey = new Map<string, { row: JsonRow; line: string }>();
  actual.forEach((row, i) => {
    byKey.set(keyText(keyValues(shape, row)), { row, line: actualLines[i]! });
  });
  rows.forEach((e, i) => {
    const a = byKey.get(e.keyText);
    if (!a) {
      out.push(rowDiff(entity, shape, 'missing', e.values, e.row, null));
      return;
    }
    byKey.delete(e.keyText);
    if (a.line !== expectedLines[i]) out.push(rowDiff(entity, shape, 'different', e.values, e.row, a.row));
  });
  for (const a of byKey.values())
    out.push(rowDiff(entity, shape, 'extra', keyValues(shape, a.row), null, a.row));
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
  const out: RowDiff[] = [];
  const paired = new Set<string>();
  for (const d of diffs) {
    if (d.kind === 'missing' && extra.has(d.keyText)) {
      const a = extra.get(d.keyText)!;
      paired.add(d.keyText);
      if (canonicalRow(shape, d.expected!) !== canonicalRow(shape, a.actual!)) {
        out.push(rowDiff(d.entity, shape, 'different', d.values, d.expected, a.actual));
      }
      continue;
    }
    if (d.kind === 'extra' && paired.has(d.keyText)) continue;
    out.push(d);
  }
  // Extras seen before their missing twin were kept above; drop those now paired.
  return out.filter((d) => !(d.kind === 'extra' && paired.has(d.keyText)));
}
