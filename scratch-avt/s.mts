import { MockClient } from '@confluentinc/schemaregistry';
import { RawJson } from '/work/main/connectors/pgoutput-source/value-decoder.ts';
import { AvroEncoder, decodeAvroValue } from '/work/main/connectors/schema-registry-encoder/avro-encoder.ts';

const client = new MockClient({ baseURLs: ['mock://'] });
const enc = new AvroEncoder({ client });
const shape = {
  schema: 'public',
  table: 'orders',
  topic: 'pg.public.orders',
  keyColumns: ['id'],
  columns: [
    { name: 'id', typeOid: 23 },
    { name: 'doc', typeOid: 3802 },
    { name: 'f', typeOid: 701 },
    { name: 'a-b', typeOid: 1007 },
  ],
};
await enc.prepare(shape);
const row = Object.assign(Object.create(null), {
  id: 1,
  doc: new RawJson('{"n":12345678901234567890}'),
  f: 'NaN',
  'a-b': [1, null, 3],
});
const buf = enc.encode(shape, {
  before: null,
  after: row,
  op: 'c',
  source: {
    connector: 'replicator',
    db: 'd',
    schema: 'public',
    table: 'orders',
    lsn: '0/1',
    commitLsn: '0/2',
    txId: 5,
    commitTs: null,
    ts_ms: null,
    snapshot: false,
    seq: 0,
  },
  ts_ms: 1,
});
console.log(buf);
console.log(await decodeAvroValue(client, buf));
console.log((await client.getLatestSchemaMetadata('pg.public.orders-value')).schema);
