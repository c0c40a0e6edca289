import { beforeAll, describe, expect, it } from 'vitest';
import { readSlot } from '../../../connectors/pgoutput-source/preflight.js';
import { events, type ReadMessage, readTopics } from '../../helpers/kafka-read.js';
import { dropSlot, freshDatabase, testKafka, withClient } from '../../helpers/resources.js';
import { sourceConfig, startSource, topicOf } from '../../helpers/source-harness.js';

const kafka = testKafka();
let db: { name: string; url: string };

beforeAll(async () => {
  db = await freshDatabase('types');
});

/** One cell: the SQL expression inserted, and the exact JSON text expected for it inside `after`. */
interface Cell {
  sql: string;
  json: string;
}

/** A non-json column: its expected value goes through JSON.stringify, exactly as the envelope writes strings. */
const v = (sql: string, value: unknown): Cell => ({ sql, json: JSON.stringify(value) });
/** A json/jsonb column: the server's text, emitted verbatim (never re-serialized). */
const j = (sql: string, serverText: string): Cell => ({ sql, json: serverText });

const COLUMNS = [
  ['c_bool', 'bool'],
  ['c_int2', 'int2'],
  ['c_int4', 'int4'],
  ['c_int8', 'int8'],
  ['c_numeric', 'numeric'],
  ['c_numeric_12_2', 'numeric(12,2)'],
  ['c_float4', 'float4'],
  ['c_float8', 'float8'],
  ['c_text', 'text'],
  ['c_varchar', 'varchar(10)'],
  ['c_char', 'char(3)'],
  ['c_uuid', 'uuid'],
  ['c_date', 'date'],
  ['c_timestamp', 'timestamp'],
  ['c_timestamptz', 'timestamptz'],
  ['c_time', 'time'],
  ['c_timetz', 'timetz'],
  ['c_interval', 'interval'],
  ['c_json', 'json'],
  ['c_jsonb', 'jsonb'],
  ['c_bytea', 'bytea'],
  ['c_int4_arr', 'int4[]'],
  ['c_text_arr', 'text[]'],
  ['c_numeric_arr', 'numeric[]'],
  ['c_enum', 'mood'],
  ['c_enum_arr', 'mood[]'],
  ['c_domain', 'amount'],
] as const;

type Column = (typeof COLUMNS)[number][0];

const NULL_CELL: Cell = { sql: 'NULL', json: 'null' };

