import type { Client } from '@confluentinc/schemaregistry';
import avro, { type Type } from 'avsc';
import type { ChangeEvent, Row } from '../../src/contracts/change-event.js';
import type { EventEncoder, TableShape } from '../../src/contracts/event-encoder.js';
import { type EventValue, RawJson, TypeCatalog } from '../../src/contracts/event-value.js';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';

/**
 * Avro values with a Confluent Schema Registry. The schema mirrors the JSON envelope (envelope.ts) field for
 * field, with every value the same text or number the JSON path writes; `prepare` registers it under
 * `<topic>-value` and `encode` writes the Confluent wire format (magic 0, big-endian schema id, Avro body) with
 * a compiled avsc type, never touching the registry on the hot path.
 *
 * Subject compatibility is left to the registry (its default is BACKWARD): every value field is optional with
 * default null, so adding or dropping a column passes BACKWARD, FORWARD and FULL alike, while a changed column
 * type is refused (409, not retried). That refusal is a decision for an operator (a new topic, or NONE for the
 * subject), which forcing a level from here would take away.
 */

type AvscSchema = Parameters<typeof avro.Type.forSchema>[0];

type AvroPrimitive = 'null' | 'boolean' | 'int' | 'long' | 'double' | 'string';
interface AvroField {
  name: string;
  type: AvroType;
  default?: null;
  doc?: string;
}
interface AvroRecord {
  type: 'record';
  name: string;
  namespace?: string;
  fields: AvroField[];
}
interface AvroArray {
  type: 'array';
  items: AvroType;
}
/** A union's branches; Avro forbids a union directly inside another, so branch lists are flattened. */
type AvroBranch = AvroPrimitive | AvroRecord | AvroArray | string;
type AvroType = AvroBranch | AvroBranch[];

/** A value as decodeAvroValue returns it: RawJson became its text, absent columns null. */
export type AvroValue = null | boolean | number | string | AvroValue[];

export interface DecodedAvroEvent {
  before: Record<string, AvroValue> | null;
  after: Record<string, AvroValue> | null;
  source: {
    version: string;
    connector: string;
    name: string;
    ts_ms: number;
    snapshot: string;
    db: string;
    sequence: string | null;
    ts_us: number;
    schema: string;
    table: string;
    txId: number | null;
    lsn: number | null;
    xmin: number | null;
    origin: string | null;
    origin_lsn: number | null;
    commitLsn: string;
    seq: number;
    commitTs: string | null;
    unchangedToast: string[] | null;
  };
  transaction: { id: string; total_order: number; data_collection_order: number } | null;
  op: string;
  ts_ms: number;
  ts_us: number;
}

export interface AvroEncoderOptions {
  client: Client;
  /** First part of every record's full name: `<namespace>.<schema>.<table>.Envelope`. Default 'replicator'. */
  namespace?: string;
}

type Convert = (v: EventValue) => EventValue;

interface ColumnMapping {
  /** Non-null branches; the field is their union with null. */
  branches: AvroBranch[];
  /** Only where the decoded value is not already what Avro takes (RawJson, unknown types). */
  convert: Convert | undefined;
}

interface ColumnPlan {
  name: string;
  field: string;
  convert: Convert | undefined;
}

interface Prepared {
  subject: string;
  id: number;
  type: Type;
  /** Magic byte and schema id, copied in front of every body. */
  header: Buffer;
  columns: readonly ColumnPlan[];
  /** Undefined when rows can go to avsc as they are (no renamed field, nothing to convert): the common case. */
  adapt: ((row: Row) => Row) | undefined;
}

/** Builtin types only (OIDs are fixed across versions); the source's catalog with user types is per session. */
const BUILTINS = new TypeCatalog();

const OID = {
  bool: 16,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  jsonb: 3802,
} as const;

const AVRO_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Invalid characters become '_', a leading digit gets a '_' prefix: deterministic, so versions keep names. */
export function sanitizeAvroName(name: string): string {
  if (AVRO_NAME.test(name)) return name;
  const replaced = name.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[0-9]/.test(replaced) || replaced === '' ? `_${replaced}` : replaced;
}

/** JSON text of a value of a type unknown here (a domain, an enum array): exact, as the JSON path writes it. */
function jsonText(v: EventValue): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v instanceof RawJson) return v.text;
  return `[${v.map(jsonText).join(',')}]`;
}

const rawJsonText: Convert = (v) => (v instanceof RawJson ? v.text : v);

/** Unknown types are strings in the schema, but a domain over int4 or an enum array decodes to non-strings. */
const anyAsText: Convert = (v) => {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return v instanceof RawJson ? v.text : jsonText(v);
};

function mapArray(element: Convert): Convert {
  return (v) => (Array.isArray(v) ? v.map((e) => (e === null ? null : element(e))) : v);
}

