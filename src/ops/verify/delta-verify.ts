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
import { ExpectedState, keysByTable } from './expected-state.js';
import { LegacyReader, type LegacyTable } from './legacy-reader.js';
import {
  flushLineageEmails,
  LEGACY_OPTIONS,
  matchesLegacy,
  matchesLine,
  type RecheckItem,
  readLineage,
  readTargetLines,
  readTargetRows,
  TARGET_OPTIONS,
  takeUserEmails,
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
  /**
   * Settles once legacy is fenced (the cutover's): the rows changed so far are read a first time before it, and
   * those whose lineage moved since are read again after it. Absent: legacy is fenced already.
   */
  fenced?: Promise<void>;
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
  /** Of `keys`, those whose target row's text (hashLine) was not the expected one, read whole and compared by value. */
  byValue: number;
  /** Keys that differ (or could not be concluded: with writes fenced, nothing should still be changing). */
  drift: RecheckItem[];
  /** From its start (with the cutover's: the fence) to its end. */
  seconds: number;
  /** From `finish` (the drain exact) to its end: what it added to the window after the drain. */
  finishSeconds: number;
  /**
   * Where `finish` spent its time, ms: waiting for the reads begun at the start (`early`), the lineage of what the
   * drain applied since the last look (`lineage`), its legacy rows and users (`drained`), the last legacy and target
   * reads side by side (`rows`), the comparison (`compare`).
   */
  finishMs: { early: number; lineage: number; drained: number; rows: number; compare: number };
}

/** A delta verify begun while the drain runs: `finish` once the sink has applied everything up to the fence. */
export interface DeltaVerifyRun {
  /**
   * With `fenced`: settles once the rows changed so far were read a first time, before the fence (outside the
   * window); the cutover fences after it. Without: at once.
   */
  prepared: Promise<void>;
  /** Settles once the changes applied so far are read (their legacy rows, their users' rows). */
  ready: Promise<void>;
  finish(): Promise<DeltaVerifyReport>;
  /** The drain failed: stop, close the connections. */
  abandon(): Promise<void>;
}

/**
 * The cutover's final verify in proportion to what changed: with writes fenced and the drain exact, every V2 row a
 * legacy change since the last clean full verify could have touched is compared with what the legacy rows say now.
 * Those are, per legacy row the sink applied a change of since then: the V2 rows its lineage lists now and before
 * its last change of them (outputs, prior_outputs: what a deleted row produced), the rows its current legacy version
 * produces, a bundle's components, and the users of every email it has or had (emails, prior_emails), each derived
 * from every legacy row of that email (found through the lineage's email index).
 *
 * Read a first time before the fence (the cutover's `fenced`), outside the window; once fenced, legacy no longer
 * changes: a row whose lineage moved since its read (new to it or applied again) is read again, in a snapshot taken
 * after the fence — right away, and at `finish` for what the drain applied (its outputs, emails and legacy row are
 * added) — and the target's rows are read only then. One pass, nothing waited for: every difference is drift
 * (verify's re-check, recheck-drift.ts, re-reads in rounds instead).
 *
 * What it does not see: a V2 row changed by something other than the sink since the full verify, or what a legacy
 * row produced two changes of its outputs (or emails) ago. The next full verify does; `--full-final-verify`
 * runs one inside the fence instead.
 */
export function startDeltaVerify(o: DeltaVerifyOptions): DeltaVerifyRun {
  let started = Date.now();
  const abandoned = new AbortController();
  const fenced = o.fenced
    ? Promise.race([
        o.fenced.then(() => {
          started = Date.now();
        }),
        new Promise<never>((_, reject) =>
          abandoned.signal.addEventListener('abort', () => reject(new Error('delta verify abandoned')), {
            once: true,
          }),
        ),
      ])
    : Promise.resolve();
  let preread = () => {};
  const prepared = new Promise<void>((resolve) => {
    preread = resolve;
  });
  const run = DeltaPass.begin(o, fenced, preread);
  // Settled here too, so a failure before `finish` is not an unhandled rejection.
  run.catch(() => {});
  run.finally(preread).catch(() => {});
  return {
    prepared,
    ready: run.then(
      () => {},
      () => {},
    ),
    finish: async () => {
      const called = Date.now();
      const pass = await run;
      try {
        return await pass.finish(started, Date.now() - called);
      } finally {
        await pass.close();
      }
    },
    abandon: async () => {
      abandoned.abort();
      await (await run.catch(() => undefined))?.close();
    },
  };
}

