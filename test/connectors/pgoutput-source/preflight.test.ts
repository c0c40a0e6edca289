import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTables, type Finding } from '../../../connectors/pgoutput-source/preflight.js';
import { readOnlyPreflight } from '../../../src/ops/status/read-only-preflight.js';
import { freshDatabase } from '../../helpers/resources.js';

let client: pg.Client;

beforeAll(async () => {
  const db = await freshDatabase('preflight');
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query(`
    CREATE TABLE t_default (id int PRIMARY KEY, body jsonb NOT NULL, note text, n int);
    CREATE TABLE t_full (id int PRIMARY KEY, body jsonb NOT NULL, n int);
    ALTER TABLE t_full REPLICA IDENTITY FULL;
    CREATE TABLE t_nothing (id int PRIMARY KEY, body text);
    ALTER TABLE t_nothing REPLICA IDENTITY NOTHING;
    CREATE TABLE t_fixed (id int PRIMARY KEY, n int, at timestamptz, u uuid);
    CREATE TABLE t_plain (id text PRIMARY KEY, body text, n int);
    ALTER TABLE t_plain ALTER COLUMN body SET STORAGE PLAIN;
    CREATE TABLE t_index (id int PRIMARY KEY, code text NOT NULL, body bytea);
    CREATE UNIQUE INDEX t_index_id_code ON t_index (id, code);
    ALTER TABLE t_index REPLICA IDENTITY USING INDEX t_index_id_code;
  `);
});

afterAll(async () => {
  await client?.end();
});

async function identityFinding(table: string): Promise<Finding> {
  const findings = await checkTables({
    client,
    tables: [{ schema: 'public', table }],
    publication: 'unused',
    slot: 'unused',
    createPublication: false,
  });
  return findings.find((f) => f.check === 'replica identity')!;
}

describe('preflight: replica identity and unchanged TOASTed values', () => {
  it('DEFAULT on a table with TOAST-able columns: a warning naming the columns, the cost and both remedies', async () => {
    const f = await identityFinding('t_default');
    expect(f.level).toBe('warn');
    expect(f.message).toContain(
      'public.t_default has replica identity default and TOAST-able columns (body, note)',
    );
    expect(f.message).toMatch(/image store \(replicator\.toast_images/);
    expect(f.message).toMatch(/re-reads the legacy row/);
    expect(f.fix).toMatch(/ALTER TABLE "public"\."t_default" REPLICA IDENTITY FULL/);
    expect(f.fix).toMatch(/whole old row to WAL/);
    expect(f.fix).toMatch(/rely on the image store/);
  });

  it('FULL: ok', async () => {
    expect(await identityFinding('t_full')).toMatchObject({
      level: 'ok',
      message: 'public.t_full: primary key (id), replica identity full',
    });
  });

  it('NOTHING: an error', async () => {
    expect(await identityFinding('t_nothing')).toMatchObject({
      level: 'error',
      message: expect.stringMatching(/REPLICA IDENTITY NOTHING/),
      fix: 'ALTER TABLE "public"."t_nothing" REPLICA IDENTITY DEFAULT',
    });
  });

  it('DEFAULT without TOAST-able columns (fixed-size types, a PLAIN column, a text key): ok', async () => {
    expect((await identityFinding('t_fixed')).level).toBe('ok');
    expect((await identityFinding('t_plain')).level).toBe('ok');
  });

  it('USING INDEX: like DEFAULT for the columns outside the index', async () => {
    const f = await identityFinding('t_index');
    expect(f.level).toBe('warn');
    expect(f.message).toContain('replica identity index and TOAST-able columns (body)');
  });

  it('status shows the warning (read-only preflight)', async () => {
    const findings = await readOnlyPreflight(client, {
      tables: [{ schema: 'public', table: 't_default' }],
      publication: 'p',
      slot: 's',
      createPublication: true,
    });
    expect(findings).toContainEqual(
      expect.objectContaining({ check: 'replica identity', level: 'warn', fix: expect.any(String) }),
    );
  });
});
