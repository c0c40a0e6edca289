import pg from 'pg';
import { eventValueToJson, loadTypes, TypeCatalog } from '../../src/contracts/event-value.js';
import { stringifyJsonExactly } from '../../src/contracts/exact-json.js';
import type { JsonRow, JsonValue } from '../../src/contracts/transform-api.js';
import type { Logger } from '../../src/core/logger.js';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { TEXT_FORMAT_OPTIONS } from '../../src/core/pg-text-types.js';
import { qualifiedName, quoteIdent, TOASTABLE_ATTRIBUTE } from '../../src/core/sql.js';
import { isNewer, type Lineage, lineageKey, type Position } from './lineage.js';
import type { PendingToast } from './raw-change.js';

/**
 * Unchanged TOASTed values without REPLICA IDENTITY FULL.
 *
 * pgoutput does not send a value stored out of line (TOAST) that an UPDATE left unchanged: the event lists it in
 * `source.unchangedToast` and leaves it out of `after`. The sink completes such an event before its transform runs:
 *
 * - The image store, replicator.toast_images in the target: per legacy row (table, primary key), the values of its
 *   TOAST-able columns as of one source position. Every change of the row that the sink processes and that is newer
 *   than the row's lineage replaces it (upsert, only ever forward) or removes it (delete, truncate), in the same
 *   transaction as the batch's V2 rows and offsets — so the image is the row's state after the last change processed.
 *   Which columns are TOAST-able comes from the legacy catalog (`TOASTABLE_ATTRIBUTE`: varlena types whose storage
 *   is not PLAIN), read once per table and refreshed every minute; key columns are left out (the Kafka key has them),
 *   and so are values that can never be stored out of line (NULLs, short text: `mayBeExternal`). A row that cannot
 *   hold an out-of-line value at all (too small to be toasted, `mayHoldExternal`) keeps no image.
 * - Completion, in the apply transaction after the batch's lineage rows are locked (the partition's offset row is
 *   locked before: one sink instance at a time handles a legacy row, whatever the rebalances and kill -9s). Within
 *   a batch each row's state is carried from change to change in memory; the first change of a row in a batch reads
 *   the stored image. An image is used when it is not older than the row's lineage (an older one missed a change
 *   applied since) and not newer than the event. An image *newer* than the event means the event was processed
 *   before (a replay): it is skipped without a unit, as lineage skips every stale change — it is never completed
 *   from the newer image. An event without a usable image that its lineage already covers is skipped the same way.
 * - Otherwise (a row last written before the slot existed and never snapshotted, an image lost to a REPLICA
 *   IDENTITY FULL period, a primary-key change that moved the row to a new key) the columns are re-read from the
 *   legacy row by key, on a read-only connection (SELECT only), counted per table, and the value becomes the image.
 *   Such a value may be newer than the event; any later change of that column carries its new value in full, so
 *   V2 converges to the legacy row. A row already deleted in legacy is skipped: its delete follows on the partition.
 *
 * Tables with REPLICA IDENTITY FULL never produce unchanged-TOAST events (the source fills them from the old row),
 * so they keep no images: their changes delete what an earlier identity left instead, and an image can never
 * outlive a change it did not see.
 */

/** What the sink knows of a legacy table's TOAST-able columns. */
export interface ToastTable {
  exists: boolean;
  identity: 'default' | 'nothing' | 'full' | 'index';
  /** TOAST-able columns → their type oid. */
  columns: Map<string, number>;
  loadedAt: number;
}

const CATALOG_TTL_MS = 60_000;
/** An unchanged-TOAST event on a table believed FULL reloads its catalog entry, at most this often. */
const CATALOG_RECHECK_MS = 5_000;
const IDENTITIES = { d: 'default', n: 'nothing', f: 'full', i: 'index' } as const;
const rawText = { getTypeParser: () => (v: string) => v };

function splitName(name: string): [string, string] {
  const dot = name.indexOf('.');
  return [name.slice(0, dot), name.slice(dot + 1)];
}

/**
 * The sink's read-only view of the legacy database: which columns can be TOASTed, and rows re-read by key. Its
 * sessions run with the source's text formats (values decode exactly as the source's events) and
 * default_transaction_read_only, so the role needs nothing but SELECT on the captured tables.
 */
