import type pg from 'pg';
import { userId } from '../../../transforms/ids.js';
import { transformModules } from '../../../transforms/index.js';
import { bookingEmail } from '../../../transforms/users.js';
import type { Booking } from '../../../transforms/v2-schema.js';
import type { JsonRow, TransformModule, V2Entity } from '../../contracts/transform-api.js';
import type { Logger } from '../../core/logger.js';
import { textTypes } from '../../core/pg-text-types.js';
import { quoteIdent } from '../../core/sql.js';
import { type EntityShape, keyText, keyValues } from './canonical-row.js';
import { rowDiff } from './compare-entity.js';
import { ExpectedState, parseRef } from './expected-state.js';
import { LegacyReader } from './legacy-reader.js';
import {
  flushLineageEmails,
  LEGACY_OPTIONS,
  type RecheckItem,
  recheckDrift,
  TARGET_OPTIONS,
} from './recheck-drift.js';
import { connect, readEntityShapes } from './verify.js';
import type { QueuedKey } from './verify-store.js';

export interface DeltaVerifyOptions {
  legacyUrl: string;
  targetUrl: string;
  /**
   * A clean full verify's settled position: its snapshot saw every legacy commit before it. Legacy rows the sink
   * applied a change of at or after it (replicator.lineage) are what this verify compares.
   */
  since: string;
  /** V2 keys that full verify left queued (in flux): compared too. */
  queued?: readonly QueuedKey[];
  modules?: readonly TransformModule[];
  logger: Logger;
}

export interface DeltaVerifyReport {
  clean: boolean;
  since: string;
  /** Legacy rows changed since `since` (as the lineage records them). */
  legacyRows: number;
  /** V2 keys compared: what those rows produce now, produced before, and the users of their emails. */
  keys: number;
  /** Keys that differ (or could not be concluded: with writes fenced, nothing should still be changing). */
  drift: RecheckItem[];
  seconds: number;
}

/**
 * The cutover's final verify in proportion to what changed: with writes fenced and the drain exact, every V2 row a
 * legacy change since the last clean full verify could have touched is compared with what the legacy rows say now.
 * Those are, per legacy row the sink applied a change of since then: the V2 rows its lineage lists now and before
 * its last change of them (outputs, prior_outputs: what a deleted row produced), the rows its current legacy version
 * produces, a bundle's components, and the users of every email it has or had (emails, prior_emails). The comparison itself is one round of
 * verify's re-check (recheck-drift.ts) with nothing left to wait for: every difference is drift.
 *
 * What it does not see: a V2 row changed by something other than the sink since the full verify, or what a legacy
 * row produced two changes of its outputs (or emails) ago. The next full verify does; `--full-final-verify`
 * runs one inside the fence instead.
 */
