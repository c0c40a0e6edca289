import type pg from 'pg';
import type { TableRef } from '../../src/contracts/topics.js';
import { ErrorCodes, ReplicatorError } from '../../src/core/errors.js';
import { qualifiedName, quoteIdent, TOASTABLE_ATTRIBUTE } from '../../src/core/sql.js';

/**
 * Preflight checks of the legacy database. Each check is small and returns findings; `runPreflight` runs them all
 * and `status`/`cutover` reuse them. A finding of level `error` stops the source before it touches the slot.
 */

export type FindingLevel = 'ok' | 'warn' | 'error';

export interface Finding {
  check: string;
  level: FindingLevel;
  message: string;
  /** What to run or change to fix it. */
  fix?: string;
}

export interface PreflightContext {
  client: pg.Client;
  tables: readonly TableRef[];
  publication: string;
  slot: string;
  /** Create or align the publication when it is missing or covers other tables. */
  createPublication: boolean;
}

export interface TableInfo {
  table: TableRef;
  /** Primary-key columns in key order; empty when the table has none. */
  primaryKey: string[];
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  /** Columns of the REPLICA IDENTITY USING INDEX index; empty otherwise. */
  identityIndex: string[];
}

export type Check = (ctx: PreflightContext) => Promise<Finding[]>;

const name = (t: TableRef) => `${t.schema}.${t.table}`;

export const checkWalLevel: Check = async ({ client }) => {
  const level = (await client.query<{ v: string }>("SELECT current_setting('wal_level') AS v")).rows[0]?.v;
  return [
    level === 'logical'
      ? { check: 'wal_level', level: 'ok', message: 'wal_level=logical' }
      : {
          check: 'wal_level',
          level: 'error',
          message: `wal_level is ${level}; logical decoding needs wal_level=logical`,
          fix: "ALTER SYSTEM SET wal_level = 'logical'; then restart PostgreSQL",
        },
  ];
};

export const checkReplicationPrivilege: Check = async ({ client }) => {
  const { rows } = await client.query<{ ok: boolean; role: string }>(
    'SELECT rolreplication OR rolsuper AS ok, rolname AS role FROM pg_roles WHERE rolname = current_user',
  );
  const row = rows[0];
  return [
    row?.ok
      ? { check: 'replication privilege', level: 'ok', message: `role ${row.role} may replicate` }
      : {
          check: 'replication privilege',
          level: 'error',
          message: `role ${row?.role} lacks the REPLICATION attribute`,
          fix: `ALTER ROLE ${quoteIdent(row?.role ?? 'current_user')} REPLICATION`,
        },
  ];
};