export class LegacyRows {
  private pool: pg.Pool | undefined;
  private readonly tables = new Map<string, ToastTable>();
  private readonly types = new TypeCatalog();

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
  ) {}

  private connection(): pg.Pool {
    if (!this.pool) {
      const pool = new pg.Pool({
        connectionString: this.url,
        max: 2,
        options: `${TEXT_FORMAT_OPTIONS} -c default_transaction_read_only=on`,
        application_name: 'replicator-sink-legacy',
        idleTimeoutMillis: 30_000,
      });
      pool.on('error', (e) => this.logger.warn({ err: e.message }, 'idle legacy connection failed'));
      // As the sink's pool (postgres-sink.ts): never a client without an 'error' listener.
      pool.on('connect', (client) => client.on('error', () => {}));
      this.pool = pool;
    }
    return this.pool;
  }

  async end(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => {});
  }

  table(name: string): ToastTable | undefined {
    return this.tables.get(name);
  }

  /**
   * Loads the catalog entries of these tables, or refreshes those older than a minute (`force`: now). A table never
   * loaded must load (the error propagates and the caller retries); a failed refresh keeps what is known.
   */
  async load(names: Iterable<string>, force = false): Promise<void> {
    const now = Date.now();
    const due = [...new Set(names)].filter((n) => {
      const t = this.tables.get(n);
      return force || !t || now - t.loadedAt > CATALOG_TTL_MS;
    });
    if (due.length === 0) return;
    try {
      await this.read(due);
    } catch (e) {
      if (due.some((n) => !this.tables.has(n))) throw e;
      this.logger.warn(
        { err: e instanceof Error ? e.message : String(e) },
        'could not refresh the legacy catalog (TOAST-able columns); keeping what is known',
      );
      for (const n of due) this.tables.get(n)!.loadedAt = now;
    }
  }

  /** An unchanged-TOAST event on a table believed FULL: its identity changed; read it again soon. */
  recheck(name: string): void {
    const t = this.tables.get(name);
    if (t && Date.now() - t.loadedAt > CATALOG_RECHECK_MS) t.loadedAt = 0;
  }

  private async read(names: readonly string[]): Promise<void> {
    const pool = this.connection();
    const parts = names.map(splitName);
    const { rows } = await pool.query<{ name: string; identity: string; columns: string }>(
      `SELECT k.name, c.relreplident::text AS identity,
              coalesce(json_object_agg(a.attname, a.atttypid::int8) FILTER (WHERE a.attname IS NOT NULL), '{}')::text
                AS columns
         FROM unnest($1::text[], $2::text[], $3::text[]) AS k(name, nsp, rel)
         JOIN pg_namespace n ON n.nspname = k.nsp
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = k.rel AND c.relkind IN ('r', 'p')
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND ${TOASTABLE_ATTRIBUTE}
        GROUP BY k.name, c.relreplident`,
      [names, parts.map((p) => p[0]), parts.map((p) => p[1])],
    );
    const now = Date.now();
    const oids: number[] = [];
    const found = new Map<string, ToastTable>();
    for (const r of rows) {
      const columns = new Map(Object.entries(JSON.parse(r.columns) as Record<string, number>));
      oids.push(...columns.values());
      found.set(r.name, {
        exists: true,
        identity: IDENTITIES[r.identity as keyof typeof IDENTITIES] ?? 'default',
        columns,
        loadedAt: now,
      });
    }
    const missing = this.types.missing(oids);
    if (missing.length > 0) for (const t of await loadTypes(pool, missing)) this.types.add(t);
    for (const name of names) {
      this.tables.set(
        name,
        found.get(name) ?? { exists: false, identity: 'default', columns: new Map(), loadedAt: now },
      );
    }
  }

  /**
   * The current values of `wanted` in the legacy rows of these keys (JSON objects of the primary-key columns, as
   * the Kafka key), in the events' JSON forms; null where the row no longer exists. A wanted column the table no
   * longer has is left out.
   */
  async refetch(
    name: string,
    keys: readonly JsonRow[],
    wanted: readonly string[],
  ): Promise<(JsonRow | null)[]> {
    let t = this.tables.get(name);
    if (!t || wanted.some((c) => !t!.columns.has(c))) {
      await this.load([name], true);
      t = this.tables.get(name)!;
    }
    const table = t;
    const out: (JsonRow | null)[] = keys.map(() => null);
    const keyColumns = keys.length > 0 ? Object.keys(keys[0]!) : [];
    if (!table.exists || keyColumns.length === 0) return out;
    const columns = wanted.filter((c) => table.columns.has(c));
    const from = qualifiedName(...splitName(name));
    const result = await this.connection().query<string[]>({
      text: `SELECT e.ord::int4${columns.map((c) => `, t.${quoteIdent(c)}`).join('')}
               FROM json_array_elements($1::json) WITH ORDINALITY AS e(j, ord)
               CROSS JOIN LATERAL json_populate_record(NULL::${from}, e.j) AS k
               JOIN ${from} t ON ${keyColumns.map((c) => `t.${quoteIdent(c)} = k.${quoteIdent(c)}`).join(' AND ')}`,
      values: [JSON.stringify(keys)],
      rowMode: 'array',
      types: rawText,
    });
    const decoders = columns.map((c) => this.types.decoder(table.columns.get(c)!));
    for (const r of result.rows) {
      const row: JsonRow = {};
      for (let i = 0; i < columns.length; i++) {
        const text = r[i + 1];
        row[columns[i]!] = text === null || text === undefined ? null : eventValueToJson(decoders[i]!(text));
      }
      out[Number(r[0]) - 1] = row;
    }
    return out;
  }

  /**
   * The whole current legacy row of `key` (without one: any row of the table), in the events' JSON forms; null when
   * there is none. For judging whether a table's schema drift is over (postgres-sink.ts).
   */
  async currentRow(name: string, key: JsonRow | null): Promise<JsonRow | null> {
    const from = qualifiedName(...splitName(name));
    const keyColumns = key ? Object.keys(key) : [];
    const pool = this.connection();
    const result = await pool.query<string[]>({
      text:
        keyColumns.length === 0
          ? `SELECT t.* FROM ${from} t LIMIT 1`
          : `SELECT t.* FROM ${from} t, json_populate_record(NULL::${from}, $1::json) AS k
              WHERE ${keyColumns.map((c) => `t.${quoteIdent(c)} = k.${quoteIdent(c)}`).join(' AND ')}`,
      values: keyColumns.length === 0 ? [] : [JSON.stringify(key)],
      rowMode: 'array',
      types: rawText,
    });
    const values = result.rows[0];
    if (values === undefined) return null;
    const missing = this.types.missing(result.fields.map((f) => f.dataTypeID));
    if (missing.length > 0) for (const t of await loadTypes(pool, missing)) this.types.add(t);
    const row: JsonRow = {};
    result.fields.forEach((f, i) => {
      const text = values[i];
      row[f.name] =
        text === null || text === undefined ? null : eventValueToJson(this.types.decoder(f.dataTypeID)(text));
    });
    return row;
  }
}

