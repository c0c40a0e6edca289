import { beforeAll, describe, expect, it } from 'vitest';
import {
  ensurePlaceholders,
  queueDerived,
  settleDerived,
} from '../../../connectors/postgres-sink/derived-rows.js';
import { ensureReplicatorSchema } from '../../../connectors/postgres-sink/target-schema.js';
import { v2Model } from '../../../transforms/v2-model.js';
import { V2_DDL } from '../../../transforms/v2-schema.js';
import { freshDatabase, withClient } from '../../helpers/resources.js';

let url: string;
beforeAll(async () => {
  url = (await freshDatabase('derived_v2')).url;
  await withClient(url, async (c) => {
    await c.query(V2_DDL);
    await ensureReplicatorSchema(c);
  });
});

describe('settleDerived', () => {
  it('settles more keys than PostgreSQL’s lock table holds at once (one advisory lock each): in chunks, queue emptied, applied position recorded once', async () => {
    // 60,000 keys (the settler merges up to its 50,000 pending keys and more): far more than
    // max_locks_per_transaction × max_connections (6,400 by default) in one transaction.
    const emails = Array.from({ length: 60_000 }, (_, i) => `settle-${i}@example.com`);
    await withClient(url, async (c) => {
      await ensurePlaceholders(c, v2Model.derived, emails, '2026-01-01T00:00:00Z');
      const ids = await queueDerived(c, emails);
      let also = 0;
      await settleDerived(c, v2Model.derived, emails, ids, async () => {
        also++;
      });
      expect(also).toBe(1);
      expect((await c.query('SELECT count(*)::int AS n FROM replicator.pending_derived')).rows[0].n).toBe(0);
      // Placeholders nothing references are removed by the recompute.
      expect((await c.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(0);
    });
  });
});