/** Reads what the source needs to know of each table (PK, replica identity), or undefined when it is missing. */
export async function describeTable(client: pg.Client, t: TableRef): Promise<TableInfo | undefined> {
  const indexColumns = (flag: string) => `(SELECT array_agg(a.attname::text ORDER BY k.ord)
               FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.${flag})`;
  const { rows } = await client.query<{ relreplident: string; pk: string[] | null; ri: string[] | null }>(
    `SELECT c.relreplident, ${indexColumns('indisprimary')} AS pk, ${indexColumns('indisreplident')} AS ri
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [t.schema, t.table],
  );
  const row = rows[0];
  if (!row) return undefined;
  const identity =
    ({ d: 'default', n: 'nothing', f: 'full', i: 'index' } as const)[row.relreplident as 'd'] ?? 'default';
  return { table: t, primaryKey: row.pk ?? [], replicaIdentity: identity, identityIndex: row.ri ?? [] };
}

export const checkTables: Check = async ({ client, tables }) => {
  const findings: Finding[] = [];
  for (const t of tables) {
    const info = await describeTable(client, t);
    if (!info) {
      findings.push({ check: 'table exists', level: 'error', message: `table ${name(t)} does not exist` });
      continue;
    }
    const canSelect = (
      await client.query<{ ok: boolean }>("SELECT has_table_privilege($1, 'SELECT') AS ok", [
        qualifiedName(t.schema, t.table),
      ])
    ).rows[0]?.ok;
    if (!canSelect) {
      findings.push({
        check: 'select privilege',
        level: 'error',
        message: `the source role cannot SELECT from ${name(t)}`,
        fix: `GRANT SELECT ON ${qualifiedName(t.schema, t.table)} TO <source role>`,
      });
    }
    const keyed = info.primaryKey.length > 0;
    // Events are keyed by the primary key, so the old key tuple pgoutput sends must contain it.
    const indexLacksKey =
      info.replicaIdentity === 'index' &&
      (!keyed || !info.primaryKey.every((k) => info.identityIndex.includes(k)));
    if (indexLacksKey) {
      findings.push({
        check: 'replica identity',
        level: 'error',
        message: `${name(t)} uses REPLICA IDENTITY USING INDEX on (${info.identityIndex.join(', ')}), which does not contain the primary key (${info.primaryKey.join(', ') || 'none'}): deletes and key changes could not be keyed`,
        fix: `ALTER TABLE ${qualifiedName(t.schema, t.table)} REPLICA IDENTITY ${keyed ? 'DEFAULT' : 'FULL'}`,
      });
    } else if (info.replicaIdentity === 'full' || (keyed && info.replicaIdentity !== 'nothing')) {
      const toastable = info.replicaIdentity === 'full' ? [] : await toastableColumns(client, t, info);
      findings.push(
        toastable.length === 0
          ? {
              check: 'replica identity',
              level: 'ok',
              message: `${name(t)}: ${keyed ? `primary key (${info.primaryKey.join(', ')})` : 'no primary key'}, replica identity ${info.replicaIdentity}`,
            }
          : {
              check: 'replica identity',
              level: 'warn',
              message:
                `${name(t)} has replica identity ${info.replicaIdentity} and TOAST-able columns (${toastable.join(', ')}): ` +
                'an UPDATE that leaves such a value unchanged while it is stored out of line (over ~2 kB) does not carry it. ' +
                'The sink completes it from its image store (replicator.toast_images in the target: a copy of these ' +
                'columns per row, written with every change; costs target storage and write time), or re-reads the legacy ' +
                'row when it has no image (replicator_toast_refetch_total)',
              fix:
                `ALTER TABLE ${qualifiedName(t.schema, t.table)} REPLICA IDENTITY FULL (then no completion is needed, but ` +
                'every UPDATE and DELETE writes the whole old row to WAL), or keep this identity and rely on the image store',
            },
      );
    } else {
      findings.push({
        check: 'replica identity',
        level: 'error',
        message: `${name(t)} has ${keyed ? 'REPLICA IDENTITY NOTHING' : 'no primary key and no REPLICA IDENTITY FULL'}: its updates and deletes cannot be identified`,
        fix: keyed
          ? `ALTER TABLE ${qualifiedName(t.schema, t.table)} REPLICA IDENTITY DEFAULT`
          : `ALTER TABLE ${qualifiedName(t.schema, t.table)} ADD PRIMARY KEY (<columns>)  -- or: ALTER TABLE ${qualifiedName(t.schema, t.table)} REPLICA IDENTITY FULL`,
      });
    }
  }
  return findings;
};

/** Non-key columns whose unchanged values pgoutput may leave out of an UPDATE under this identity. */
async function toastableColumns(client: pg.Client, t: TableRef, info: TableInfo): Promise<string[]> {
  const identity = info.replicaIdentity === 'index' ? info.identityIndex : info.primaryKey;
  const { rows } = await client.query<{ name: string }>(
    `SELECT a.attname::text AS name FROM pg_attribute a
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND ${TOASTABLE_ATTRIBUTE}
      ORDER BY a.attnum`,
    [qualifiedName(t.schema, t.table)],
  );
  return rows.map((r) => r.name).filter((c) => !identity.includes(c));
}

export const checkPublication: Check = async ({ client, tables, publication, createPublication }) => {
  const exists =
    (await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication])).rowCount === 1;
  const wanted = tables.map(name).sort();
  const tableList = tables.map((t) => qualifiedName(t.schema, t.table)).join(', ');
  if (!exists) {
    if (!createPublication) {
      return [
        {
          check: 'publication',
          level: 'error',
          message: `publication ${publication} does not exist`,
          fix: `CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${tableList}`,
        },
      ];
    }
    await client.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${tableList}`);
    return [
      {
        check: 'publication',
        level: 'ok',
        message: `created publication ${publication} for ${wanted.join(', ')}`,
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
      { check: 'publication', level: 'ok', message: `publication ${publication} covers exactly the tables` },
    ];
  }
  if (createPublication) {
    await client.query(`ALTER PUBLICATION ${quoteIdent(publication)} SET TABLE ${tableList}`);
    return [
      {
        check: 'publication',
        level: 'warn',
        message: `publication ${publication} covered [${actual.join(', ')}]; set it to [${wanted.join(', ')}]`,
      },
    ];
  }
  return [
    {
      check: 'publication',
      level: 'error',
      message: `publication ${publication} covers [${actual.join(', ')}], not [${wanted.join(', ')}]`,
      fix: `ALTER PUBLICATION ${quoteIdent(publication)} SET TABLE ${tableList}`,
    },
  ];
};

export interface SlotState {
  exists: boolean;
  plugin?: string;
  database?: string;
  active: boolean;
  activePid?: number;
  confirmedFlushLsn?: string;
  restartLsn?: string;
  walStatus?: string;
  retainedBytes?: string;
  /** Bytes of WAL that can still be written before the slot is lost; null without max_slot_wal_keep_size or once lost. */
  safeWalBytes?: string | null;
}

export async function readSlot(client: pg.Client, slot: string): Promise<SlotState> {
  const { rows } = await client.query<{
    plugin: string;
    database: string;
    active: boolean;
    active_pid: number | null;
    confirmed_flush_lsn: string | null;
    restart_lsn: string | null;
    wal_status: string | null;
    retained: string | null;
    safe_wal_size: string | null;
  }>(
    `SELECT plugin, database, active, active_pid, confirmed_flush_lsn::text, restart_lsn::text, wal_status,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained, safe_wal_size::text
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const r = rows[0];
  if (!r) return { exists: false, active: false };
  return {
    exists: true,
    plugin: r.plugin,
    database: r.database,
    active: r.active,
    ...(r.active_pid ? { activePid: r.active_pid } : {}),
    ...(r.confirmed_flush_lsn ? { confirmedFlushLsn: r.confirmed_flush_lsn } : {}),
    ...(r.restart_lsn ? { restartLsn: r.restart_lsn } : {}),
    ...(r.wal_status ? { walStatus: r.wal_status } : {}),
    ...(r.retained ? { retainedBytes: r.retained } : {}),
    safeWalBytes: r.safe_wal_size,
  };
}

export const checkSlot: Check = async ({ client, slot }) => {
  const s = await readSlot(client, slot);
  const db = (await client.query<{ d: string }>('SELECT current_database() AS d')).rows[0]?.d;
  if (!s.exists) return [{ check: 'slot', level: 'ok', message: `slot ${slot} will be created` }];
  if (s.plugin !== 'pgoutput' || s.database !== db) {
    return [
      {
        check: 'slot',
        level: 'error',
        message: `slot ${slot} exists for plugin ${s.plugin} on database ${s.database}, not pgoutput on ${db}`,
        fix: 'choose another source.slot, or drop that slot if it is unused',
      },
    ];
  }
  if (s.walStatus === 'lost') {
    return [
      {
        check: 'slot',
        level: 'error',
        message: `slot ${slot} lost WAL it still needed (wal_status=lost): changes were lost`,
        fix: `drop the slot (SELECT pg_drop_replication_slot('${slot}')) and start again with snapshot=initial`,
      },
    ];
  }
  return [
    {
      check: 'slot',
      level: 'ok',
      message: `slot ${slot} at ${s.confirmedFlushLsn}${s.active ? ` (in use by pid ${s.activePid})` : ''}, retaining ${s.retainedBytes} bytes of WAL`,
    },
  ];
};

export const checkWalKeepSize: Check = async ({ client }) => {
  const v = (await client.query<{ v: string }>("SELECT current_setting('max_slot_wal_keep_size') AS v"))
    .rows[0]?.v;
  return [
    v === '-1'
      ? {
          check: 'max_slot_wal_keep_size',
          level: 'warn',
          message:
            'max_slot_wal_keep_size is unlimited: a stalled replicator makes the slot retain WAL until the disk fills',
          fix: "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB' (sized to your disk); SELECT pg_reload_conf()",
        }
      : { check: 'max_slot_wal_keep_size', level: 'ok', message: `max_slot_wal_keep_size=${v}` },
  ];
};

export const ALL_CHECKS: readonly Check[] = [
  checkWalLevel,
  checkReplicationPrivilege,
  checkTables,
  checkPublication,
  checkSlot,
  checkWalKeepSize,
];

export async function runPreflight(
  ctx: PreflightContext,
  checks: readonly Check[] = ALL_CHECKS,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const check of checks) {
    // The publication check may create or alter it: not on top of tables that failed their checks.
    if (check === checkPublication && findings.some((f) => f.level === 'error')) {
      findings.push({
        check: 'publication',
        level: 'warn',
        message: 'not checked: fix the errors above first',
      });
      continue;
    }
    findings.push(...(await check(ctx)));
  }
  return findings;
}

/** Throws PREFLIGHT_FAILED listing every error finding with its fix. */
export function assertPreflight(findings: readonly Finding[]): void {
  const errors = findings.filter((f) => f.level === 'error');
  if (errors.length === 0) return;
  const text = errors.map((f) => `${f.message}${f.fix ? `. Fix: ${f.fix}` : ''}`).join('\n');
  throw new ReplicatorError(ErrorCodes.PREFLIGHT_FAILED, `preflight failed:\n${text}`, {
    details: { findings: errors },
  });
}
