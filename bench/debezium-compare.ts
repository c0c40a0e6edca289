import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  await kafkaAdmin.createTopics({ topics: [{ topic: dbzTopic, numPartitions: 1 }], waitForLeaders: true });
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
  const ours = await read(`${ourPrefix}.public.every_type`, 4);

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
    for (const path of new Set([...a.keys(), ...b.keys()])) {
      const x = a.get(path) ?? '(absent)';
      const y = b.get(path) ?? '(absent)';
      if (x !== y) rows.push([labels[i] ?? `message ${i + 1}`, `\`${path}\``, x, y]);
    }
  }
  const cell = (s: string) => s.replace(/\|/g, '\\|').slice(0, 80);
  const md = [
    `| event | field | this source | Debezium ${DEBEZIUM_VERSION} |`,
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
  console.log(md);
  const doc = new URL('../docs/debezium-comparison.md', import.meta.url);
  writeFileSync(
    doc,
    `# This source's change events beside Debezium's\n\nGenerated by \`npm run compare:debezium\` (${new Date().toISOString().slice(0, 10)}): the same changes of a table holding every supported type (${COLUMNS.map(([, t]) => t).join(', ')}), captured by Debezium ${DEBEZIUM_VERSION}'s PostgreSQL connector (Kafka Connect standalone, JsonConverter without schemas, otherwise stock) and by this source. Each row is a field whose JSON differs; fields equal in both are not listed. Values are compared after JSON parsing (so \`2.50\` and \`2.5\` inside a json column compare equal), and positions, times and topic names differ from run to run by nature.\n\n${md}\n`,
  );
  console.log(`\n${rows.length} differing fields; written to docs/debezium-comparison.md`);
} finally {
  await side.close();
}
