import { MockClient } from '@confluentinc/schemaregistry';
import { describe, expect, it, vi } from 'vitest';
import { ChangeBuilder } from '../../../connectors/pgoutput-source/change-builder.js';
import { type Relation, UNCHANGED_TOAST } from '../../../connectors/pgoutput-source/pgoutput-decoder.js';
import {
  AvroEncoder,
  type DecodedAvroEvent,
  decodeAvroValue,
  sanitizeAvroName,
} from '../../../connectors/schema-registry-encoder/avro-encoder.js';
import { type ChangeEvent, type Row, serializeEvent } from '../../../src/contracts/change-event.js';
import type { TableShape } from '../../../src/contracts/event-encoder.js';
import { type EventValue, RawJson, TypeCatalog } from '../../../src/contracts/event-value.js';
import { ErrorCodes, isReplicatorError } from '../../../src/core/errors.js';
import { DEBEZIUM_ENVELOPE_FIELDS } from '../../helpers/debezium-envelope.js';

const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
  int4Array: 1007,
  textArray: 1009,
  float8Array: 1022,
  jsonbArray: 3807,
  /** A user type (an enum, a domain): unknown to the encoder's builtin catalog. */
  custom: 91_234,
  customArray: 91_235,
} as const;

const TOPIC = 'legacy.public.orders';
const SUBJECT = `${TOPIC}-value`;
const BIG = '12345678901234567890';

const columns = [
  { name: 'id', typeOid: OID.int4 },
  { name: 'small', typeOid: OID.int2 },
  { name: 'big', typeOid: OID.int8 },
  { name: 'rel', typeOid: OID.oid },
  { name: 'price', typeOid: OID.numeric },
  { name: 'ratio', typeOid: OID.float8 },
  { name: 'score', typeOid: OID.float4 },
  { name: 'paid', typeOid: OID.bool },
  { name: 'created', typeOid: OID.timestamptz },
  { name: 'uid', typeOid: OID.uuid },
  { name: 'doc', typeOid: OID.jsonb },
  { name: 'meta', typeOid: OID.json },
  { name: 'tags', typeOid: OID.textArray },
  { name: 'counts', typeOid: OID.int4Array },
  { name: 'samples', typeOid: OID.float8Array },
  { name: 'docs', typeOid: OID.jsonbArray },
  { name: 'payload', typeOid: OID.bytea },
  { name: 'note', typeOid: OID.text },
  { name: 'body', typeOid: OID.text },
  { name: 'mood', typeOid: OID.custom },
  { name: 'moods', typeOid: OID.customArray },
  { name: 'order-no', typeOid: OID.text },
  { name: 'order_no', typeOid: OID.text },
  { name: '1st', typeOid: OID.text },
] as const;

const shape = (cols: TableShape['columns'] = columns, topic = TOPIC): TableShape => ({
  schema: 'public',
  table: 'orders',
  topic,
  columns: cols,
  keyColumns: ['id'],
});

/** Rows as the source makes them: no prototype. */
const row = (values: Record<string, EventValue>): Row => Object.assign(Object.create(null) as Row, values);

const fullRow = (): Row =>
  row({
    id: 7,
    small: -3,
    big: '-9223372036854775808',
    rel: 4_294_967_295,
    price: '12345678901234567890.000000000000000001',
    ratio: 'NaN',
    score: 1.5,
    paid: true,
    created: '2024-01-02T03:04:05.123456Z',
    uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    doc: new RawJson(`{"n": ${BIG}, "s": "ü"}`),
    meta: new RawJson('[1, 2.50, null]'),
    tags: ['a', null, 'ü "q"'],
    counts: [1, null, -2_147_483_648],
    samples: [0.1, 'Infinity', null, '-Infinity'],
    docs: [new RawJson(`{"id": ${BIG}}`), null],
    payload: Buffer.from([0, 1, 2, 255]).toString('base64'),
    note: null,
    // body: an unchanged TOAST value, absent from the row
    mood: 'happy',
    moods: ['sad', null],
    'order-no': 'A-1',
    order_no: 'B-2',
    '1st': 'first',
  });

const event = (after: Row | null, overrides: Partial<ChangeEvent> = {}): ChangeEvent => ({
  before: null,
  after,
  source: {
    version: '9.9.9-test',
    connector: 'postgresql',
    name: 'legacy',
    ts_ms: 1_704_164_645_123,
    ts_us: 1_704_164_645_123_456,
    snapshot: 'false',
    db: 'legacydb',
    sequence: '["97500731648","97500731464"]',
    schema: 'public',
    table: 'orders',
    txId: 4_294_967_280,
    lsn: 0x16b374d848n,
    xmin: null,
    origin: null,
    origin_lsn: null,
    commitLsn: '16/B374D900',
    seq: 2,
    commitTs: '2024-01-02T03:04:05.123456Z',
    unchangedToast: ['body'],
  },
  transaction: null,
  op: 'u',
  ts_ms: 1_767_225_600_000,
  ...overrides,
});