/** One change of a captured legacy row, as the image store sees it. */
export interface RowChange {
  table: string;
  key: JsonRow;
  position: Position;
  /** The new row as the event carries it; null for a delete. */
  after: JsonRow | null;
  /** Set when `after` lacks unchanged TOASTed columns: the unit is built once they are filled in. */
  pending?: PendingToast;
}

/** One message of a batch, in partition order: a row change, a truncate, or nothing the store cares about. */
export type ToastStep =
  | { change: RowChange }
  | { truncate: { table: string; position: Position } }
  | undefined;

/** A stored image, or one to store (`values` null: delete it). */
interface Image {
  table: string;
  key: string;
  position: Position;
  values: JsonRow | null;
}

export interface ToastResolution {
  /** Per step index of a pending change: the values to fill in, or 'skip' (no unit: stale, or the row is gone). */
  completions: Map<number, JsonRow | 'skip'>;
  /** What to write to the image store (`write`), after the batch's units are applied. */
  writes: Image[];
  /** Rows re-read from legacy, per table. */
  refetched: Map<string, number>;
}

interface ChainState extends Image {
  /** Newer than the row's lineage: the image is written. */
  write: boolean;
  /** Waiting for a re-read (first pass only). */
  unknown?: boolean;
}

/** The image store of the apply transaction (see the module comment). */
export class ToastImages {
  constructor(readonly legacy: LegacyRows) {}

