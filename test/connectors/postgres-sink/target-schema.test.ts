import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureReplicatorSchema, unindexedLookups } from '../../../connectors/postgres-sink/target-schema.js';
import { ensureVerifySchema } from '../../../src/ops/verify/verify-store.js';
import { v2Model } from '../../../transforms/v2-model.js';
import { V2_DDL } from '../../../transforms/v2-schema.js';
import { freshDatabase, withClient } from '../../helpers/resources.js';

let url: string;

beforeAll(async () => {
  url = (await freshDatabase('target_schema')).url;
  await withClient(url, (c) => c.query(V2_DDL));
});

describe('unindexedLookups', () => {
  it('finds the recompute lookups no index starts with, and none on the shipped schema', async () => {
    const lookups = v2Model.derived.lookups;
    expect(lookups.length).toBeGreaterThan(0);
    expect(await withClient(url, (c) => unindexedLookups(c, lookups))).toEqual([]);

    await withClient(url, async (c) => {
      await c.query('DROP INDEX bookings_user_id');
      // An index that does not start with the column does not serve the lookup.
      await c.query('CREATE INDEX bookings_status_user ON bookings (status, user_id)');
    });
    expect(await withClient(url, (c) => unindexedLookups(c, lookups))).toEqual([
      { table: 'bookings', column: 'user_id' },
    ]);
    // A table the target does not have is not reported here (the sink reports a missing table itself).
    expect(
      await withClient(url, (c) => unindexedLookups(c, [{ table: 'no_such_table', column: 'id' }])),
    ).toEqual([]);
  });
});

describe('ensureReplicatorSchema', () => {
  const columnsAndIndexes = (db: string) =>
    withClient(db, async (c) => ({
      columns: (
        await c.query<{ c: string }>(
          `SELECT attrelid::regclass::text || '.' || attname AS c FROM pg_attribute
            WHERE attrelid::regclass::text IN ('replicator.lineage', 'replicator.cutovers', 'replicator.verify_runs',
                                               'replicator.reverify_queue')
              AND attnum > 0 AND NOT attisdropped ORDER BY 1`,
        )
      ).rows.map((r) => r.c),
      indexes: (
        await c.query<{ i: string }>(
          "SELECT indexname AS i FROM pg_indexes WHERE schemaname = 'replicator' ORDER BY 1",
        )
      ).rows.map((r) => r.i),
    }));

  it('waits for no lock on tables it finds complete: a sink starting beside a long transaction on them', async () => {
    const db = (await freshDatabase('schema_locks')).url;
    await withClient(db, async (c) => {
      await ensureReplicatorSchema(c);
      await ensureVerifySchema(c);
    });
    const holder = new pg.Client({ connectionString: db });
    await holder.connect();
    try {
      // What an apply in flight holds (a long read such as pg_dump's conflicts the same way).
      await holder.query('BEGIN');
      await holder.query(
        `LOCK TABLE replicator.lineage, replicator.cutovers, replicator.verify_runs, replicator.reverify_queue
           IN ROW EXCLUSIVE MODE`,
      );
      // A wait becomes an error: ALTER TABLE … ADD COLUMN IF NOT EXISTS and CREATE INDEX IF NOT EXISTS lock the
      // table before they find there is nothing to do, and every later apply would queue behind that lock.
      await withClient(db, async (c) => {
        await c.query("SET lock_timeout = '2s'");
        await ensureReplicatorSchema(c);
        await ensureVerifySchema(c);
      });
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it('adds the columns and indexes an older schema lacks', async () => {
    const db = (await freshDatabase('schema_upgrade')).url;
    await withClient(db, async (c) => {
      await ensureReplicatorSchema(c);
      await ensureVerifySchema(c);
    });
    const complete = await columnsAndIndexes(db);
    expect(complete.columns).toContain('replicator.lineage.prior_emails');
    expect(complete.indexes).toContain('lineage_commit_lsn');
    await withClient(db, (c) =>
      c.query(`ALTER TABLE replicator.lineage DROP COLUMN prior_emails;
               ALTER TABLE replicator.cutovers DROP COLUMN tail_drained_at;
               ALTER TABLE replicator.reverify_queue DROP COLUMN status;
               DROP INDEX replicator.lineage_commit_lsn`),
    );
    await withClient(db, async (c) => {
      await ensureReplicatorSchema(c);
      await ensureVerifySchema(c);
    });
    expect(await columnsAndIndexes(db)).toEqual(complete);
  });
});
