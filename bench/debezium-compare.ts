import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTopics } from '../src/core/kafka-topics.js';
import { kafkaBrokers } from '../src/stack/stack.js';
import { runCaptureWorker, settings, sleep } from './bench-env.js';
import { besideDebezium, DEBEZIUM_VERSION, startDebezium } from './debezium-connect.js';

/**
 * `npm run compare:debezium`: Debezium's PostgreSQL connector (stock settings, JsonConverter without schemas) and
 * this source capture the same changes of a table holding every supported type; prints each field where the two
 * events differ, and writes the table to docs/debezium-comparison.md. Not part of the tests (it needs Debezium's
 * jars and a minute).
 */
const COLUMNS: [string, string, string][] = [
  ['c_bool', 'bool', 'true'],
  ['c_int2', 'int2', '42'],
  ['c_int4', 'int4', '123456'],
  ['c_int8', 'int8', '1234567890123'],
  ['c_numeric', 'numeric', "'3.14159'"],
  ['c_numeric_12_2', 'numeric(12,2)', "'1234.5'"],
  ['c_float4', 'float4', "'0.1'"],
  ['c_float8', 'float8', "'0.30000000000000004'"],
  ['c_text', 'text', String.raw`E'héllo ✓ "q" \\'`],
  ['c_varchar', 'varchar(10)', "'abc'"],
  ['c_char', 'char(3)', "'ab'"],
  ['c_uuid', 'uuid', "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"],
  ['c_date', 'date', "'2024-02-29'"],
  ['c_timestamp', 'timestamp', "'2024-02-29 13:14:15.5'"],
  ['c_timestamptz', 'timestamptz', "'2024-02-29 23:59:59.999999+05:30'"],
  ['c_time', 'time', "'13:14:15.25'"],
  ['c_timetz', 'timetz', "'13:14:15+02'"],
  ['c_interval', 'interval', "'1 day 2 hours'"],
  ['c_json', 'json', `'{"b": 1, "a": [1, 2.50]}'`],
  ['c_jsonb', 'jsonb', `'{"b": 1, "a": [1, 2.50]}'`],
  ['c_bytea', 'bytea', String.raw`'\xdeadbeef'`],
  ['c_int4_arr', 'int4[]', "'{1,2,3}'"],
  ['c_text_arr', 'text[]', `'{"a","b c"}'`],
  ['c_money', 'money', "'12.34'"],
  ['c_enum', 'mood', "'happy'"],
  ['c_domain', 'amount', "'7.50'"],
];

const side = await besideDebezium('compare_debezium');
const { libs, kafka, kafkaAdmin, url, client: c } = side;

/**
 * Why a field differs, by its path: what is different by nature (names, clocks), this source's own fields, and the
 * value encodings it keeps exact where Debezium's defaults need the schema to be read back.
 */