const newClient = () => new MockClient({ baseURLs: ['mock://registry'] });

interface AvroFieldJson {
  name: string;
  type: unknown;
  doc?: string;
  default?: unknown;
}

async function latestSchema(client: MockClient, subject = SUBJECT) {
  const meta = await client.getLatestSchemaMetadata(subject);
  const envelope = JSON.parse(meta.schema) as { name: string; namespace: string; fields: AvroFieldJson[] };
  const before = envelope.fields.find((f) => f.name === 'before')!;
  const value = (before.type as [string, { name: string; fields: AvroFieldJson[] }])[1];
  return { meta, envelope, valueFields: value.fields };
}

/** The plain-data view of a decoded event (avsc decodes records into its own classes). */
const plain = (e: DecodedAvroEvent): unknown => JSON.parse(JSON.stringify(e));

describe('sanitizeAvroName', () => {
  it('keeps valid names and rewrites the others deterministically', () => {
    expect(sanitizeAvroName('order_no')).toBe('order_no');
    expect(sanitizeAvroName('_x9')).toBe('_x9');
    expect(sanitizeAvroName('order-no')).toBe('order_no');
    expect(sanitizeAvroName('1st')).toBe('_1st');
    expect(sanitizeAvroName('prix €')).toBe('prix__');
    expect(sanitizeAvroName('Größe')).toBe('Gr__e');
  });
});