  /** Before the transaction: the catalog entries of the batch's tables (legacy I/O; the caller retries). */
  prepare(tables: Iterable<string>): Promise<void> {
    return this.legacy.load(tables);
  }

  /**
   * Decides, for every pending change of the batch, what to complete it with, and what the image store becomes.
   * Runs inside the apply transaction, after `lineage` (the batch's rows, locked) was read and before any unit is
   * applied.
   */
  async resolve(
    client: pg.ClientBase,
    steps: readonly ToastStep[],
    lineage: ReadonlyMap<string, Lineage>,
  ): Promise<ToastResolution> {
    // Stored images are needed only where a row's first change in the batch is a pending one.
    const seen = new Set<string>();
    const wanted: { table: string; key: string }[] = [];
    for (const s of steps) {
      if (!s || !('change' in s)) continue;
      const lk = lineageKey(s.change.table, s.change.key);
      if (seen.has(lk)) continue;
      seen.add(lk);
      if (s.change.pending) wanted.push({ table: s.change.table, key: JSON.stringify(s.change.key) });
    }
    const stored = await this.read(client, wanted);
    const first = this.walk(steps, lineage, stored);
    if (first.refetch.length === 0) return { ...first, refetched: new Map() };
    const { fetched, refetched } = await this.refetch(steps, first.refetch);
    return { ...this.walk(steps, lineage, stored, fetched), refetched };
  }

  /** Writes the images `resolve` decided: upserts only ever move an image forward; deletes only remove older ones. */
  async write(client: pg.ClientBase, writes: readonly Image[]): Promise<void> {
    const sorted = [...writes].sort((a, b) =>
      a.table === b.table ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.table < b.table ? -1 : 1,
    );
    const upserts = sorted.filter((w) => w.values !== null);
    const deletes = sorted.filter((w) => w.values === null);
    const cols = (ws: Image[]) => [
      ws.map((w) => w.table),
      ws.map((w) => w.key),
      ws.map((w) => formatLsn(w.position.commitLsn)),
      ws.map((w) => w.position.seq),
    ];
    if (upserts.length > 0) {
      await client.query(
        `INSERT INTO replicator.toast_images AS i (source_table, source_key, commit_lsn, seq, columns)
         SELECT * FROM unnest($1::text[], $2::text[], $3::pg_lsn[], $4::int4[], $5::json[])
         ON CONFLICT (source_table, source_key) DO UPDATE
           SET commit_lsn = EXCLUDED.commit_lsn, seq = EXCLUDED.seq, columns = EXCLUDED.columns
           WHERE (i.commit_lsn, i.seq) < (EXCLUDED.commit_lsn, EXCLUDED.seq)`,
        [...cols(upserts), upserts.map((w) => stringifyJsonExactly(w.values))],
      );
    }
    if (deletes.length > 0) {
      await client.query(
        `DELETE FROM replicator.toast_images i
          USING unnest($1::text[], $2::text[], $3::pg_lsn[], $4::int4[]) AS d(t, k, l, s)
          WHERE i.source_table = d.t AND i.source_key = d.k AND (i.commit_lsn, i.seq) < (d.l, d.s)`,
        cols(deletes),
      );
    }
  }

  private async read(
    client: pg.ClientBase,
    keys: readonly { table: string; key: string }[],
  ): Promise<Map<string, Image>> {
    const out = new Map<string, Image>();
    if (keys.length === 0) return out;
    const { rows } = await client.query<{
      source_table: string;
      source_key: string;
      commit_lsn: string;
      seq: number;
      columns: string;
    }>(
      `SELECT i.source_table, i.source_key, i.commit_lsn::text AS commit_lsn, i.seq, i.columns::text AS columns
         FROM replicator.toast_images i
         JOIN unnest($1::text[], $2::text[]) AS k(t, key) ON i.source_table = k.t AND i.source_key = k.key`,
      [keys.map((k) => k.table), keys.map((k) => k.key)],
    );
    for (const r of rows) {
      out.set(lineageKey(r.source_table, r.source_key), {
        table: r.source_table,
        key: r.source_key,
        position: { commitLsn: parseLsn(r.commit_lsn), seq: r.seq },
        values: JSON.parse(r.columns) as JsonRow,
      });
    }
    return out;
  }

