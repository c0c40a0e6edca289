import { beforeAll, describe, expect, it } from 'vitest';
import { unindexedLookups } from '../../../connectors/postgres-sink/target-schema.js';
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
