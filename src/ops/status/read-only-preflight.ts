import type pg from 'pg';
import {
  ALL_CHECKS,
  type Check,
  checkPublication,
  type Finding,
  runPreflight,
} from '../../../connectors/pgoutput-source/index.js';
import type { TableRef } from '../../contracts/topics.js';
import { qualifiedName, quoteIdent } from '../../core/sql.js';

/**
 * The publication check without its fixes: reports what the source would create or align at start (a warning
 * when `createPublication` lets it, an error otherwise), and never runs DDL.
 */
export function reportPublication(createPublication: boolean): Check {
  return async ({ client, tables, publication }) => {
    const wanted = tables.map((t) => `${t.schema}.${t.table}`).sort();
    const tableList = tables.map((t) => qualifiedName(t.schema, t.table)).join(', ');
    const exists =
      (await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication])).rowCount === 1;
    if (!exists) {
      return [
        createPublication
          ? {
              check: 'publication',
              level: 'warn',
              message: `publication ${publication} does not exist yet; the source creates it when it starts`,
            }
          : {
              check: 'publication',
              level: 'error',
              message: `publication ${publication} does not exist`,
              fix: `CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${tableList}`,
            },
      ];
    }
    const { rows } = await client.query<{ t: string }>(
      "SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
      [publication],
    );
    const actual = rows.map((r) => r.t).sort();
    if (actual.join(',') === wanted.join(',')) {
      return [
        {
          check: 'publication',
          level: 'ok',
          message: `publication ${publication} covers exactly the tables`,
        },
      ];
    }
    const message = `publication ${publication} covers [${actual.join(', ')}], not [${wanted.join(', ')}]`;
    return [
      createPublication
        ? { check: 'publication', level: 'warn', message: `${message}; the source aligns it when it starts` }
        : {
            check: 'publication',
            level: 'error',
            message,
            fix: `ALTER PUBLICATION ${quoteIdent(publication)} SET TABLE ${tableList}`,
          },
    ];
  };
}

/**
 * The source's preflight checks, for `status`: the publication is reported, never created or altered, and every
 * check runs inside a READ ONLY transaction, so not even a future check can change the legacy database from here.
 */
export async function readOnlyPreflight(
  client: pg.Client,
  o: { tables: readonly TableRef[]; publication: string; slot: string; createPublication: boolean },
): Promise<Finding[]> {
  const checks = ALL_CHECKS.map((c) => (c === checkPublication ? reportPublication(o.createPublication) : c));
  await client.query('BEGIN TRANSACTION READ ONLY');
  try {
    return await runPreflight(
      { client, tables: o.tables, publication: o.publication, slot: o.slot, createPublication: false },
      checks,
    );
  } finally {
    await client.query('ROLLBACK');
  }
}