/** startDeltaVerify, finished at once (legacy fenced and the drain already exact). */
export function runDeltaVerify(o: DeltaVerifyOptions): Promise<DeltaVerifyReport> {
  return startDeltaVerify(o).finish();
}

interface LineageRow {
  source_table: string;
  source_key: string;
  position: string;
  outputs: [V2Entity, JsonRow][];
  prior_outputs: [V2Entity, JsonRow][];
  emails: string[];
  prior_emails: string[];
}

class DeltaPass {
  private readonly items = new Map<string, RecheckItem>();
  private readonly emails = new Set<string>();
  private readonly bundles = new Map<string, string>();
  /** Changed legacy rows (refText) → the lineage's position of the change applied last, as read. */
  private readonly changed = new Map<string, string>();
  private readonly read = new Set<string>();
  /**
   * Of `read`, the rows read before the fence: forgotten when their lineage moves. From `fencedReads` on, legacy is
   * read in a snapshot taken after the fence, and a row read then is final (never read again).
   */
  private readonly readBeforeFence = new Set<string>();
  private fencedReads = false;
  private readonly state: ExpectedState;

  private constructor(
    private readonly o: DeltaVerifyOptions,
    private readonly target: pg.Client,
    private readonly legacy: pg.Client,
    private readonly shapes: Readonly<Record<V2Entity, EntityShape>>,
    private readonly tables: ReadonlyMap<string, LegacyTable>,
    private readonly reader: LegacyReader,
    modules: readonly TransformModule[],
  ) {
    this.state = new ExpectedState(modules, shapes, true);
  }

  /**
   * Connects, reads the catalogs and the legacy side of every change applied so far: before `fenced` settles (then
   * again, fenced, what changed since: `refresh`) when there is one, else in the fenced snapshot.
   */
  static async begin(o: DeltaVerifyOptions, fenced: Promise<void>, preread: () => void): Promise<DeltaPass> {
    const modules = o.modules ?? transformModules;
    const [target, legacy] = await Promise.allSettled([
      connect(o.targetUrl, { types: textTypes, options: TARGET_OPTIONS }, 'target'),
      connect(o.legacyUrl, { options: LEGACY_OPTIONS }, 'legacy'),
    ]);
    const close = async () => {
      if (target.status === 'fulfilled') await target.value.end().catch(() => {});
      if (legacy.status === 'fulfilled') await legacy.value.end().catch(() => {});
    };
    try {
      if (target.status === 'rejected') throw target.reason;
      if (legacy.status === 'rejected') throw legacy.reason;
      const reader = new LegacyReader(legacy.value);
      const [shapes, tables] = await Promise.all([
        readEntityShapes(target.value),
        reader.describe([...new Set(modules.flatMap((m) => m.tables))]),
      ]);
      const pass = new DeltaPass(
        o,
        target.value,
        legacy.value,
        shapes,
        new Map(tables.map((t) => [t.name, t])),
        reader,
        modules,
      );
      if (o.fenced) {
        // Before the fence, while writes go on: every row changed so far is read once. What changes after its read
        // shows in the lineage with a new position and is read again once legacy is fenced (`refresh`).
        await pass.early();
        preread();
        await fenced;
        await legacy.value.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        await pass.refresh();
      } else {
        await legacy.value.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        pass.fencedReads = true;
        await pass.early();
      }
      return pass;
    } catch (e) {
      await close();
      throw e;
    }
  }

  private closed: Promise<void> | undefined;