  /** The pending changes at these step indices, re-read from legacy: one query per table. */
  private async refetch(
    steps: readonly ToastStep[],
    indices: readonly number[],
  ): Promise<{ fetched: Map<number, JsonRow | null>; refetched: Map<string, number> }> {
    const byTable = new Map<string, { indices: number[]; keys: JsonRow[]; columns: Set<string> }>();
    for (const i of indices) {
      const c = (steps[i] as { change: RowChange }).change;
      let t = byTable.get(c.table);
      if (!t) {
        t = { indices: [], keys: [], columns: new Set() };
        byTable.set(c.table, t);
      }
      t.indices.push(i);
      t.keys.push(c.key);
      for (const col of c.pending!.unchanged) if (!Object.hasOwn(c.key, col)) t.columns.add(col);
    }
    const fetched = new Map<number, JsonRow | null>();
    const refetched = new Map<string, number>();
    for (const [table, t] of byTable) {
      const rows = await this.legacy.refetch(table, t.keys, [...t.columns]);
      t.indices.forEach((i, n) => {
        fetched.set(i, rows[n] ?? null);
      });
      refetched.set(table, t.indices.length);
    }
    return { fetched, refetched };
  }

  /**
   * One pass over the batch in partition order. Without `fetched`, it also lists the pending changes that need a
   * re-read from legacy (then it runs again with them).
   */
  private walk(
    steps: readonly ToastStep[],
    lineage: ReadonlyMap<string, Lineage>,
    stored: ReadonlyMap<string, Image>,
    fetched?: ReadonlyMap<number, JsonRow | null>,
  ): { completions: Map<number, JsonRow | 'skip'>; writes: Image[]; refetch: number[] } {
    const chain = new Map<string, ChainState>();
    const truncated = new Map<string, Position>();
    const completions = new Map<number, JsonRow | 'skip'>();
    const refetch: number[] = [];
    steps.forEach((s, i) => {
      if (!s) return;
      if ('truncate' in s) {
        const { table, position } = s.truncate;
        truncated.set(table, position);
        for (const st of chain.values()) {
          if (st.table !== table) continue;
          st.position = position;
          st.values = null;
          st.write = true;
        }
        return;
      }
      const c = s.change;
      const lk = lineageKey(c.table, c.key);
      const applied = lineage.get(lk);
      const record = (values: JsonRow | null, unknown?: boolean) =>
        chain.set(lk, {
          table: c.table,
          key: JSON.stringify(c.key),
          position: c.position,
          values,
          // A replayed change (its row's lineage is at or after it) never rewrites the image.
          write: !applied || isNewer(c.position, applied),
          ...(unknown ? { unknown } : {}),
        });
      if (!c.pending) {
        record(c.after ? this.imageOf(c.table, c.after, c.key, true) : null);
        return;
      }
      const unchanged = c.pending.unchanged;
      let base: JsonRow | null | undefined;
      const state = chain.get(lk);
      if (state) {
        if (state.unknown) return;
        base = state.values;
      } else {
        let image = stored.get(lk);
        let floor: Position | undefined = applied;
        const cut = truncated.get(c.table);
        if (cut) {
          // Truncated earlier in this batch: older images are gone (the applier deletes them).
          if (image && !isNewer(image.position, cut)) image = undefined;
          if (!floor || isNewer(cut, floor)) floor = cut;
        }
        if (image && isNewer(image.position, c.position)) {
          // Processed before (a replay): never completed from a newer image; lineage skips it anyway.
          completions.set(i, 'skip');
          return;
        }
        if (image && (!floor || !isNewer(floor, image.position))) base = image.values;
        else if (floor && !isNewer(c.position, floor)) {
          completions.set(i, 'skip');
          return;
        }
      }
      let values = base ? fill(unchanged, base, c.key, false) : undefined;
      if (!values) {
        if (!fetched) {
          refetch.push(i);
          record(null, true);
          return;
        }
        const row = fetched.get(i);
        if (!row) {
          // Gone from legacy (or the re-read was not asked for): its delete follows on this partition.
          completions.set(i, 'skip');
          return;
        }
        values = fill(unchanged, row, c.key, true)!;
      }
      completions.set(i, values);
      record(this.imageOf(c.table, { ...c.after, ...values }, c.key, false));
    });
    const writes: Image[] = [];
    for (const st of chain.values()) {
      if (!st.write || st.unknown) continue;
      const table = this.legacy.table(st.table);
      // Nothing TOAST-able: such a table never needs an image.
      if (!table || table.columns.size === 0) continue;
      // FULL tables keep no images: their changes remove what an earlier identity left. Nor does a row none of
      // whose values can be out of line: no update of it can leave one out until a change sets a large one.
      const keep = table.identity !== 'full' && st.values !== null && Object.keys(st.values).length > 0;
      writes.push({ table: st.table, key: st.key, position: st.position, values: keep ? st.values : null });
    }
    for (const i of completions.keys()) {
      const c = (steps[i] as { change: RowChange }).change;
      if (this.legacy.table(c.table)?.identity === 'full') this.legacy.recheck(c.table);
    }
    return { completions, writes, refetch };
  }

