import { afterAll } from 'vitest';
import { quoteIdent } from '../../src/core/sql.js';
import { deleteTopicsWithPrefix } from '../../src/stack/local-kafka.js';
import {
  connectedKafkaClients,
  createdDatabases,
  kafkaBrokers,
  resourcePrefix,
  withAdmin,
} from './resources.js';

/**
 * After each test file: fail it if it left a replication slot, a PostgreSQL connection or a Kafka client open,
 * then drop everything it created (so one leak does not spill into the next file).
 */
afterAll(async () => {
  const prefix = resourcePrefix();
  const problems: string[] = [];

  const leakedKafka = connectedKafkaClients();
  if (leakedKafka.length > 0) problems.push(`Kafka clients still connected: ${leakedKafka.join(', ')}`);

  await withAdmin(async (admin) => {
    const dbs = createdDatabases();
    // A client that called end() may take a moment to leave pg_stat_activity; wait for that, not for a leak.
    let open: { datname: string; n: string }[] = [];
    for (let i = 0; i < 40; i++) {
      open = (
        await admin.query<{ datname: string; n: string }>(
          `SELECT datname, count(*)::text AS n FROM pg_stat_activity
            WHERE datname = ANY($1) AND pid <> pg_backend_pid()
              AND backend_type IN ('client backend', 'walsender')
            GROUP BY datname`,
          [dbs],
        )
      ).rows;
      if (open.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const o of open) problems.push(`${o.n} PostgreSQL connection(s) still open on ${o.datname}`);

    const slots = (
      await admin.query<{ slot_name: string; active_pid: number | null }>(
        "SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name LIKE $1 || '%'",
        [prefix],
      )
    ).rows;
    for (const s of slots) {
      problems.push(`replication slot ${s.slot_name} was not dropped`);
      if (s.active_pid) await admin.query('SELECT pg_terminate_backend($1)', [s.active_pid]);
      await admin.query('SELECT pg_drop_replication_slot($1)', [s.slot_name]).catch(() => {});
    }
    for (const db of dbs) await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
  });

  await deleteTopicsWithPrefix(kafkaBrokers(), prefix);

  if (problems.length > 0) throw new Error(`test file leaked resources:\n- ${problems.join('\n- ')}`);
});
