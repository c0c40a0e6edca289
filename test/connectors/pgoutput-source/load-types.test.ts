import { describe, expect, it } from 'vitest';
import { loadTypes, TypeCatalog } from '../../../src/contracts/event-value.js';
import { freshDatabase, withClient } from '../../helpers/resources.js';

describe('loadTypes against PostgreSQL', () => {
  it('loads an enum, its array type and a domain over numeric, and the catalog decodes them', async () => {
    const db = await freshDatabase('load_types');
    await withClient(db.url, async (c) => {
      await c.query("CREATE TYPE mood AS ENUM ('a', 'b')");
      await c.query('CREATE DOMAIN amount AS numeric(20, 2) CHECK (VALUE >= 0)');
      const { rows } = await c.query<{ name: string; oid: number; array_oid: number }>(
        "SELECT typname AS name, oid::int AS oid, typarray::int AS array_oid FROM pg_type WHERE typname IN ('mood', 'amount')",
      );
      const mood = rows.find((r) => r.name === 'mood')!;
      const amount = rows.find((r) => r.name === 'amount')!;

      const catalog = new TypeCatalog();
      // Asking only for the array types: the enum and the domain come in as their element types.
      const missing = catalog.missing([mood.array_oid, amount.array_oid, 23]);
      expect(missing.sort()).toEqual([mood.array_oid, amount.array_oid].sort());
      const types = await loadTypes(c, missing);
      for (const t of types) catalog.add(t);

      expect(catalog.get(mood.oid)).toEqual({ oid: mood.oid, name: 'mood', kind: 'enum', delimiter: ',' });
      expect(catalog.get(amount.oid)).toEqual({
        oid: amount.oid,
        name: 'amount',
        kind: 'domain',
        baseOid: 1700,
        delimiter: ',',
      });
      expect(catalog.get(mood.array_oid)).toMatchObject({ kind: 'array', elementOid: mood.oid });
      expect(catalog.missing([mood.array_oid, amount.array_oid])).toEqual([]);

      expect(catalog.decoder(mood.array_oid)('{a,b}')).toEqual(['a', 'b']);
      expect(catalog.decoder(mood.oid)('b')).toBe('b');
      expect(catalog.decoder(amount.oid)('12345678901234567.89')).toBe('12345678901234567.89');

      // The server's own text for an enum array round-trips through the decoder.
      const text = await c.query<{ v: string }>("SELECT ARRAY['b', NULL, 'a']::mood[]::text AS v");
      expect(catalog.decoder(mood.array_oid)(text.rows[0]!.v)).toEqual(['b', null, 'a']);
    });
  });
});