  /**
   * The values of a row that PostgreSQL may store out of line: TOAST-able, non-key columns (`mayBeExternal`).
   * `complete`: the event carried every column (none unchanged-TOAST) — then nothing is out of line in this version
   * of a row too small to be toasted (`mayHoldExternal`), and the next update cannot leave a value out.
   */
  private imageOf(table: string, row: JsonRow, key: JsonRow, complete: boolean): JsonRow {
    const out: JsonRow = {};
    const t = this.legacy.table(table);
    if (!t || (complete && !mayHoldExternal(row))) return out;
    for (const [column, oid] of t.columns) {
      if (Object.hasOwn(key, column) || !Object.hasOwn(row, column)) continue;
      const value = row[column]!;
      if (mayBeExternal(oid, value)) out[column] = value;
    }
    return out;
  }
}

/** text, varchar, bpchar: their stored size is their UTF-8 length plus a 1- or 4-byte header. */
const TEXT_OIDS = new Set([25, 1043, 1042]);

/**
 * Whether a value could be stored out of line, and so ever be reported unchanged. PostgreSQL moves to the TOAST
 * table only values larger than a TOAST pointer (18 bytes, MAXALIGNed) and never a NULL; a text value of at most 16
 * UTF-8 bytes stays inline on any platform. Leaving those out of the image (statuses, codes, short names) costs
 * nothing: an update can only report a column unchanged while its value is large.
 */
function mayBeExternal(oid: number, value: JsonValue): boolean {
  if (value === null) return false;
  return !(TEXT_OIDS.has(oid) && typeof value === 'string' && Buffer.byteLength(value, 'utf8') <= 16);
}

/**
 * PostgreSQL toasts a row only when it exceeds TOAST_TUPLE_THRESHOLD (2,032 bytes with 8 kB pages). An upper bound
 * of the row's stored size from its event values: text as its UTF-8 bytes, json/jsonb and arrays as four times their
 * JSON text (jsonb's binary form of small scalars is larger than their text), plus headers and alignment. A row
 * below the bound holds no value out of line unless one was left there, unchanged, by an earlier version — and
 * then the event would have reported it unchanged. A wrong guess costs a re-read from legacy, never a wrong value.
 */
function mayHoldExternal(row: JsonRow): boolean {
  let bytes = 32;
  for (const v of Object.values(row)) {
    if (v === null) continue;
    if (typeof v === 'string') bytes += Buffer.byteLength(v, 'utf8') + 12;
    else if (typeof v === 'object') bytes += 4 * JSON.stringify(v).length + 32;
    else bytes += 16;
    if (bytes >= 1_800) return true;
  }
  return false;
}

/**
 * The values of `unchanged` from the key (key columns) or `base`; undefined when `base` lacks one, unless
 * `lenient` (a re-read row: a column the table no longer has stays absent).
 */
function fill(
  unchanged: readonly string[],
  base: JsonRow,
  key: JsonRow,
  lenient: boolean,
): JsonRow | undefined {
  const out: JsonRow = {};
  for (const column of unchanged) {
    if (Object.hasOwn(key, column)) out[column] = key[column]!;
    else if (Object.hasOwn(base, column)) out[column] = base[column]!;
    else if (!lenient) return undefined;
  }
  return out;
}