/** Rows by id (the snapshot copy); the streamed copy of row `id` is inserted as `id + STREAM_ID_OFFSET`. */
const ROWS: Record<number, Partial<Record<Column, Cell>>> = {
  // Typical values.
  1: {
    c_bool: v('true', true),
    c_int2: v('42', 42),
    c_int4: v('123456', 123456),
    c_int8: v("'1234567890123'", '1234567890123'),
    c_numeric: v("'3.14159'", '3.14159'),
    c_numeric_12_2: v("'1234.5'", '1234.50'),
    c_float4: v("'0.1'", 0.1),
    c_float8: v("'0.1'::float8 + '0.2'::float8", 0.30000000000000004),
    c_text: v(
      String.raw`E'héllo wörld ✓ 😀\nline2\t"quoted" \\ back'`,
      'héllo wörld ✓ 😀\nline2\t"quoted" \\ back',
    ),
    c_varchar: v("'abc'", 'abc'),
    c_char: v("'ab'", 'ab '),
    c_uuid: v("'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
    c_date: v("'2024-02-29'", '2024-02-29'),
    c_timestamp: v("'2024-02-29 13:14:15.5'", '2024-02-29T13:14:15.500000'),
    c_timestamptz: v("'2024-02-29 23:59:59.999999+05:30'", '2024-02-29T18:29:59.999999Z'),
    c_time: v("'13:14:15.123456'", '13:14:15.123456'),
    c_timetz: v("'13:14:15+05:30'", '13:14:15+05:30'),
    c_interval: v("'1 year 2 months 3 days 04:05:06.789'", 'P1Y2M3DT4H5M6.789S'),
    // json keeps the text as written: key order, duplicate keys and spacing.
    c_json: j(`'{"b":1, "a":[1,2],  "a":{"dup":true}}'`, '{"b":1, "a":[1,2],  "a":{"dup":true}}'),
    // jsonb is the server's normalized text; the 20-digit integer must survive verbatim.
    c_jsonb: j(
      `'{"big": 12345678901234567890, "nested": {"deeper": {"list": [1, "two", null, {"x": -0.5}]}}, "a": true}'`,
      '{"a": true, "big": 12345678901234567890, "nested": {"deeper": {"list": [1, "two", null, {"x": -0.5}]}}}',
    ),
    c_bytea: v(String.raw`'\x00ff10'`, Buffer.from([0x00, 0xff, 0x10]).toString('base64')),
    c_int4_arr: v("'{1,NULL,3}'", [1, null, 3]),
    c_text_arr: v(
      String.raw`ARRAY['a,b', 'say "hi"', E'back\\slash', NULL, '', 'NULL', ' padded ', '{x}', E'end\\']`,
      ['a,b', 'say "hi"', 'back\\slash', null, '', 'NULL', ' padded ', '{x}', 'end\\'],
    ),
    c_numeric_arr: v("'{1.5,NULL,NaN,-0.001}'", ['1.5', null, 'NaN', '-0.001']),
    c_enum: v("'happy'", 'happy'),
    c_enum_arr: v(`ARRAY['sad', NULL, 'so, "so"']::mood[]`, ['sad', null, 'so, "so"']),
    c_domain: v("'0012.50'", '12.50'),
  },
  // NULL in every nullable column.
  2: {},
  // Finite minimums and empties.
  3: {
    c_bool: v('false', false),
    c_int2: v("'-32768'", -32768),
    c_int4: v("'-2147483648'", -2147483648),
    c_int8: v("'-9223372036854775808'", '-9223372036854775808'),
    // 40 significant digits.
    c_numeric: v(
      "'-123456789012345678901234567890.1234567890'",
      '-123456789012345678901234567890.1234567890',
    ),
    c_numeric_12_2: v("'-9999999999.99'", '-9999999999.99'),
    c_float4: v("'-3.4028235e+38'", -3.4028235e38),
    c_float8: v("'-1.7976931348623157e+308'", -1.7976931348623157e308),
    c_text: v("''", ''),
    c_varchar: v("'ääääääääää'", 'ääääääääää'),
    c_char: v("''", '   '),
    c_uuid: v("'00000000-0000-0000-0000-000000000000'", '00000000-0000-0000-0000-000000000000'),
    // The earliest date PostgreSQL accepts; 4713 BC is astronomical year -4712.
    c_date: v("'4713-01-01 BC'", '-4712-01-01'),
    c_timestamp: v("'1970-01-01 00:00:00'", '1970-01-01T00:00:00.000000'),
    c_timestamptz: v("'2000-01-01 00:30:00+01'", '1999-12-31T23:30:00.000000Z'),
    c_time: v("'00:00:00'", '00:00:00'),
    c_timetz: v("'00:00:00-15:59'", '00:00:00-15:59'),
    c_interval: v("'-178000000 years'", 'P-178000000Y'),
    c_json: j("'[]'", '[]'),
    c_jsonb: j("'{}'", '{}'),
    c_bytea: v(String.raw`'\x'`, ''),
    c_int4_arr: v("'{}'", []),
    c_text_arr: v("'{}'", []),
    c_numeric_arr: v("'{}'", []),
    c_enum: v("'sad'", 'sad'),
    c_enum_arr: v("'{}'", []),
    c_domain: v("'0'", '0'),
  },
  // Finite maximums.
  4: {
    c_bool: v('true', true),
    c_int2: v('32767', 32767),
    c_int4: v('2147483647', 2147483647),
    c_int8: v("'9223372036854775807'", '9223372036854775807'),
    // 40 significant digits.
    c_numeric: v("'1234567890123456789012345678901234567890'", '1234567890123456789012345678901234567890'),
    c_numeric_12_2: v("'9999999999.99'", '9999999999.99'),
    c_float4: v("'3.4028235e+38'", 3.4028235e38),
    c_float8: v("'1.7976931348623157e+308'", 1.7976931348623157e308),
    c_text: v(`'${'x'.repeat(5000)}end'`, `${'x'.repeat(5000)}end`),
    c_varchar: v("'ten chars!'", 'ten chars!'),
    c_char: v("'xyz'", 'xyz'),
    c_uuid: v("'ffffffff-ffff-ffff-ffff-ffffffffffff'", 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
    // The latest date PostgreSQL accepts: an ISO 8601 expanded year.
    c_date: v("'5874897-12-31'", '+5874897-12-31'),
    c_timestamp: v("'294276-12-31 23:59:59.999999'", '+294276-12-31T23:59:59.999999'),
    c_timestamptz: v("'9999-12-31 23:59:59.999999-01'", '+10000-01-01T00:59:59.999999Z'),
    c_time: v("'24:00:00'", '24:00:00'),
    c_timetz: v("'24:00:00+15:59'", '24:00:00+15:59'),
    c_interval: v("'1 mon -1 days -00:00:00.000001'", 'P1M-1DT-0.000001S'),
    c_json: j(
      String.raw`'{"n": 1.0e+2, "s": "q\"b\\u\u00e9"}'`,
      String.raw`{"n": 1.0e+2, "s": "q\"b\\u\u00e9"}`,
    ),
    c_jsonb: j(
      String.raw`'[12345678901234567890, -0.000000000000000000001, 1.0e+2, "\u00e9"]'`,
      '[12345678901234567890, -0.000000000000000000001, 100, "é"]',
    ),
    c_bytea: v(String.raw`'\x00ff'`, Buffer.from([0x00, 0xff]).toString('base64')),
    c_int4_arr: v("'{{1,2},{3,NULL}}'", [
      [1, 2],
      [3, null],
    ]),
    c_text_arr: v("'{NULL,NULL}'", [null, null]),
    c_numeric_arr: v("'{NaN,Infinity,-Infinity,NULL,1e-20}'", [
      'NaN',
      'Infinity',
      '-Infinity',
      null,
      '0.00000000000000000001',
    ]),
    c_enum: v(`'so, "so"'`, 'so, "so"'),
    c_enum_arr: v("'{happy,ok}'", ['happy', 'ok']),
    c_domain: v("'99999999999999999999.000000000000000001'", '99999999999999999999.000000000000000001'),
  },
  // Negative non-finite values.
  5: {
    c_numeric: v("'-Infinity'", '-Infinity'),
    c_float4: v("'-Infinity'", '-Infinity'),
    c_float8: v("'-Infinity'", '-Infinity'),
    c_date: v("'-infinity'", '-infinity'),
    c_timestamp: v("'-infinity'", '-infinity'),
    c_timestamptz: v("'-infinity'", '-infinity'),
  },
  // Positive non-finite values.
  6: {
    c_numeric: v("'Infinity'", 'Infinity'),
    c_float4: v("'Infinity'", 'Infinity'),
    c_float8: v("'Infinity'", 'Infinity'),
    c_date: v("'infinity'", 'infinity'),
    c_timestamp: v("'infinity'", 'infinity'),
    c_timestamptz: v("'infinity'", 'infinity'),
  },
  // NaN, BC dates and times, float extremes near zero.
  7: {
    c_numeric: v("'NaN'", 'NaN'),
    c_numeric_12_2: v("'NaN'", 'NaN'),
    c_float4: v("'NaN'", 'NaN'),
    c_float8: v("'NaN'", 'NaN'),
    c_date: v("'0044-03-15 BC'", '-0043-03-15'),
    c_timestamp: v("'0001-01-01 00:00:00.25 BC'", '0000-01-01T00:00:00.250000'),
    c_timestamptz: v("'0044-03-15 12:00:00.000001+00 BC'", '-0043-03-15T12:00:00.000001Z'),
    c_domain: v("'NaN'", 'NaN'),
  },
  // Float extremes near zero (shortest exact text with extra_float_digits=3).
  8: {
    c_float4: v("'1.17549435e-38'", 1.1754944e-38),
    c_float8: v("'5e-324'", 5e-324),
    c_numeric: v("'0.000000000000000000000000000000000000001'", '0.000000000000000000000000000000000000001'),
  },
};

const STREAM_ID_OFFSET = 100;
const ROW_IDS = Object.keys(ROWS).map(Number);

const cellOf = (id: number, column: Column): Cell => ROWS[id]![column] ?? NULL_CELL;

function insertSql(id: number, asId: number): string {
  const names = ['id', ...COLUMNS.map(([name]) => name)].join(', ');
  const values = [String(asId), ...COLUMNS.map(([name]) => cellOf(id, name).sql)].join(', ');
  return `INSERT INTO t (${names}) VALUES (${values})`;
}

/** The exact JSON text `after` must have for row `id` inserted as `asId`: columns in table order. */
function expectedAfterText(id: number, asId: number): string {
  return `{"id":${asId},${COLUMNS.map(([name]) => `"${name}":${cellOf(id, name).json}`).join(',')}}`;
}

/** The `after` object's own JSON text, cut out of the raw message (string-aware brace matching). */
function rawAfter(value: string): string {
  const prefix = '{"before":null,"after":';
  expect(value.startsWith(prefix)).toBe(true);
  let depth = 0;
  let inString = false;
  for (let i = prefix.length; i < value.length; i++) {
    const ch = value[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') {
      depth--;
      if (depth === 0) return value.slice(prefix.length, i + 1);
    }
  }
  throw new Error('unterminated after object');
}

/** Raw `after` texts by row id, with the op each came with. */
function afterById(messages: ReadMessage[]): Map<number, { op: string; raw: string; parsed: unknown }> {
  const out = new Map<number, { op: string; raw: string; parsed: unknown }>();
  for (const e of events(messages)) {
    const id = e.event.after?.id as number;
    out.set(id, { op: e.event.op, raw: rawAfter(e.value!), parsed: e.event.after });
  }
  return out;
}

/** The enum, the domain and the table `t` with a column per type. */
async function createMatrix(url: string) {
  await withClient(url, async (c) => {
    await c.query(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'so, "so"')`);
    await c.query('CREATE DOMAIN amount AS numeric CHECK (VALUE >= 0)');
    await c.query(
      `CREATE TABLE t (id int PRIMARY KEY, ${COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')})`,
    );
  });
}

async function waitForActiveSlot(url: string, slot: string) {
  await withClient(url, async (c) => {
    for (let i = 0; i < 100; i++) {
      const s = await readSlot(c, slot);
      if (s.active) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

describe('pgoutput source: value types', () => {
  it('a type matrix round-trips exactly into the envelope', async () => {
    await createMatrix(db.url);
    await withClient(db.url, async (c) => {
      for (const id of ROW_IDS) await c.query(insertSql(id, id));
    });
    // Small chunks: the snapshot pages through the rows by key.
    const config = sourceConfig(db.url, ['public.t'], { snapshotChunkRows: 3 });
    const topic = topicOf(config, 't');
    const run = startSource(config, kafka);
    try {
      const snapshot = afterById(await readTopics(kafka, [topic], (m) => m.length >= ROW_IDS.length));
      expect([...snapshot.keys()].sort((a, b) => a - b)).toEqual(ROW_IDS);

      // Streaming: the slot is active, then the same rows again under new ids.
      await waitForActiveSlot(db.url, config.source.slot);
      await withClient(db.url, async (c) => {
        for (const id of ROW_IDS) await c.query(insertSql(id, id + STREAM_ID_OFFSET));
      });
      const all = afterById(await readTopics(kafka, [topic], (m) => m.length >= 2 * ROW_IDS.length));
      expect(all.size).toBe(2 * ROW_IDS.length);

      for (const id of ROW_IDS) {
        const snap = all.get(id)!;
        const streamed = all.get(id + STREAM_ID_OFFSET)!;
        expect(snap.op, `row ${id} snapshot op`).toBe('r');
        expect(streamed.op, `row ${id} streamed op`).toBe('c');

        // Exact text, which also pins json/jsonb as the server's text (no re-serialization, no rounding).
        expect(snap.raw, `row ${id} via the snapshot`).toBe(expectedAfterText(id, id));
        expect(streamed.raw, `row ${id} via streaming`).toBe(expectedAfterText(id, id + STREAM_ID_OFFSET));
        // And the parsed values (JSON.parse of the same text; json numbers beyond 2^53 compare as rounded).
        expect(snap.parsed, `row ${id} parsed via the snapshot`).toEqual(
          JSON.parse(expectedAfterText(id, id)),
        );
        expect(streamed.parsed, `row ${id} parsed via streaming`).toEqual(
          JSON.parse(expectedAfterText(id, id + STREAM_ID_OFFSET)),
        );
        // The same row gives the same `after` on both paths, byte for byte apart from the id.
        expect(streamed.raw.replace(/^\{"id":\d+,/, '')).toBe(snap.raw.replace(/^\{"id":\d+,/, ''));
      }

      // The 20-digit jsonb integer is in the raw text on both paths (JSON.parse would round it).
      for (const id of [1, 1 + STREAM_ID_OFFSET]) {
        expect(all.get(id)!.raw).toContain('"big": 12345678901234567890,');
        expect(all.get(id)!.raw).toContain(
          '"c_json":{"b":1, "a":[1,2],  "a":{"dup":true}},"c_jsonb":{"a": true, "big": 12345678901234567890,',
        );
      }
      for (const id of [4, 4 + STREAM_ID_OFFSET]) {
        expect(all.get(id)!.raw).toContain('"c_jsonb":[12345678901234567890, -0.000000000000000000001, 100,');
      }
      // Spot checks on parsed values.
      expect(all.get(1 + STREAM_ID_OFFSET)!.parsed).toMatchObject({
        c_timestamptz: '2024-02-29T18:29:59.999999Z',
        c_bytea: 'AP8Q',
        c_json: { b: 1, a: { dup: true } },
      });
      expect(all.get(2)!.parsed).toEqual({
        id: 2,
        ...Object.fromEntries(COLUMNS.map(([name]) => [name, null])),
      });
    } finally {
      await run.stop();
      await dropSlot(db.url, config.source.slot);
    }
  });

  it('streams the same matrix exactly when the types are first met in a relation message (snapshot=never)', async () => {
    // A database of its own: the source's type catalog learns the enum, its array and the domain from the stream.
    const own = await freshDatabase('types_stream');
    await createMatrix(own.url);
    const config = sourceConfig(own.url, ['public.t'], { snapshot: 'never' });
    const topic = topicOf(config, 't');
    const run = startSource(config, kafka);
    try {
      await waitForActiveSlot(own.url, config.source.slot);
      await withClient(own.url, async (c) => {
        // All rows in one transaction: the relation message comes once, before the first row.
        await c.query('BEGIN');
        for (const id of ROW_IDS) await c.query(insertSql(id, id));
        await c.query('COMMIT');
      });
      const got = afterById(await readTopics(kafka, [topic], (m) => m.length >= ROW_IDS.length));
      expect([...got.keys()].sort((a, b) => a - b)).toEqual(ROW_IDS);
      for (const id of ROW_IDS) {
        expect(got.get(id)!.op).toBe('c');
        expect(got.get(id)!.raw, `row ${id}`).toBe(expectedAfterText(id, id));
      }
    } finally {
      await run.stop();
      await dropSlot(own.url, config.source.slot);
    }
  });
});