function columnMapping(typeOid: number): ColumnMapping {
  switch (typeOid) {
    case OID.bool:
      return { branches: ['boolean'], convert: undefined };
    case OID.int2:
    case OID.int4:
      return { branches: ['int'], convert: undefined };
    case OID.oid:
      // Unsigned 32-bit: beyond int.
      return { branches: ['long'], convert: undefined };
    case OID.float4:
    case OID.float8:
      // NaN and ±Infinity stay the server's words, as in the JSON path.
      return { branches: ['double', 'string'], convert: undefined };
    case OID.json:
    case OID.jsonb:
      return { branches: ['string'], convert: rawJsonText };
  }
  const info = BUILTINS.get(typeOid);
  if (info === undefined) return { branches: ['string'], convert: anyAsText };
  if (info.kind === 'array' && info.elementOid !== undefined) {
    const element = columnMapping(info.elementOid);
    return {
      branches: [{ type: 'array', items: ['null', ...element.branches] }],
      convert: element.convert === undefined ? undefined : mapArray(element.convert),
    };
  }
  // int8 and numeric stay exact strings; dates, times, uuid, bytea (base64) and the rest are their text.
  return { branches: ['string'], convert: undefined };
}

function nullable(branches: AvroBranch[]): AvroField['type'] {
  return ['null', ...branches];
}

/** Named in column order; a clash after sanitizing gets _2, _3…, so appended columns never rename old ones. */
function fieldNames(columns: TableShape['columns']): string[] {
  const taken = new Set<string>();
  return columns.map((c) => {
    const base = sanitizeAvroName(c.name);
    let field = base;
    for (let n = 2; taken.has(field); n++) field = `${base}_${n}`;
    taken.add(field);
    return field;
  });
}

function qualifiedNamespace(namespace: string, shape: TableShape): string {
  const parts = [...namespace.split('.'), shape.schema, shape.table];
  return parts.map(sanitizeAvroName).join('.');
}

/** The value schema of one table shape, and how each column becomes its field. */
export function avroSchemaFor(
  shape: TableShape,
  namespace = 'replicator',
): { schema: AvroRecord; columns: ColumnPlan[] } {
  const names = fieldNames(shape.columns);
  const columns: ColumnPlan[] = [];
  const valueFields: AvroField[] = shape.columns.map((c, i) => {
    const mapping = columnMapping(c.typeOid);
    const field = names[i]!;
    columns.push({ name: c.name, field, convert: mapping.convert });
    // Default null: an added column stays backward and forward compatible; the doc keeps the real name.
    return {
      name: field,
      type: nullable(mapping.branches),
      default: null,
      ...(field === c.name ? {} : { doc: c.name }),
    };
  });
  const source: AvroRecord = {
    type: 'record',
    name: 'Source',
    // Debezium's PostgreSQL source fields in its order (ts_ns left out: beyond 2^53, which avsc's long refuses as
    // a JS number), then this replicator's own.
    fields: [
      { name: 'version', type: 'string' },
      { name: 'connector', type: 'string' },
      { name: 'name', type: 'string' },
      { name: 'ts_ms', type: 'long' },
      { name: 'snapshot', type: 'string' },
      { name: 'db', type: 'string' },
      { name: 'sequence', type: ['null', 'string'], default: null },
      { name: 'ts_us', type: ['null', 'long'], default: null },
      { name: 'schema', type: 'string' },
      { name: 'table', type: 'string' },
      { name: 'txId', type: ['null', 'long'], default: null },
      { name: 'lsn', type: ['null', 'long'], default: null },
      { name: 'xmin', type: ['null', 'long'], default: null },
      { name: 'origin', type: ['null', 'string'], default: null },
      { name: 'origin_lsn', type: ['null', 'long'], default: null },
      { name: 'commitLsn', type: 'string' },
      // long, not int: a snapshot of a table with more than 2^31 rows numbers them all; same size on the wire.
      { name: 'seq', type: 'long' },
      { name: 'commitTs', type: ['null', 'string'], default: null },
      { name: 'unchangedToast', type: ['null', { type: 'array', items: 'string' }], default: null },
    ],
  };
  const transaction: AvroRecord = {
    type: 'record',
    name: 'Transaction',
    fields: [
      { name: 'id', type: 'string' },
      { name: 'total_order', type: 'long' },
      { name: 'data_collection_order', type: 'long' },
    ],
  };
  const schema: AvroRecord = {
    type: 'record',
    name: 'Envelope',
    namespace: qualifiedNamespace(namespace, shape),
    fields: [
      {
        name: 'before',
        type: ['null', { type: 'record', name: 'Value', fields: valueFields }],
        default: null,
      },
      { name: 'after', type: ['null', 'Value'], default: null },
      { name: 'source', type: source },
      { name: 'transaction', type: ['null', transaction], default: null },
      { name: 'op', type: 'string' },
      { name: 'ts_ms', type: 'long' },
      { name: 'ts_us', type: ['null', 'long'], default: null },
    ],
  };
  return { schema, columns };
}