const REASONS: [RegExp, string][] = [
  [
    /^value\.before\./,
    "a delete's old row under REPLICA IDENTITY DEFAULT: PostgreSQL sends the key only, so the other columns are absent (unknown), where Debezium writes null (indistinguishable from NULL)",
  ],
  [/^value\.(ts_ms|ts_us|ts_ns)$/, 'by nature: when each tool processed the change'],
  [/^value\.source\.name$/, 'by nature: the topic prefix each was given'],
  [/^value\.source\.version$/, 'by nature: each tool writes its own version'],
  [
    /^value\.source\.(commitLsn|seq|commitTs|unchangedToast)$/,
    "this source's own field after Debezium's (ordering, TOAST); a Debezium consumer ignores it",
  ],
  [
    /^value\.source\.(origin|origin_lsn)$/,
    "Debezium 3.x's replication-origin fields (null unless origin filtering is used): not written",
  ],
  [
    /^value\.source\.sequence$/,
    'the previous commit LSN: Debezium reads it from its stored offset, this source from the transactions read this session',
  ],
  [
    /\.c_int8$/,
    'int8 as an exact string (a JSON number beyond 2^53 rounds in JavaScript); Debezium: an int64 number',
  ],
  [
    /\.c_money$/,
    'money as the server prints it (lc_monetary: "$12.34"); Debezium: base64 bytes by default, "12.34" with decimal.handling.mode=string',
  ],
  [
    /\.c_(numeric|numeric_12_2|domain)(\.|$)/,
    "decimals as exact strings (Debezium's decimal.handling.mode=string); Debezium's default `precise`: base64 of the unscaled bytes, or {scale, value} for an unconstrained numeric: unreadable without the schema",
  ],
  [/\.c_date$/, 'date as ISO text; Debezium (time.precision.mode=adaptive): days since 1970'],
  [
    /\.c_(timestamp|time)$/,
    'as ISO text; Debezium (time.precision.mode=adaptive): µs since 1970 / since midnight',
  ],
  [/\.c_timetz$/, 'as the server prints it, with its offset; Debezium: normalised to UTC'],
  [
    /\.c_interval$/,
    "ISO 8601 duration (Debezium's interval.handling.mode=string form); Debezium's default `numeric`: µs, months counted as 30.4375 days",
  ],
  [/\.c_jsonb?(\.|$)/, 'json/jsonb embedded as JSON, numbers verbatim; Debezium: the JSON as a string'],
];
const why = (path: string) => REASONS.find(([re]) => re.test(path))?.[1] ?? '(not explained)';

type Flat = Map<string, string>;
/** JSON leaves by path ("value.after.c_int8"), each as its JSON text. */
function flatten(v: unknown, path: string, out: Flat): Flat {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, path ? `${path}.${k}` : k, out);
  } else out.set(path, JSON.stringify(v));
  return out;
}

