import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { serializeRow } from '../../../src/contracts/change-event.js';
import { type EventValue, loadTypes, RawJson, TypeCatalog } from '../../../src/contracts/event-value.js';
import { ErrorCodes, isReplicatorError } from '../../../src/core/errors.js';

const catalog = new TypeCatalog();
const decode = (oid: number, text: string): EventValue => catalog.decoder(oid)(text);

function decodeError(oid: number, text: string): unknown {
  try {
    decode(oid, text);
  } catch (e) {
    return e;
  }
  throw new Error(`decoding ${JSON.stringify(text)} as oid ${oid} did not fail`);
}

describe('value decoder: scalars', () => {
  it('decodes bool', () => {
    expect(decode(16, 't')).toBe(true);
    expect(decode(16, 'f')).toBe(false);
  });

  it('decodes int2, int4 and oid to numbers, int8 to an exact string', () => {
    expect(decode(21, '-32768')).toBe(-32768);
    expect(decode(23, '2147483647')).toBe(2147483647);
    expect(decode(26, '4294967295')).toBe(4294967295);
    expect(decode(20, '9223372036854775807')).toBe('9223372036854775807');
    expect(decode(20, '-9223372036854775807')).toBe('-9223372036854775807');
    expect(decode(20, '-9223372036854775808')).toBe('-9223372036854775808');
  });

  it('keeps numeric exact as text, including NaN and infinities', () => {
    const forty = '1234567890123456789012345678901234567890.0123456789';
    expect(decode(1700, forty)).toBe(forty);
    expect(decode(1700, '0.000000000000000000000000000001')).toBe('0.000000000000000000000000000001');
    expect(decode(1700, '-0.50')).toBe('-0.50');
    expect(decode(1700, 'NaN')).toBe('NaN');
    expect(decode(1700, 'Infinity')).toBe('Infinity');
    expect(decode(1700, '-Infinity')).toBe('-Infinity');
  });

  it('decodes floats to numbers and their non-finite values to strings', () => {
    expect(decode(701, '1.5')).toBe(1.5);
    expect(decode(701, '1e+30')).toBe(1e30);
    expect(decode(701, '-1.2345e-05')).toBe(-1.2345e-5);
    expect(decode(701, '0.30000000000000004')).toBe(0.30000000000000004);
    expect(decode(700, '3.4028235e+38')).toBe(3.4028235e38);
    for (const oid of [700, 701]) {
      expect(decode(oid, 'NaN')).toBe('NaN');
      expect(decode(oid, 'Infinity')).toBe('Infinity');
      expect(decode(oid, '-Infinity')).toBe('-Infinity');
    }
  });

  it('keeps text-like types, money and unknown types as the text', () => {
    const cases: Array<[number, string]> = [
      [25, 'héllo "world"\n'],
      [1043, 'varchar'],
      [1042, 'pad   '],
      [19, 'name'],
      [18, 'c'],
      [2950, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
      [142, '<a>b</a>'],
      [869, '192.168.0.1/24'],
      [650, '10.0.0.0/8'],
      [829, '08:00:2b:01:02:03'],
      [790, '$1,234.56'],
      [1083, '23:59:59.999999'],
      [1266, '10:00:00+05:30'],
      [1186, 'P1Y2M3DT4H5M6.5S'],
      [999_999, 'whatever (unknown type)'],
    ];
    for (const [oid, text] of cases) expect(decode(oid, text)).toBe(text);
  });

  it('leaves SQL NULL to callers: a decoder only ever sees text, so the text NULL is a string', () => {
    expect(decode(25, 'NULL')).toBe('NULL');
  });

  it('keeps json and jsonb as RawJson so 20-digit integers survive serialization verbatim', () => {
    const text = '{"big": 12345678901234567890, "neg": -98765432109876543210, "f": 1.10}';
    const value = decode(3802, text);
    expect(value).toBeInstanceOf(RawJson);
    expect((value as RawJson).text).toBe(text);
    expect(decode(114, '[1, 2]')).toEqual(new RawJson('[1, 2]'));
    expect(serializeRow({ doc: value })).toBe(`{"doc":${text}}`);
    expect(serializeRow({ doc: value })).toContain('12345678901234567890');
    // toJSON is only the lossy fallback for plain JSON.stringify.
    expect(JSON.parse(JSON.stringify({ doc: new RawJson('{"a":[1,"x"]}') }))).toEqual({
      doc: { a: [1, 'x'] },
    });
  });

  it('decodes hex bytea to base64', () => {
    expect(decode(17, '\\x0102ff')).toBe('AQL/');
    expect(decode(17, '\\x')).toBe('');
    expect(decode(17, '\\xDEADBEEF')).toBe(Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64'));
  });
});

describe('value decoder: dates and times', () => {
  it('formats timestamptz as UTC with six fractional digits and Z', () => {
    expect(decode(1184, '2024-01-02 03:04:05.123+00')).toBe('2024-01-02T03:04:05.123000Z');
    expect(decode(1184, '2024-01-02 03:04:05+00')).toBe('2024-01-02T03:04:05.000000Z');
    expect(decode(1184, '2024-01-02 03:04:05.000001+00')).toBe('2024-01-02T03:04:05.000001Z');
  });

  it('converts non-zero offsets to UTC, across day, month, year and leap-day boundaries', () => {
    expect(decode(1184, '2024-01-02 03:04:05.5+05:30')).toBe('2024-01-01T21:34:05.500000Z');
    expect(decode(1184, '2024-01-01 01:00:00+05:30')).toBe('2023-12-31T19:30:00.000000Z');
    expect(decode(1184, '2023-12-31 22:00:00-03')).toBe('2024-01-01T01:00:00.000000Z');
    expect(decode(1184, '2024-02-28 23:30:00-01')).toBe('2024-02-29T00:30:00.000000Z');
    expect(decode(1184, '2023-02-28 23:30:00-01')).toBe('2023-03-01T00:30:00.000000Z');
    expect(decode(1184, '2000-03-01 00:00:00+01')).toBe('2000-02-29T23:00:00.000000Z');
    // Historical local mean time offsets carry seconds.
    expect(decode(1184, '1800-01-01 00:00:00+05:53:28')).toBe('1799-12-31T18:06:32.000000Z');
  });

  it('agrees with Date (as an oracle, years 1..9999) on offset conversion', () => {
    const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
    fc.assert(
      fc.property(
        // 0001-01-02 .. 9999-12-30 UTC, so the local time stays within years Date and the decoder share.
        fc.integer({ min: -62_135_596_800_000 + 86_400_000, max: Date.UTC(9999, 11, 30) }),
        fc.integer({ min: -(15 * 60 + 59), max: 15 * 60 + 59 }),
        fc.integer({ min: 0, max: 999_999 }),
        (utcMs, offsetMin, micros) => {
          const offsetSec = offsetMin * 60;
          const utcSec = Math.floor(utcMs / 1000);
          const local = new Date((utcSec + offsetSec) * 1000);
          const abs = Math.abs(offsetSec);
          const offset = `${offsetSec < 0 ? '-' : '+'}${pad(Math.floor(abs / 3600))}:${pad(Math.floor(abs / 60) % 60)}`;
          const text =
            `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())} ` +
            `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}.${pad(micros, 6)}${offset}`;
          const expected = `${new Date(utcSec * 1000).toISOString().slice(0, 19)}.${pad(micros, 6)}Z`;
          expect(decode(1184, text)).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('writes BC and large years as ISO 8601 expanded years', () => {
    expect(decode(1184, '0044-03-15 10:00:00+00 BC')).toBe('-0043-03-15T10:00:00.000000Z');
    expect(decode(1184, '0001-01-01 00:00:00+00 BC')).toBe('0000-01-01T00:00:00.000000Z');
    expect(decode(1184, '0001-01-01 00:30:00+01')).toBe('0000-12-31T23:30:00.000000Z');
    expect(decode(1184, '0001-01-01 00:30:00+01 BC')).toBe('-0001-12-31T23:30:00.000000Z');
    expect(decode(1184, '4713-11-24 00:00:00+00 BC')).toBe('-4712-11-24T00:00:00.000000Z');
    expect(decode(1114, '294276-12-31 23:59:59.999999')).toBe('+294276-12-31T23:59:59.999999');
    expect(decode(1184, '9999-12-31 23:00:00-01')).toBe('+10000-01-01T00:00:00.000000Z');
  });

  it('formats timestamp without zone', () => {
    expect(decode(1114, '2024-01-02 03:04:05.123')).toBe('2024-01-02T03:04:05.123000');
    expect(decode(1114, '2024-01-02 03:04:05')).toBe('2024-01-02T03:04:05.000000');
    expect(decode(1114, '0044-03-15 10:00:00.25 BC')).toBe('-0043-03-15T10:00:00.250000');
  });

  it('keeps infinite timestamps and dates as the words', () => {
    for (const oid of [1114, 1184, 1082]) {
      expect(decode(oid, 'infinity')).toBe('infinity');
      expect(decode(oid, '-infinity')).toBe('-infinity');
    }
  });

  it('keeps dates as sent, BC and large years as expanded years', () => {
    expect(decode(1082, '2024-02-29')).toBe('2024-02-29');
    expect(decode(1082, '0001-01-01 BC')).toBe('0000-01-01');
    expect(decode(1082, '4713-01-01 BC')).toBe('-4712-01-01');
    expect(decode(1082, '5874897-12-31')).toBe('+5874897-12-31');
  });
});

describe('value decoder: arrays', () => {
  it('decodes builtin arrays element by element, NULLs to null', () => {
    expect(decode(1007, '{1,NULL,-3}')).toEqual([1, null, -3]);
    expect(decode(1000, '{t,f,NULL}')).toEqual([true, false, null]);
    expect(decode(1016, '{9223372036854775807,-9223372036854775807}')).toEqual([
      '9223372036854775807',
      '-9223372036854775807',
    ]);
    expect(decode(1231, '{1.50,NaN,-Infinity}')).toEqual(['1.50', 'NaN', '-Infinity']);
    expect(decode(1022, '{1.5,NaN,Infinity}')).toEqual([1.5, 'NaN', 'Infinity']);
    expect(decode(1185, '{"2024-01-02 03:04:05+00","2024-01-02 03:04:05.5+05:30"}')).toEqual([
      '2024-01-02T03:04:05.000000Z',
      '2024-01-01T21:34:05.500000Z',
    ]);
    expect(decode(1115, '{"2024-01-02 03:04:05"}')).toEqual(['2024-01-02T03:04:05.000000']);
    expect(decode(1182, '{2024-01-02,"0044-03-15 BC",infinity}')).toEqual([
      '2024-01-02',
      '-0043-03-15',
      'infinity',
    ]);
    expect(decode(1001, '{"\\\\x0102ff","\\\\x",NULL}')).toEqual(['AQL/', '', null]);
    expect(decode(2951, '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}')).toEqual([
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    ]);
    expect(decode(1009, '{}')).toEqual([]);
  });

  it('unquotes text elements with commas, quotes, backslashes, braces and the word NULL', () => {
    // As PostgreSQL prints ARRAY['a,b', 'say "hi"', 'back\slash', '{x}', 'NULL', '', NULL]::text[]
    const literal = '{"a,b","say \\"hi\\"","back\\\\slash","{x}","NULL","",NULL}';
    expect(decode(1009, literal)).toEqual(['a,b', 'say "hi"', 'back\\slash', '{x}', 'NULL', '', null]);
    expect(decode(1015, '{plain,"with space"}')).toEqual(['plain', 'with space']);
  });

  it('keeps json elements as RawJson', () => {
    const value = decode(3807, '{"{\\"n\\": 12345678901234567890}",NULL}') as EventValue[];
    expect(value[0]).toEqual(new RawJson('{"n": 12345678901234567890}'));
    expect(value[1]).toBeNull();
    expect(serializeRow({ a: value })).toBe('{"a":[{"n": 12345678901234567890},null]}');
  });

  it('keeps 2-D arrays nested, and ignores explicit bounds', () => {
    expect(decode(1007, '{{1,2},{3,NULL}}')).toEqual([
      [1, 2],
      [3, null],
    ]);
    expect(decode(1009, '{{"a}b","c\\"d"},{"e,f",NULL}}')).toEqual([
      ['a}b', 'c"d'],
      ['e,f', null],
    ]);
    expect(decode(1007, '[0:1]={1,2}')).toEqual([1, 2]);
  });

  it('decodes arrays of an enum added to the catalog', () => {
    const c = new TypeCatalog();
    expect(c.decoder(90_001)('{a,b}')).toBe('{a,b}');
    c.add({ oid: 90_000, name: 'mood', kind: 'enum', delimiter: ',' });
    c.add({ oid: 90_001, name: '_mood', kind: 'array', elementOid: 90_000, delimiter: ',' });
    // add() drops decoders cached while the type was unknown.
    expect(c.decoder(90_001)('{a,b,NULL,"c d"}')).toEqual(['a', 'b', null, 'c d']);
    expect(c.decoder(90_000)('happy')).toBe('happy');
  });

  it('decodes domains and arrays of domains with the base type', () => {
    const c = new TypeCatalog();
    c.add({ oid: 90_010, name: 'money_amount', kind: 'domain', baseOid: 1700 });
    c.add({ oid: 90_011, name: '_money_amount', kind: 'array', elementOid: 90_010 });
    c.add({ oid: 90_012, name: 'positive_amount', kind: 'domain', baseOid: 90_010 });
    c.add({ oid: 90_013, name: 'int_list', kind: 'domain', baseOid: 1007 });
    expect(c.decoder(90_010)('12.30')).toBe('12.30');
    expect(c.decoder(90_011)('{12.30,NULL}')).toEqual(['12.30', null]);
    expect(c.decoder(90_012)('0.01')).toBe('0.01');
    expect(c.decoder(90_013)('{1,2}')).toEqual([1, 2]);
  });

  it('keeps composites, ranges and arrays of ;-delimited types as text', () => {
    const c = new TypeCatalog();
    c.add({ oid: 90_020, name: 'pair', kind: 'composite' });
    c.add({ oid: 90_021, name: '_pair', kind: 'array', elementOid: 90_020, delimiter: ',' });
    c.add({ oid: 3904, name: 'int4range', kind: 'range' });
    c.add({ oid: 603, name: 'box', kind: 'base', delimiter: ';' });
    c.add({ oid: 1020, name: '_box', kind: 'array', elementOid: 603, delimiter: ';' });
    expect(c.decoder(90_020)('(1,"a b")')).toBe('(1,"a b")');
    expect(c.decoder(90_021)('{"(1,x)",NULL}')).toEqual(['(1,x)', null]);
    expect(c.decoder(3904)('[1,5)')).toBe('[1,5)');
    expect(c.decoder(1020)('{(1,1),(0,0);(2,2),(1,1)}')).toBe('{(1,1),(0,0);(2,2),(1,1)}');
  });
});

describe('value decoder: failures', () => {
  it('throws VALUE_DECODE_FAILED naming the type oid', () => {
    const cases: Array<[number, string]> = [
      [17, '\\x0g'],
      [17, '\\x012'],
      [17, '0102'],
      [16, 'true'],
      [23, '1.5'],
      [23, ''],
      [20, '12a'],
      [1700, '1e5'],
      [701, 'abc'],
      [701, ''],
      [1184, '2024-01-02 03:04:05'],
      [1114, '2024-01-02 03:04:05+00'],
      [1082, '02/01/2024'],
      [1007, '{1,2'],
      [1007, '1 2'],
    ];
    for (const [oid, text] of cases) {
      const e = decodeError(oid, text);
      expect(isReplicatorError(e, ErrorCodes.VALUE_DECODE_FAILED), `${oid} ${text}`).toBe(true);
      if (isReplicatorError(e)) {
        expect(e.message).toContain(`oid ${oid}`);
        expect(e.details.typeOid).toBe(oid);
        expect(e.retryable).toBe(false);
      }
    }
  });

  it('names the array type when an element fails', () => {
    const e = decodeError(1001, '{"\\\\xzz"}');
    expect(isReplicatorError(e, ErrorCodes.VALUE_DECODE_FAILED)).toBe(true);
    if (isReplicatorError(e)) expect(e.details).toEqual({ typeOid: 1001, typeName: '_bytea' });
  });
});

describe('TypeCatalog', () => {
  it('knows the builtin types', () => {
    const c = new TypeCatalog();
    expect(c.get(1185)).toEqual({
      oid: 1185,
      name: '_timestamptz',
      kind: 'array',
      elementOid: 1184,
      delimiter: ',',
    });
    expect(c.get(1700)?.kind).toBe('base');
    expect(c.missing([16, 17, 20, 1007, 3807, 1001, 199, 1231])).toEqual([]);
  });

  it('caches a decoder per oid', () => {
    const c = new TypeCatalog();
    expect(c.decoder(1007)).toBe(c.decoder(1007));
  });

  it('reports missing types transitively through array elements and domain bases', () => {
    const c = new TypeCatalog();
    expect(c.missing([23, 90_100, 90_100])).toEqual([90_100]);
    c.add({ oid: 90_101, name: '_d', kind: 'array', elementOid: 90_102 });
    expect(c.missing([90_101])).toEqual([90_102]);
    c.add({ oid: 90_102, name: 'd', kind: 'domain', baseOid: 90_103 });
    expect(c.missing([25, 90_101])).toEqual([90_103]);
    c.add({ oid: 90_103, name: 'e', kind: 'enum' });
    expect(c.missing([90_101])).toEqual([]);
    expect(c.decoder(90_101)('{x,y}')).toEqual(['x', 'y']);
  });
});

describe('loadTypes (against a scripted client)', () => {
  it('follows element and base types until none is unknown, skipping builtins', async () => {
    const pgType: Record<number, Record<string, unknown>> = {
      // pg parses oids to numbers; a raw-text client returns strings: both must work.
      50001: {
        oid: 50_001,
        typname: '_amount',
        typtype: 'b',
        typcategory: 'A',
        typelem: 50_002,
        typbasetype: 0,
      },
      50002: {
        oid: '50002',
        typname: 'amount',
        typtype: 'd',
        typcategory: 'N',
        typelem: '0',
        typbasetype: '50003',
      },
      50003: {
        oid: 50_003,
        typname: 'inner_amount',
        typtype: 'd',
        typcategory: 'N',
        typelem: 0,
        typbasetype: 1700,
      },
    };
    const queries: number[][] = [];
    const client = {
      query: async (_sql: string, values: unknown[]) => {
        const oids = values[0] as number[];
        queries.push(oids);
        return { rows: oids.flatMap((o) => (pgType[o] ? [{ typdelim: ',', ...pgType[o] }] : [])) };
      },
    };
    const types = await loadTypes(client, [50_001, 50_001, 60_000]);
    expect(queries).toEqual([[50_001, 60_000], [50_002], [50_003]]);
    expect(types).toEqual([
      { oid: 50_001, name: '_amount', kind: 'array', elementOid: 50_002, delimiter: ',' },
      { oid: 50_002, name: 'amount', kind: 'domain', baseOid: 50_003, delimiter: ',' },
      { oid: 50_003, name: 'inner_amount', kind: 'domain', baseOid: 1700, delimiter: ',' },
    ]);
    const c = new TypeCatalog();
    for (const t of types) c.add(t);
    expect(c.missing([50_001])).toEqual([]);
    expect(c.decoder(50_001)('{1.00,NULL}')).toEqual(['1.00', null]);
  });
});