/**
 * Row → Value record for shapes that rename or convert. Generated code, as avsc generates its own writers: an
 * object literal with fixed keys is several times faster than filling an object in a loop. Names enter only as
 * JSON.stringify'd literals; computed keys keep a column named __proto__ an own property. An absent column
 * stays undefined, which avsc writes as the field's default, null (unchanged TOAST, a key-only before image).
 */
function adapter(columns: readonly ColumnPlan[]): ((row: Row) => Row) | undefined {
  if (columns.every((c) => c.field === c.name && c.convert === undefined)) return undefined;
  const props = columns.map((c, i) => {
    const read = `r[${JSON.stringify(c.name)}]`;
    const value = c.convert === undefined ? read : `(v = ${read}) == null ? v : c[${i}](v)`;
    return `[${JSON.stringify(c.field)}]: ${value}`;
  });
  const make = new Function('c', `return (r) => { let v; return { ${props.join(', ')} }; };`);
  return make(columns.map((c) => c.convert)) as (row: Row) => Row;
}

/** 4xx other than timeouts and throttling means the registry refused this schema: retrying cannot help. */
function registryFailed(what: string, details: Record<string, unknown>, e: unknown): ReplicatorError {
  const status = (e as { status?: unknown } | null)?.status;
  const refused =
    typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429;
  const why = e instanceof Error ? e.message : String(e);
  return new ReplicatorError(ErrorCodes.SCHEMA_REGISTRY_FAILED, `${what}: ${why}`, {
    cause: e,
    retryable: !refused,
    details: { ...details, ...(typeof status === 'number' ? { status } : {}) },
  });
}

/** Fresh per call: avsc keeps its registry of named types in the options object, so sharing one would clash. */
const avscOptions = () => ({ wrapUnions: false });

export class AvroEncoder implements EventEncoder {
  readonly #client: Client;
  readonly #namespace: string;
  /** Hot-path lookup: the shape objects the source passes to prepare and then to encode. */
  readonly #byShape = new WeakMap<TableShape, Prepared>();
  /** By topic and schema text: a re-announced relation (reconnect) with the same shape registers nothing new. */
  readonly #bySchema = new Map<string, Promise<Prepared>>();
  readonly #ready = new Map<string, Prepared>();
  /** Reused for every body, then copied out once at its exact size. */
  #scratch = Buffer.allocUnsafe(64 * 1024);

  constructor(options: AvroEncoderOptions) {
    this.#client = options.client;
    this.#namespace = options.namespace ?? 'replicator';
  }