describe('AvroEncoder', () => {
  it('round-trips every value kind, with RawJson as its exact text and unchanged TOAST as null', async () => {
    const client = newClient();
    const encoder = new AvroEncoder({ client });
    const s = shape();
    await encoder.prepare(s);
    const before = row({ id: 7 }); // a key-only old image: the other columns are absent
    const out = encoder.encode(s, event(fullRow(), { before }));
    expect(Buffer.isBuffer(out)).toBe(true);

    const decoded = await decodeAvroValue(client, out);
    expect(plain(decoded)).toEqual({
      before: Object.fromEntries(
        [...columns.slice(0, -3).map((c) => c.name), 'order_no', 'order_no_2', '_1st'].map((f) => [
          f,
          f === 'id' ? 7 : null,
        ]),
      ),
      after: {
        id: 7,
        small: -3,
        big: '-9223372036854775808',
        rel: 4_294_967_295,
        price: '12345678901234567890.000000000000000001',
        ratio: 'NaN',
        score: 1.5,
        paid: true,
        created: '2024-01-02T03:04:05.123456Z',
        uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        doc: `{"n": ${BIG}, "s": "ü"}`,
        meta: '[1, 2.50, null]',
        tags: ['a', null, 'ü "q"'],
        counts: [1, null, -2_147_483_648],
        samples: [0.1, 'Infinity', null, '-Infinity'],
        docs: [`{"id": ${BIG}}`, null],
        payload: 'AAEC/w==',
        note: null,
        body: null,
        mood: 'happy',
        moods: '["sad",null]',
        order_no: 'A-1',
        order_no_2: 'B-2',
        _1st: 'first',
      },
      source: { ...event(null).source, lsn: Number(event(null).source.lsn), unchangedToast: ['body'] },
      transaction: null,
      op: 'u',
      ts_ms: 1_767_225_600_000,
      ts_us: 1_767_225_600_000_000,
    });
    // The 20-digit integer inside jsonb is the server's text, not a rounded double.
    expect(decoded.after?.doc).toContain(BIG);
    expect(decoded.after?.docs).toEqual([`{"id": ${BIG}}`, null]);
  });

  it('encodes events without unchangedToast, with nulls in source, and deletes', async () => {
    const client = newClient();
    const encoder = new AvroEncoder({ client });
    const s = shape();
    await encoder.prepare(s);
    const snapshotRow: ChangeEvent = {
      ...event(fullRow(), { op: 'r' }),
      source: {
        ...event(null).source,
        txId: null,
        commitTs: null,
        snapshot: 'last',
        sequence: '[null,"97500731464"]',
        seq: 3_000_000_000,
      },
      transaction: { id: '7:97500731648', total_order: 1, data_collection_order: 1 },
    };
    delete snapshotRow.source.unchangedToast;
    const r = await decodeAvroValue(client, encoder.encode(s, snapshotRow));
    expect(r.source).toMatchObject({
      version: '9.9.9-test',
      connector: 'postgresql',
      name: 'legacy',
      txId: null,
      lsn: 0x16b374d848,
      commitTs: null,
      ts_us: 1_704_164_645_123_456,
      snapshot: 'last',
      sequence: '[null,"97500731464"]',
      xmin: null,
      unchangedToast: null,
    });
    expect(r.transaction).toEqual({ id: '7:97500731648', total_order: 1, data_collection_order: 1 });
    expect(r.ts_us).toBe(1_767_225_600_000_000);
    expect(r.source.seq).toBe(3_000_000_000);
    expect(r.after?.body).toBeNull();

    const d = await decodeAvroValue(client, encoder.encode(s, event(null, { op: 'd', before: fullRow() })));
    expect(d.op).toBe('d');
    expect(d.after).toBeNull();
    expect(d.before?.big).toBe('-9223372036854775808');

    const t = await decodeAvroValue(client, encoder.encode(s, event(null, { op: 't' })));
    expect(t.before).toBeNull();
    expect(t.after).toBeNull();
  });

  it('writes the Confluent wire format: magic byte 0, schema id big-endian, the Avro body', async () => {
    const client = newClient();
    // Another subject first, so this schema's id is not 1 and the id bytes are really checked.
    await client.register('other-value', { schemaType: 'AVRO', schema: '"string"' }, false);
    const encoder = new AvroEncoder({ client });
    const s = shape([{ name: 'id', typeOid: OID.int4 }]);
    await encoder.prepare(s);
    const { id } = await client.getLatestSchemaMetadata(SUBJECT);
    expect(id).toBe(2);
    const out = encoder.encode(s, event(row({ id: 1 })));
    expect(out[0]).toBe(0);
    expect(out.readInt32BE(1)).toBe(id);
    expect([...out.subarray(0, 5)]).toEqual([0, 0, 0, 0, 2]);
    // Then plain Avro binary: before = union branch 0 (null); after = branch 1, its id = branch 1 and zigzag(1);
    // then the source block, Debezium's order: version = length 10 (zigzag 20) and '9'.
    expect([...out.subarray(5, 11)]).toEqual([0x00, 0x02, 0x02, 0x02, 0x14, 0x39]);
  });

  it('registers <namespace>.<schema>.<table>.Envelope under <topic>-value, real names in doc', async () => {
    const client = newClient();
    const encoder = new AvroEncoder({ client, namespace: 'acme.legacy-db' });
    await encoder.prepare(shape());
    expect(await client.getAllSubjects()).toEqual([SUBJECT]);
    const { meta, envelope, valueFields } = await latestSchema(client);
    expect(meta.schemaType).toBe('AVRO');
    expect(`${envelope.namespace}.${envelope.name}`).toBe('acme.legacy_db.public.orders.Envelope');
    // Debezium's envelope, without ts_ns (beyond 2^53: avsc's long refuses it as a JS number).
    expect(envelope.fields.map((f) => f.name)).toEqual(DEBEZIUM_ENVELOPE_FIELDS.filter((f) => f !== 'ts_ns'));
    const byName = new Map(valueFields.map((f) => [f.name, f]));
    expect(byName.get('order_no')).toMatchObject({ doc: 'order-no' });
    expect(byName.get('order_no_2')).toMatchObject({ doc: 'order_no' });
    expect(byName.get('_1st')).toMatchObject({ doc: '1st' });
    expect(byName.get('id')).not.toHaveProperty('doc');
    expect(byName.get('id')).toMatchObject({ type: ['null', 'int'], default: null });
    expect(byName.get('big')?.type).toEqual(['null', 'string']);
    expect(byName.get('ratio')?.type).toEqual(['null', 'double', 'string']);
    expect(byName.get('counts')?.type).toEqual(['null', { type: 'array', items: ['null', 'int'] }]);
    expect(byName.get('samples')?.type).toEqual([
      'null',
      { type: 'array', items: ['null', 'double', 'string'] },
    ]);
    expect(byName.get('doc')?.type).toEqual(['null', 'string']);
  });

  it('registers a shape once, however often and concurrently it is prepared', async () => {
    const client = newClient();
    const register = vi.spyOn(client, 'register');
    const encoder = new AvroEncoder({ client });
    const s = shape();
    await Promise.all([encoder.prepare(s), encoder.prepare(s), encoder.prepare(shape())]);
    await encoder.prepare(shape()); // a re-announced relation: equal shape, new object
    expect(register).toHaveBeenCalledTimes(1);
    expect(await client.getAllVersions(SUBJECT)).toEqual([1]);
  });

  it('an added column gives version 2 under the same subject, and events of both shapes decode', async () => {
    const client = newClient();
    const encoder = new AvroEncoder({ client });
    const v1 = shape([
      { name: 'id', typeOid: OID.int4 },
      { name: 'note', typeOid: OID.text },
    ]);
    const v2 = shape([...v1.columns, { name: 'added', typeOid: OID.numeric }]);
    await encoder.prepare(v1);
    const old = encoder.encode(v1, event(row({ id: 1, note: 'old' })));
    await encoder.prepare(v2);
    const added = encoder.encode(v2, event(row({ id: 2, note: 'new', added: '1.50' })));
    // An event of the old shape still in flight keeps its own schema id.
    const late = encoder.encode(v1, event(row({ id: 3, note: 'late' })));

    expect(await client.getAllSubjects()).toEqual([SUBJECT]);
    expect(await client.getAllVersions(SUBJECT)).toEqual([1, 2]);
    const [m1, m2] = await Promise.all([
      client.getSchemaMetadata(SUBJECT, 1),
      client.getSchemaMetadata(SUBJECT, 2),
    ]);
    expect(old.readInt32BE(1)).toBe(m1.id);
    expect(late.readInt32BE(1)).toBe(m1.id);
    expect(added.readInt32BE(1)).toBe(m2.id);
    expect(m2.id).not.toBe(m1.id);

    expect(plain(await decodeAvroValue(client, old))).toMatchObject({ after: { id: 1, note: 'old' } });
    expect(plain(await decodeAvroValue(client, added))).toMatchObject({
      after: { id: 2, note: 'new', added: '1.50' },
    });
    expect(plain(await decodeAvroValue(client, late))).toMatchObject({ after: { id: 3, note: 'late' } });
    const { valueFields } = await latestSchema(client);
    expect(valueFields.at(-1)).toEqual({ name: 'added', type: ['null', 'string'], default: null });
  });

  it('works behind ChangeBuilder: the shape it prepares is the one it encodes with', async () => {
    const client = newClient();
    const encoder = new AvroEncoder({ client });
    const b = new ChangeBuilder({
      topicPrefix: 'legacy',
      database: 'legacydb',
      version: '9.9.9-test',
      catalog: new TypeCatalog(),
      partitionsOf: () => 1,
      encoder,
      now: () => 1,
    });
    const relation: Relation = {
      relationOid: 16_384,
      schema: 'public',
      name: 'orders',
      replicaIdentity: 'default',
      columns: [
        { name: 'id', typeOid: OID.int8, typeMod: -1, isKey: true },
        { name: 'doc', typeOid: OID.jsonb, typeMod: -1, isKey: false },
        { name: 'body', typeOid: OID.text, typeMod: -1, isKey: false },
      ],
    };
    await encoder.prepare(b.addRelation(relation, ['id']));
    const { messages } = b.build(
      {
        tag: 'update',
        relation,
        key: null,
        old: null,
        new: { id: BIG.slice(1), doc: `{"n":${BIG}}`, body: UNCHANGED_TOAST },
      },
      0x100n,
    );
    const m = messages[0]!;
    expect(m.key).toBe(`{"id":"${BIG.slice(1)}"}`);
    const e = await decodeAvroValue(client, m.value as Buffer);
    expect(plain(e)).toMatchObject({
      after: { id: BIG.slice(1), doc: `{"n":${BIG}}`, body: null },
      op: 'u',
      source: {
        unchangedToast: ['body'],
        lsn: 0x100,
        commitLsn: '0/100',
        snapshot: 'false',
        connector: 'postgresql',
      },
    });
  });

  it('refuses to encode a shape that was never prepared', () => {
    const encoder = new AvroEncoder({ client: newClient() });
    let caught: unknown;
    try {
      encoder.encode(shape(), event(fullRow()));
    } catch (e) {
      caught = e;
    }
    expect(isReplicatorError(caught, ErrorCodes.SCHEMA_REGISTRY_FAILED)).toBe(true);
  });

  it('names the column when a value does not fit (a multi-dimensional array)', async () => {
    const encoder = new AvroEncoder({ client: newClient() });
    const s = shape([
      { name: 'id', typeOid: OID.int4 },
      { name: 'grid', typeOid: OID.int4Array },
    ]);
    await encoder.prepare(s);
    let caught: unknown;
    try {
      encoder.encode(
        s,
        event(
          row({
            id: 1,
            grid: [
              [1, 2],
              [3, 4],
            ],
          }),
        ),
      );
    } catch (e) {
      caught = e;
    }
    expect(isReplicatorError(caught, ErrorCodes.VALUE_DECODE_FAILED)).toBe(true);
    expect((caught as Error).message).toContain('column "grid"');
    expect((caught as Error).message).toContain('multi-dimensional');
    expect((caught as Error).message).not.toContain('[1');
  });

  it('turns registry failures into SCHEMA_REGISTRY_FAILED: refusals final, outages retryable', async () => {
    const client = newClient();
    const encoder = new AvroEncoder({ client });
    const refused = Object.assign(new Error('Schema being registered is incompatible'), { status: 409 });
    const down = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const register = vi.spyOn(client, 'register').mockRejectedValueOnce(refused).mockRejectedValueOnce(down);

    const first = await encoder.prepare(shape()).catch((e: unknown) => e);
    expect(isReplicatorError(first, ErrorCodes.SCHEMA_REGISTRY_FAILED)).toBe(true);
    expect(first).toMatchObject({ retryable: false, details: { subject: SUBJECT, status: 409 } });
    const second = await encoder.prepare(shape()).catch((e: unknown) => e);
    expect(second).toMatchObject({ code: ErrorCodes.SCHEMA_REGISTRY_FAILED, retryable: true });
    // Failures are not cached: the next prepare registers.
    await encoder.prepare(shape());
    expect(register).toHaveBeenCalledTimes(3);
  });

  it('decodeAvroValue rejects what is not the Confluent wire format', async () => {
    const client = newClient();
    for (const bad of [Buffer.from('{"json":true}'), Buffer.from([0, 0, 0])]) {
      await expect(decodeAvroValue(client, bad)).rejects.toMatchObject({
        code: ErrorCodes.SCHEMA_REGISTRY_FAILED,
      });
    }
    await expect(decodeAvroValue(client, Buffer.from([0, 0, 0, 0, 42, 0]))).rejects.toMatchObject({
      code: ErrorCodes.SCHEMA_REGISTRY_FAILED,
      details: { schemaId: 42, status: 404 },
    });
  });

  it('micro-benchmark: encode() throughput over 100k events (printed, not asserted)', async () => {
    const client = newClient();
    const encoder = new AvroEncoder({ client });
    // A typical row: no renamed columns, so rows go to avsc as they are.
    const plainShape = shape([
      { name: 'id', typeOid: OID.int4 },
      { name: 'big', typeOid: OID.int8 },
      { name: 'price', typeOid: OID.numeric },
      { name: 'ratio', typeOid: OID.float8 },
      { name: 'created', typeOid: OID.timestamptz },
      { name: 'note', typeOid: OID.text },
      { name: 'paid', typeOid: OID.bool },
      { name: 'tags', typeOid: OID.textArray },
    ]);
    // The full matrix: jsonb and renamed columns need a converted copy of each row.
    const fullShape = shape(columns, 'legacy.public.full');
    await encoder.prepare(plainShape);
    await encoder.prepare(fullShape);
    const N = 100_000;
    const plainEvents = Array.from({ length: 1000 }, (_, i) =>
      event(
        row({
          id: i,
          big: String(9_000_000_000 + i),
          price: `${i}.25`,
          ratio: i / 7,
          created: '2024-01-02T03:04:05.123456Z',
          note: `note number ${i}`,
          paid: i % 2 === 0,
          tags: ['a', 'b', null],
        }),
        { source: { ...event(null).source, seq: i } },
      ),
    );
    const fullEvents = Array.from({ length: 1000 }, () => event(fullRow()));
    const bench = (label: string, fn: (i: number) => unknown) => {
      for (let i = 0; i < 10_000; i++) fn(i); // warm-up
      let bytes = 0;
      const start = process.hrtime.bigint();
      for (let i = 0; i < N; i++) bytes += (fn(i) as Buffer | string).length;
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      console.log(
        `[bench] ${label}: ${Math.round(N / (ms / 1000)).toLocaleString('en')} events/s (${ms.toFixed(0)} ms, ` +
          `${Math.round(bytes / N)} B/event)`,
      );
    };
    bench('avro encode, 8 columns', (i) => encoder.encode(plainShape, plainEvents[i % 1000]!));
    bench('json serializeEvent, same 8 columns', (i) => serializeEvent(plainEvents[i % 1000]!));
    bench(`avro encode, ${columns.length} columns incl. jsonb/arrays/renamed`, (i) =>
      encoder.encode(fullShape, fullEvents[i % 1000]!),
    );
    bench(`json serializeEvent, same ${columns.length} columns`, (i) =>
      serializeEvent(fullEvents[i % 1000]!),
    );
    expect(true).toBe(true);
  });
});