async function read(topic: string, count: number) {
  const consumer = kafka.consumer({ groupId: `compare-${process.pid}-${topic}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const got: { key: string | null; value: string | null }[] = [];
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push({ key: message.key?.toString() ?? null, value: message.value?.toString() ?? null });
    },
  });
  for (let i = 0; i < 300 && got.length < count; i++) await sleep(100);
  await consumer.disconnect();
  return got;
}

try {
  await c.query("CREATE TYPE mood AS ENUM ('sad', 'happy')");
  await c.query('CREATE DOMAIN amount AS numeric(10,2)');
  await c.query(
    `CREATE TABLE every_type (id int PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')})`,
  );
  await c.query('CREATE PUBLICATION compare_pub FOR TABLE every_type');
  for (const slot of ['compare_dbz', 'compare_src'])
    await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
  // c (every type set), c (every type null), u, d: the ops and the null handling of each type.
  await c.query(
    `INSERT INTO every_type VALUES (1, ${COLUMNS.map(([, , v]) => v).join(', ')}), (2${', NULL'.repeat(COLUMNS.length)})`,
  );
  await c.query("UPDATE every_type SET c_text = 'changed', c_int4 = 7 WHERE id = 1");
  await c.query('DELETE FROM every_type WHERE id = 2');
  const end = (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;

  const dbzPrefix = `cmpdbz${process.pid}`;
  const dbzTopic = `${dbzPrefix}.public.every_type`;
  await ensureTopics(kafkaAdmin, [{ topic: dbzTopic, partitions: 1, replicationFactor: 1 }]);
  const dbz = await startDebezium({
    libs,
    dir: mkdtempSync(join(tmpdir(), 'compare-debezium-')),
    brokers: kafkaBrokers(settings),
    pgUrl: url,
    slot: 'compare_dbz',
    publication: 'compare_pub',
    tables: ['public.every_type'],
    topicPrefix: dbzPrefix,
    // Stock: Debezium's own defaults, not the bench's decimal.handling.mode=string.
    connector: { 'decimal.handling.mode': 'precise' },
  });
  // Four changes and the tombstone Debezium writes after a delete.
  const theirs = await read(dbzTopic, 5).finally(() => dbz.stop());

  const ourPrefix = `cmpours${process.pid}`;
  await runCaptureWorker({
    url,
    slot: 'compare_src',
    publication: 'compare_pub',
    tables: ['public.every_type'],
    topicPrefix: ourPrefix,
    partitions: 1,
    endLsn: end,
    heapMb: 256,
  });
  // The same five: four changes and the delete's tombstone.
  const ours = await read(`${ourPrefix}.public.every_type`, 5);

  const rows: string[][] = [];
  const labels = [
    'insert (every type set)',
    'insert (every type null)',
    'update',
    'delete',
    'after the delete',
  ];
  for (let i = 0; i < Math.max(ours.length, theirs.length); i++) {
    const parse = (m?: { key: string | null; value: string | null }) =>
      m === undefined
        ? new Map([['(no message)', '']])
        : flatten({ key: m.key && JSON.parse(m.key), value: m.value && JSON.parse(m.value) }, '', new Map());
    const a = parse(ours[i]);
    const b = parse(theirs[i]);
    // Field order, of the fields both write: the envelope's and the source block's.
    const order = (m?: { value: string | null }) => {
      const v = m?.value ? (JSON.parse(m.value) as { source?: object }) : undefined;
      return { value: v ? Object.keys(v) : [], source: v?.source ? Object.keys(v.source) : [] };
    };
    const [mine, theirOrder] = [order(ours[i]), order(theirs[i])];
    for (const part of ['value', 'source'] as const) {
      const shared = mine[part].filter((f) => theirOrder[part].includes(f));
      const expected = theirOrder[part].filter((f) => mine[part].includes(f));
      if (shared.join() !== expected.join())
        rows.push([
          labels[i] ?? `message ${i + 1}`,
          `order of ${part}`,
          shared.join(' '),
          expected.join(' '),
          'field order',
        ]);
    }
    for (const path of new Set([...a.keys(), ...b.keys()])) {
      const x = a.get(path) ?? '(absent)';
      const y = b.get(path) ?? '(absent)';
      if (x !== y) rows.push([labels[i] ?? `message ${i + 1}`, `\`${path}\``, x, y, why(path)]);
    }
  }
  const cell = (s: string) => s.replace(/\|/g, '\\|').slice(0, 80);
  const md = [
    `| event | field | this source | Debezium ${DEBEZIUM_VERSION} | why |`,
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
  // The differences by reason, each with the fields it covers (the per-event table follows).
  const byReason = new Map<string, Set<string>>();
  for (const r of rows) {
    const fields = byReason.get(r[4]!) ?? new Set<string>();
    fields.add(r[1]!.replace(/^`value\.(before|after)\.(c_[a-z0-9_]+).*`$/, '`$2`'));
    byReason.set(r[4]!, fields);
  }
  const summary = [...byReason]
    .map(([reason, fields]) => `- ${reason}: ${[...fields].join(', ')}`)
    .join('\n');
  console.log(md);
  const doc = new URL('../docs/debezium-comparison.md', import.meta.url);
  writeFileSync(
    doc,
    `# This source's change events beside Debezium's\n\nGenerated by \`npm run compare:debezium\` (${new Date().toISOString().slice(0, 10)}): the same changes of a table holding every supported type (${COLUMNS.map(([, t]) => t).join(', ')}), captured by Debezium ${DEBEZIUM_VERSION}'s PostgreSQL connector (Kafka Connect standalone, JsonConverter without schemas, otherwise stock) and by this source. Each row is a field whose JSON differs; fields equal in both are not listed. Values are compared after JSON parsing (so \`2.50\` and \`2.5\` inside a json column compare equal). Every field not listed is equal, among them the key, \`op\`, the order of the fields, the source block's \`connector\`, \`db\`, \`schema\`, \`table\`, \`txId\`, \`lsn\`, \`snapshot\`, \`xmin\`, its commit times (\`ts_ms\`, \`ts_us\`, \`ts_ns\`), \`transaction\` and the tombstone after the delete. The *why* column says what remains different and why; README's "Change events on Kafka" has the envelope.\n\n## What remains different, by reason\n\n${summary}\n\n## Field by field\n\n${md}\n`,
  );
  console.log(`\n${rows.length} differing fields; written to docs/debezium-comparison.md`);
} finally {
  await side.close();
}