  /** Ends both connections (once, however often it is called). */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.legacy.end().catch(() => {});
      await this.target.end().catch(() => {});
    })();
    return this.closed;
  }

  private add(entity: V2Entity, row: JsonRow, ref?: string, email?: string): RecheckItem {
    const shape = this.shapes[entity];
    const values = keyValues(shape, row);
    const text = keyText(values);
    const id = `${entity}\u0000${text}`;
    let item = this.items.get(id);
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
      this.items.set(id, item);
    }
    if (ref) item.refs.add(ref);
    if (email) item.email = email;
    return item;
  }

  private addUser(email: string): RecheckItem {
    this.emails.add(email);
    return this.add('users', { id: userId(email) }, undefined, email);
  }

  /**
   * The target's oldest running transaction (its 32-bit xid) when the lineage was last read: every lineage row that
   * read did not see was written by it or a later transaction, so the next read looks at those only.
   */
  private lineageHorizon: string | null = null;

  /**
   * Lineage rows of changes applied since `since`: the first read, or what was applied after the last one (a row
   * whose legacy side was read before is forgotten, to be read again).
   */
  private async readChanged(): Promise<LineageRow[]> {
    // Taken before the read, so no newer than the read's own snapshot's. A row version written by a transaction
    // older than it was visible to the last read: only those at or after it (in xid order, wrapping) can be new.
    const horizon = (
      await this.target.query<{ x: string }>(
        'SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::int8 % 4294967296)::text AS x',
      )
    ).rows[0]!.x;
    const { rows } = await this.target.query<LineageRow>(
      `SELECT source_table, source_key, commit_lsn::text || '/' || seq AS position, outputs, prior_outputs, emails,
              prior_emails
         FROM replicator.lineage
        WHERE commit_lsn >= $1::pg_lsn
          AND ($2::int8 IS NULL OR (xmin::text::int8 - $2::int8 + 4294967296) % 4294967296 < 2147483648)`,
      [this.o.since, this.lineageHorizon],
    );
    this.lineageHorizon = horizon;
    const fresh: LineageRow[] = [];
    for (const r of rows) {
      const ref = `${r.source_table}\u0000${r.source_key}`;
      if (this.changed.get(ref) === r.position) continue;
      this.changed.set(ref, r.position);
      // Read before the fence and applied since: it may have changed after that read. Read it again. (Applied again
      // during the drain after a read in the fenced snapshot: that read is final.)
      if (this.readBeforeFence.delete(ref)) {
        this.read.delete(ref);
        this.state.removeOrigin(ref);
      }
      fresh.push(r);
    }
    return fresh;
  }

  /**
   * Items of changed rows' lineage: each output (now and before its last change) and the user of each email
   * (users met for the first time are returned: their legacy rows are still to be found by email). `late`: applied
   * by the drain, maybe after its email's rows were looked up; the row is added to that user's rows directly.
   */
  private addLineage(rows: readonly LineageRow[], late: boolean): RecheckItem[] {
    const users: RecheckItem[] = [];
    for (const r of rows) {
      const ref = `${r.source_table}\u0000${r.source_key}`;
      for (const [entity, key] of [...r.outputs, ...r.prior_outputs]) {
        this.add(entity, key, ref);
        if (entity === 'bundles') this.bundles.set(String(key.id), ref);
      }
      for (const e of [...r.emails, ...r.prior_emails]) {
        if (!this.emails.has(e)) users.push(this.addUser(e));
        else if (late) this.add('users', { id: userId(e) }, ref, e);
      }
    }
    return users;
  }

  /**
   * After a read before the fence, once legacy is fenced: what changed since, read again — the changed rows, the
   * users of their emails, the rows of users met for the first time.
   */
  async refresh(): Promise<void> {
    const newUsers = this.addLineage(await this.readChanged(), true);
    this.fencedReads = true;
    await Promise.all([
      this.readLegacy(this.changed.keys()),
      newUsers.length > 0 ? readLineage(this.target, newUsers, this.shapes) : Promise.resolve(),
    ]);
    await this.readLegacy(this.refsOfItems());
  }

  /** Legacy rows by ref, each read once (again when forgotten), the last of them in the snapshot taken fenced. */
  private async readLegacy(refs: Iterable<string>): Promise<void> {
    const unread: string[] = [];
    for (const ref of refs) {
      if (this.read.has(ref)) continue;
      this.read.add(ref);
      if (!this.fencedReads) this.readBeforeFence.add(ref);
      unread.push(ref);
    }
    for (const [table, list] of keysByTable(unread, (t) => this.tables.has(t))) {
      for (const record of await this.reader.readByKeys(this.tables.get(table)!, list)) {
        this.state.add(table, record.key, record.row);
      }
    }
  }

  /** The refs every item derives from (a user: every legacy row of its email, as the lineage knows them). */
  private refsOfItems(): string[] {
    return [...this.items.values()].flatMap((i) => [...i.refs]);
  }

  /**
   * Changes applied so far, their users' rows found and every such legacy row read: before the fence (a first
   * read, `refresh` after it), or fenced, while the drain runs.
   */
  private async early(): Promise<void> {
    this.addLineage(await this.readChanged(), false);
    for (const q of this.o.queued ?? []) this.add(q.entity, q.key);
    // Side by side: the changed legacy rows; the legacy rows of their users and the origins of keys the full verify
    // left queued (target: the lineage).
    await Promise.all([
      this.readLegacy(this.changed.keys()),
      (async () => {
        if (this.emails.size > 0) await flushLineageEmails(this.target, this.o.logger);
        const unnamed = [...this.items.values()].filter((i) => i.entity === 'users' && !i.email);
        if (unnamed.length > 0)
          takeUserEmails(unnamed, await readTargetRows(this.target, unnamed, this.shapes));
        await readLineage(
          this.target,
          [...this.items.values()].filter((i) => i.entity === 'users' || i.refs.size === 0),
          this.shapes,
        );
      })(),
    ]);
    await this.readLegacy(this.refsOfItems());
  }

  /** With the drain exact: what it applied, then the target's rows, compared. */
  async finish(started: number, earlyMs = 0): Promise<DeltaVerifyReport> {
    const finishing = Date.now();
    const newUsers = this.addLineage(await this.readChanged(), true);
    const lineageAt = Date.now();
    // What the changed rows produce now: their rows, their emails' users, a bundle's components.
    await this.readLegacy(this.changed.keys());
    for (const [entity, rows] of this.state.rows) {
      for (const r of rows.values()) {
        if (!this.changed.has(r.origin)) continue;
        this.add(entity, r.row, r.origin);
        let email: string | null = null;
        if (entity === 'bookings') email = bookingEmail(r.row as unknown as Booking);
        else if (entity === 'customer_profiles' && typeof r.row.email === 'string') email = r.row.email;
        else if (entity === 'bundles') this.bundles.set(String(r.row.id), r.origin);
        // An email only the current legacy row has (the sink did not apply its change): its user's other rows too.
        if (email && !this.emails.has(email)) newUsers.push(this.addUser(email));
      }
    }
    if (newUsers.length > 0) await readLineage(this.target, newUsers, this.shapes);

    const drainedAt = Date.now();
    // Side by side: the legacy rows not read yet; the target's rows of every key as hashLine text, a bundle's
    // components found first (one the bundle no longer has must be gone).
    let lines = new Map<string, string>();
    await Promise.all([
      (async () => {
        await this.readLegacy(this.refsOfItems());
        await this.legacy.query('COMMIT');
      })(),
      (async () => {
        if (this.bundles.size > 0) {
          const shape = this.shapes.bundle_components;
          const { rows } = await this.target.query<JsonRow>(
            `SELECT ${shape.key.map((k) => quoteIdent(k.name)).join(', ')} FROM bundle_components WHERE bundle_id = ANY($1::uuid[])`,
            [[...this.bundles.keys()]],
          );
          for (const row of rows) this.add('bundle_components', row, this.bundles.get(String(row.bundle_id)));
        }
        lines = await readTargetLines(this.target, [...this.items.values()], this.shapes);
      })(),
    ]);

    const rowsAt = Date.now();
    // The text matches for equal rows as both sides write them; the rest (drift, or a value spelt otherwise) are
    // read whole and compared value by value.
    const unlike = [...this.items.values()].filter(
      (item) => !matchesLine(item, this.state, lines, this.shapes),
    );
    const actual = unlike.length > 0 ? await readTargetRows(this.target, unlike, this.shapes) : new Map();
    const drift = unlike.filter((item) => !matchesLegacy(item, this.state, actual, this.shapes));
    const done = Date.now();
    const report: DeltaVerifyReport = {
      clean: drift.length === 0,
      since: this.o.since,
      legacyRows: this.changed.size,
      keys: this.items.size,
      byValue: unlike.length,
      drift,
      seconds: (done - started) / 1000,
      finishSeconds: (done - finishing + earlyMs) / 1000,
      finishMs: {
        early: earlyMs,
        lineage: lineageAt - finishing,
        drained: drainedAt - lineageAt,
        rows: rowsAt - drainedAt,
        compare: done - rowsAt,
      },
    };
    this.o.logger.info(
      {
        since: this.o.since,
        legacyRows: report.legacyRows,
        keys: report.keys,
        byValue: unlike.length,
        drift: drift.length,
      },
      'delta verify: finished',
    );
    return report;
  }
}
