import pg from 'pg';
import { LEGACY_DDL } from '../../transforms/legacy-schema.js';

/** Creates the legacy schema (for the demo, tests and benchmarks; a real legacy database has its own). */
export async function initLegacy(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(LEGACY_DDL);
  } finally {
    await client.end();
  }
}