export async function runDeltaVerify(o: DeltaVerifyOptions): Promise<DeltaVerifyReport> {
  const started = Date.now();
  const modules = o.modules ?? transformModules;
  const byTable = new Map<string, TransformModule>();
  for (const m of modules) for (const t of m.tables) byTable.set(t, m);

  const target = await connect(o.targetUrl, { types: textTypes, options: TARGET_OPTIONS }, 'target');
  let legacy: pg.Client | undefined;
  try {
    legacy = await connect(o.legacyUrl, { options: LEGACY_OPTIONS }, 'legacy');
    const shapes = await readEntityShapes(target);
    const items = new Map<string, RecheckItem>();
    const add = (entity: V2Entity, row: JsonRow, ref?: string, email?: string) => {
      const shape = shapes[entity];
      const values = keyValues(shape, row);
      const text = keyText(values);
      const id = `${entity}\u0000${text}`;
      let item = items.get(id);
      if (!item) {
        item = {
          entity,
          values,
          keyText: text,
          refs: new Set(),
          confirmations: 0,
          inFlux: false,
          diff: rowDiff(entity, shape, 'missing', values, null, null),
        };
        items.set(id, item);
      }
      if (ref) item.refs.add(ref);
      if (email) item.email = email;
    };

    // The legacy rows changed since the full verify, and what the sink says they produced.
    const { rows: changed } = await target.query<{
      source_table: string;
      source_key: string;
      outputs: [V2Entity, JsonRow][];
      prior_outputs: [V2Entity, JsonRow][];
      emails: string[];
      prior_emails: string[];
    }>(
      `SELECT source_table, source_key, outputs, prior_outputs, emails, prior_emails FROM replicator.lineage
        WHERE commit_lsn >= $1::pg_lsn`,
      [o.since],
    );
    const emails = new Set<string>();
    const bundles = new Map<string, string>();
    const refsByTable = new Map<string, string[]>();
    for (const r of changed) {
      const ref = `${r.source_table}\u0000${r.source_key}`;
      for (const [entity, key] of [...r.outputs, ...r.prior_outputs]) {
        add(entity, key, ref);
        if (entity === 'bundles') bundles.set(String(key.id), ref);
      }
      for (const e of [...r.emails, ...r.prior_emails]) emails.add(e);
      if (!byTable.has(r.source_table)) continue;
      const list = refsByTable.get(r.source_table) ?? [];
      list.push(ref);
      refsByTable.set(r.source_table, list);
    }

    // What those rows produce now, read in one legacy snapshot.
    const state = new ExpectedState(modules, shapes);
    await legacy.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const reader = new LegacyReader(legacy);
    for (const table of await reader.describe([...refsByTable.keys()])) {
      const refs = refsByTable.get(table.name)!;
      for (const record of await reader.readByKeys(
        table,
        refs.map((ref) => parseRef(ref).key),
      ))
        state.add(table.name, record.key, record.row);
    }
    await legacy.query('COMMIT');
    for (const [entity, rows] of state.rows) {
      for (const r of rows.values()) {
        add(entity, r.row, r.origin);
        if (entity === 'bookings') {
          const email = bookingEmail(r.row as unknown as Booking);
          if (email) emails.add(email);
        } else if (entity === 'customer_profiles' && typeof r.row.email === 'string') emails.add(r.row.email);
        else if (entity === 'bundles') bundles.set(String(r.row.id), r.origin);
      }
    }

    // A bundle's components as the target has them (one the bundle no longer has must be gone).
    if (bundles.size > 0) {
      const shape = shapes.bundle_components;
      const { rows } = await target.query<JsonRow>(
        `SELECT ${shape.key.map((k) => quoteIdent(k.name)).join(', ')} FROM bundle_components WHERE bundle_id = ANY($1::uuid[])`,
        [[...bundles.keys()]],
      );
      for (const row of rows) add('bundle_components', row, bundles.get(String(row.bundle_id)));
    }
    for (const email of emails) add('users', { id: userId(email) }, undefined, email);
    for (const q of o.queued ?? []) {
      add(q.entity, q.key);
    }

    const tables = await new LegacyReader(legacy).describe([...byTable.keys()]);
    if (emails.size > 0) await flushLineageEmails(target, o.logger);
    const checked =
      items.size === 0
        ? { drift: [], inFlux: [] }
        : await recheckDrift([...items.values()], {
            legacyUrl: o.legacyUrl,
            targetUrl: o.targetUrl,
            tables: new Map(tables.map((t) => [t.name, t])),
            modules,
            shapes: shapes as Readonly<Record<V2Entity, EntityShape>>,
            // Writes are fenced and the drain is exact: there is nothing left to wait for.
            waitForApplied: async () => true,
            rounds: 1,
            confirmations: 1,
            logger: o.logger,
          });
    // Still changing inside a fence is not clean either.
    const drift = [...checked.drift, ...checked.inFlux];
    const report: DeltaVerifyReport = {
      clean: drift.length === 0,
      since: o.since,
      legacyRows: changed.length,
      keys: items.size,
      drift,
      seconds: (Date.now() - started) / 1000,
    };
    o.logger.info(
      { since: o.since, legacyRows: report.legacyRows, keys: report.keys, drift: drift.length },
      'delta verify: finished',
    );
    return report;
  } finally {
    await legacy?.end().catch(() => {});
    await target.end().catch(() => {});
  }
}
