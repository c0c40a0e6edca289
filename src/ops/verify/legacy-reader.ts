import type pg from 'pg';
import { describeTable } from '../../../connectors/pgoutput-source/index.js';
import type { Row } from '../../contracts/change-event.js';
import { type EventValue, eventValueToJson, loadTypes, TypeCatalog } from '../../contracts/event-value.js';
import type { JsonRow } from '../../contracts/transform-api.js';
import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import { qualifiedName, quoteIdent } from '../../core/sql.js';

/** A legacy table as verify reads it: columns in attnum order with their type oids, and the primary key. */
export interface LegacyTable {
  /** schema.table, as transform modules and the lineage name it */
  name: string;
  schema: string;
  table: string;
  primaryKey: readonly string[];
  columns: readonly { name: string; oid: number }[];
}

/** One legacy row: its JSON form (what a transform sees), its key, and (when asked) the source's event values. */
export interface LegacyRecord {
  table: LegacyTable;
  /** The event values, as the source publishes them (readByKeys only). */
  values?: Row;
  row: JsonRow;
  key: JsonRow;
}

const rawText = { getTypeParser: () => (v: string) => v };

/** The lineage's and the queue's text of a legacy key: JSON of the key columns in key order (the Kafka key's). */
export const legacyKeyText = (key: JsonRow) => JSON.stringify(key);

/**
 * Reads legacy rows exactly as the source publishes them: on a connection with the source's session settings
 * (TEXT_FORMAT_OPTIONS), values as text through the source's TypeCatalog decoders. The caller owns the
 * transaction (REPEATABLE READ for a consistent read); tables are streamed through a cursor, a batch at a time,
 * with the next batch already requested while one is decoded.
 */
export class LegacyReader {
  private readonly catalog = new TypeCatalog();
  private readonly decoders = new Map<string, ((text: string) => EventValue)[]>();
  private cursors = 0;

  constructor(private readonly client: pg.Client) {}

  /** Columns and primary key of each table; a missing table or one without a primary key is an error. */
  async describe(names: readonly string[]): Promise<LegacyTable[]> {
    const out: LegacyTable[] = [];
    for (const name of names) {
      const dot = name.indexOf('.');
      const schema = name.slice(0, dot);
      const table = name.slice(dot + 1);
      const info = await describeTable(this.client, { schema, table });
      if (!info) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, `legacy table ${name} does not exist`);
      if (info.primaryKey.length === 0) {
        throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, `legacy table ${name} has no primary key`);
      }
      const columns = (
        await this.client.query<{ name: string; oid: string }>(
          `SELECT attname AS name, atttypid::int8::text AS oid FROM pg_attribute
            WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
          [qualifiedName(schema, table)],
        )
      ).rows.map((c) => ({ name: c.name, oid: Number(c.oid) }));
      const missing = this.catalog.missing(columns.map((c) => c.oid));
      if (missing.length > 0) for (const t of await loadTypes(this.client, missing)) this.catalog.add(t);
      const t: LegacyTable = { name, schema, table, primaryKey: info.primaryKey, columns };
      this.decoders.set(
        name,
        columns.map((c) => this.catalog.decoder(c.oid)),
      );
      out.push(t);
    }
    return out;
  }

  /** Every row of `table` (optionally `WHERE column = value`), in batches of `batchRows`. */
  async *stream(
    table: LegacyTable,
    options: { where?: { column: string; value: string }; batchRows?: number } = {},
  ): AsyncGenerator<LegacyRecord[]> {
    const batchRows = options.batchRows ?? 5_000;
    const cursor = `verify_legacy_${++this.cursors}`;
    const where = options.where ? `WHERE ${quoteIdent(options.where.column)} = $1` : '';
    await this.client.query({
      text: `DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${this.selectList(table)} FROM ${qualifiedName(table.schema, table.table)} ${where}`,
      values: options.where ? [options.where.value] : [],
    });
    const fetch = () =>
      this.client.query<string[]>({
        text: `FETCH FORWARD ${batchRows} FROM ${cursor}`,
        rowMode: 'array',
        types: rawText,
      });
    let pending: Promise<pg.QueryResult<string[]>> | undefined = fetch();
    try {
      while (pending) {
        const result: pg.QueryResult<string[]> = await pending;
        pending = result.rows.length === batchRows ? fetch() : undefined;
        if (result.rows.length > 0) yield this.decode(table, result.rows, false);
      }
    } finally {
      if (pending) await pending.catch(() => {});
      await this.client.query(`CLOSE ${cursor}`).catch(() => {});
    }
  }

  /** The rows of these keys that exist (keys as JSON objects of the key columns, e.g. from the lineage). */
  async readByKeys(table: LegacyTable, keys: readonly JsonRow[]): Promise<LegacyRecord[]> {
    if (keys.length === 0) return [];
    const from = qualifiedName(table.schema, table.table);
    const on = table.primaryKey.map((k) => `t.${quoteIdent(k)} = k.${quoteIdent(k)}`).join(' AND ');
    const result = await this.client.query<string[]>({
      text: `SELECT ${this.selectList(table, 't.')} FROM ${from} t
               JOIN (SELECT DISTINCT ${table.primaryKey.map(quoteIdent).join(', ')}
                       FROM json_populate_recordset(NULL::${from}, $1::json)) k ON ${on}`,
      values: [JSON.stringify(keys)],
      rowMode: 'array',
      types: rawText,
    });
    return this.decode(table, result.rows, true);
  }

  private selectList(table: LegacyTable, prefix = ''): string {
    return table.columns.map((c) => `${prefix}${quoteIdent(c.name)}`).join(', ');
  }

  private decode(table: LegacyTable, rows: readonly string[][], withValues: boolean): LegacyRecord[] {
    const decoders = this.decoders.get(table.name)!;
    const { columns, primaryKey } = table;
    // Plain objects are much cheaper than prototype-less ones; a column named __proto__ needs the latter.
    const plain = !columns.some((c) => c.name === '__proto__');
    const out: LegacyRecord[] = new Array(rows.length);
    for (let r = 0; r < rows.length; r++) {
      const raw = rows[r]!;
      const values = withValues ? (Object.create(null) as Row) : undefined;
      const row: JsonRow = plain ? {} : (Object.create(null) as JsonRow);
      for (let i = 0; i < columns.length; i++) {
        const text = raw[i];
        const name = columns[i]!.name;
        if (text === null || text === undefined) {
          if (values) values[name] = null;
          row[name] = null;
        } else {
          const v = decoders[i]!(text);
          if (values) values[name] = v;
          row[name] = typeof v === 'object' && v !== null ? eventValueToJson(v) : v;
        }
      }
      const key: JsonRow = {};
      for (const k of primaryKey) key[k] = row[k] ?? null;
      out[r] = values ? { table, values, row, key } : { table, row, key };
    }
    return out;
  }
}