  async prepare(shape: TableShape): Promise<void> {
    if (this.#byShape.has(shape)) return;
    const { schema, columns } = avroSchemaFor(shape, this.#namespace);
    const text = JSON.stringify(schema);
    const key = `${shape.topic}\n${text}`;
    let pending = this.#bySchema.get(key);
    if (pending === undefined) {
      pending = this.#register(shape.topic, schema, text, columns);
      this.#bySchema.set(key, pending);
      // A failed registration must be retried by the next prepare, not remembered.
      pending.catch(() => this.#bySchema.delete(key));
    }
    const prepared = await pending;
    this.#ready.set(key, prepared);
    this.#byShape.set(shape, prepared);
  }

  encode(shape: TableShape, event: ChangeEvent): Buffer {
    const p = this.#byShape.get(shape) ?? this.#unprepared(shape);
    const { adapt } = p;
    const record = {
      before: event.before === null || adapt === undefined ? event.before : adapt(event.before),
      after: event.after === null || adapt === undefined ? event.after : adapt(event.after),
      // lsn as a JS number (exact below 2^53 bytes of WAL), which avsc's long takes.
      source: { ...event.source, lsn: Number(event.source.lsn) },
      transaction: event.transaction,
      op: event.op,
      ts_ms: event.ts_ms,
      ts_us: event.ts_ms * 1000,
    };
    let end: number;
    try {
      end = p.type.encode(record, this.#scratch, 5);
      if (end < 0) {
        // encode returns minus the bytes missing; grow with headroom so large rows do not resize every time.
        this.#scratch = Buffer.allocUnsafe((this.#scratch.length - end) * 2);
        end = p.type.encode(record, this.#scratch, 5);
      }
    } catch (e) {
      throw encodeFailed(shape, p, record, e);
    }
    const out = Buffer.allocUnsafe(end);
    p.header.copy(out, 0);
    this.#scratch.copy(out, 5, 5, end);
    return out;
  }

  async #register(topic: string, schema: AvroRecord, text: string, columns: ColumnPlan[]): Promise<Prepared> {
    const subject = `${topic}-value`;
    let type: Type;
    try {
      // Compiled before registering: a schema avsc rejects must not reach the registry.
      type = avro.Type.forSchema(schema, avscOptions());
    } catch (e) {
      throw new ReplicatorError(ErrorCodes.SCHEMA_REGISTRY_FAILED, `invalid Avro schema for ${subject}`, {
        cause: e,
        retryable: false,
        details: { subject },
      });
    }
    let id: number;
    try {
      id = await this.#client.register(subject, { schemaType: 'AVRO', schema: text }, false);
    } catch (e) {
      throw registryFailed(`cannot register the Avro schema for subject ${subject}`, { subject }, e);
    }
    const header = Buffer.alloc(5);
    header.writeInt32BE(id, 1);
    return { subject, id, type, header, columns, adapt: adapter(columns) };
  }

  /** A shape equal to a prepared one but another object (a caller rebuilt it): found once, then remembered. */
  #unprepared(shape: TableShape): Prepared {
    const p = this.#ready.get(
      `${shape.topic}\n${JSON.stringify(avroSchemaFor(shape, this.#namespace).schema)}`,
    );
    if (p === undefined) {
      throw new ReplicatorError(
        ErrorCodes.SCHEMA_REGISTRY_FAILED,
        `encode before prepare for ${shape.schema}.${shape.table}`,
        { retryable: false, details: { topic: shape.topic } },
      );
    }
    this.#byShape.set(shape, p);
    return p;
  }
}

/** Names the column whose value does not fit; the value stays out of the message (it may be personal data). */
function encodeFailed(shape: TableShape, p: Prepared, record: unknown, cause: unknown): ReplicatorError {
  let path: string[] = [];
  p.type.isValid(record, {
    errorHook: (at) => {
      if (path.length === 0) path = at;
    },
  });
  const field = path[0] === 'before' || path[0] === 'after' ? path[1] : undefined;
  const column = p.columns.find((c) => c.field === field)?.name;
  const where = column === undefined ? path.join('.') || 'the envelope' : `column ${JSON.stringify(column)}`;
  // The schema is one-dimensional per PostgreSQL array type; pgoutput cannot tell us a column holds more.
  const hint = path.length > 2 ? ' (a multi-dimensional array: only one dimension maps to Avro)' : '';
  return new ReplicatorError(
    ErrorCodes.VALUE_DECODE_FAILED,
    `cannot encode ${shape.schema}.${shape.table} as Avro (${p.subject}): ${where} does not fit${hint}`,
    { cause, retryable: false, details: { subject: p.subject, path } },
  );
}

const readers = new WeakMap<Client, Map<number, Promise<Type>>>();

function readerFor(client: Client, id: number): Promise<Type> {
  let byId = readers.get(client);
  if (byId === undefined) {
    byId = new Map();
    readers.set(client, byId);
  }
  let reader = byId.get(id);
  if (reader === undefined) {
    reader = client.getBySubjectAndId('', id).then(
      (info) => {
        try {
          if (info.schemaType !== undefined && info.schemaType !== 'AVRO') {
            throw new Error(`it is ${info.schemaType}`);
          }
          return avro.Type.forSchema(JSON.parse(info.schema) as AvscSchema, avscOptions());
        } catch (e) {
          throw new ReplicatorError(ErrorCodes.SCHEMA_REGISTRY_FAILED, `schema id ${id} is not usable Avro`, {
            cause: e,
            retryable: false,
            details: { schemaId: id },
          });
        }
      },
      (e: unknown) => {
        throw registryFailed(`cannot read Avro schema id ${id}`, { schemaId: id }, e);
      },
    );
    const cache = byId;
    cache.set(id, reader);
    reader.catch(() => cache.delete(id));
  }
  return reader;
}

/** Decodes one Confluent-framed Avro value with its writer schema (fetched once per id and client). */
export async function decodeAvroValue(client: Client, buffer: Buffer): Promise<DecodedAvroEvent> {
  if (buffer.length < 5 || buffer[0] !== 0) {
    throw new ReplicatorError(ErrorCodes.SCHEMA_REGISTRY_FAILED, 'not a Confluent wire-format value', {
      retryable: false,
    });
  }
  const id = buffer.readInt32BE(1);
  const reader = await readerFor(client, id);
  try {
    return reader.fromBuffer(buffer.subarray(5)) as DecodedAvroEvent;
  } catch (e) {
    throw new ReplicatorError(ErrorCodes.VALUE_DECODE_FAILED, `value does not decode with schema id ${id}`, {
      cause: e,
      details: { schemaId: id },
    });
  }
}
