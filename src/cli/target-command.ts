import type { Command } from 'commander';
import pg from 'pg';
import { ensureReplicatorSchema } from '../../connectors/postgres-sink/index.js';
import { V2_DDL } from '../../transforms/v2-schema.js';
import { ErrorCodes, ReplicatorError, withEndpoint } from '../core/errors.js';
import { describePgUrl } from '../core/redact.js';
import { loadConfig } from '../pipeline/config/load-config.js';

/** Creates the V2 tables (the shipped DDL) and the replicator's bookkeeping schema in the target. Idempotent. */
export async function initTarget(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await withEndpoint({ kind: 'postgres', url, role: 'target' }, () => client.connect());
  try {
    await client.query(V2_DDL);
    await ensureReplicatorSchema(client);
  } finally {
    await client.end();
  }
}

export function registerTargetCommands(program: Command): void {
  program
    .command('init-target')
    .description('create the V2 tables and the replicator schema in the target (idempotent)')
    .option('--config <file>', 'config file', 'replicator.config.yaml')
    .action(async (opts: { config: string }) => {
      const config = await loadConfig(opts.config);
      if (!config.target)
        throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'target.url is not configured');
      await initTarget(config.target.url);
      console.log(`target ${describePgUrl(config.target.url)}: V2 tables and replicator schema ready`);
    });
}
