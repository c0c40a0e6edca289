import { userId } from '../../../transforms/ids.js';
import { bookingEmail, deriveUser, deriveUsers } from '../../../transforms/users.js';
import type { Booking, CustomerProfile, Payment } from '../../../transforms/v2-schema.js';
import type { JsonRow, TransformModule, V2Entity } from '../../contracts/transform-api.js';
import { type EntityShape, keyText, keyValues } from './canonical-row.js';
import { legacyKeyText } from './legacy-reader.js';

/** A V2 row a perfect migration produces, with the legacy row it comes from (users: derived, no single origin). */
export interface ExpectedRow {
  /** keyText of the row's key values (keyValues). */
  keyText: string;
  row: JsonRow;
  /** `refText` of the legacy row that produced it; '' for users. */
  origin: string;
}

/** What one legacy table's rows became: the seeds' "unmigrated rows", by reason. */
export interface LegacyTableCounts {
  table: string;
  rows: number;
  /** Rows that produced V2 rows. */
  migrated: number;
  /** Rows the module maps to nothing on purpose (e.g. a key-value store's index keys). */
  skipped: number;
  /** Rows a transform rejects (dead-lettered by the pipeline), by reason code. */
  rejected: Record<string, number>;
}

/** Identity of a legacy row, as the lineage writes it: `schema.table` NUL `JSON of the key`. */
export const refText = (table: string, key: JsonRow) => `${table}\u0000${legacyKeyText(key)}`;

export function parseRef(ref: string): { table: string; key: JsonRow } {
  const i = ref.indexOf('\u0000');
  return { table: ref.slice(0, i), key: JSON.parse(ref.slice(i + 1)) as JsonRow };
}

/** Legacy rows (refText) grouped by table, as keys to read (readByKeys); tables `known` does not name are left out. */
export function keysByTable(
  refs: Iterable<string>,
  known: (table: string) => boolean,
): Map<string, JsonRow[]> {
  const out = new Map<string, JsonRow[]>();
  for (const ref of refs) {
    const { table, key } = parseRef(ref);
    if (!known(table)) continue;
    const keys = out.get(table);
    if (keys) keys.push(key);
    else out.set(table, [key]);
  }
  return out;
}

/**
 * The reference batch migration, incrementally: each legacy row through its transform module (as a snapshot read),
 * every V2 row remembered with its origin; users derived at the end from the result (transforms/users.ts, the
 * rules the sink's recompute implements in SQL). The same modules the pipeline runs.
 */
export class ExpectedState {
  readonly rows = new Map<V2Entity, Map<string, ExpectedRow>>();
  readonly counts = new Map<string, LegacyTableCounts>();
  private readonly byTable = new Map<string, TransformModule>();
  /** What each legacy row (refText) put into `rows`, for removeOrigin. */
  private readonly byOrigin = new Map<string, [V2Entity, string][]>();
  /** deriveUser's grouping of the state's rows by email; cleared by `add`. */
  private byEmail:
    | {
        profiles: Map<string, CustomerProfile[]>;
        bookings: Map<string, Booking[]>;
        payments: Map<string, Payment[]>;
      }
    | undefined;

  constructor(
    modules: readonly TransformModule[],
    private readonly shapes: Readonly<Record<V2Entity, EntityShape>>,
    /** Remember what each legacy row produced, for removeOrigin (off for a full verify: a million rows' worth). */
    private readonly trackOrigins = false,
  ) {
    for (const m of modules) for (const t of m.tables) this.byTable.set(t, m);
  }

  entity(entity: V2Entity): Map<string, ExpectedRow> {
    let m = this.rows.get(entity);
    if (!m) {
      m = new Map();
      this.rows.set(entity, m);
    }
    return m;
  }

  /** Transforms one legacy row (schema.table, key columns, JSON-form row) into the state. */
  add(table: string, key: JsonRow, row: JsonRow): void {
    this.byEmail = undefined;
    let counts = this.counts.get(table);
    if (!counts) {
      counts = { table, rows: 0, migrated: 0, skipped: 0, rejected: {} };
      this.counts.set(table, counts);
    }
    counts.rows++;
    const module = this.byTable.get(table);
    if (!module) return;
    let result: ReturnType<TransformModule['transform']>;
    try {
      result = module.transform({ op: 'r', table, key, before: null, after: row });
    } catch {
      // As the stage: a transform that throws is a bug in it, and the row is dead-lettered.
      counts.rejected.TRANSFORM_THREW = (counts.rejected.TRANSFORM_THREW ?? 0) + 1;
      return;
    }
    if (!result.ok) {
      const reason = result.rejection.reason;
      counts.rejected[reason] = (counts.rejected[reason] ?? 0) + 1;
      return;
    }
    const origin = refText(table, key);
    let produced = false;
    for (const op of result.ops) {
      if (op.kind === 'upsert') {
        this.put(op.entity, op.row, origin);
        produced = true;
      } else if (op.kind === 'replace-children') {
        for (const child of op.rows) this.put(op.entity, child, origin);
        produced = true;
      }
    }
    if (produced) counts.migrated++;
    else counts.skipped++;
  }

  private put(entity: V2Entity, row: JsonRow, origin: string): void {
    const text = keyText(keyValues(this.shapes[entity], row));
    this.entity(entity).set(text, { keyText: text, row, origin });
    if (!this.trackOrigins || origin === '') return;
    let made = this.byOrigin.get(origin);
    if (!made) {
      made = [];
      this.byOrigin.set(origin, made);
    }
    made.push([entity, text]);
  }

  /** Forgets what one legacy row (refText) produced: it is read again (the delta verify's rows read before the fence). */
  removeOrigin(origin: string): void {
    for (const [entity, text] of this.byOrigin.get(origin) ?? []) {
      const rows = this.rows.get(entity);
      if (rows?.get(text)?.origin === origin) rows.delete(text);
    }
    this.byOrigin.delete(origin);
    this.byEmail = undefined;
  }

  private sources() {
    const rowsOf = <T>(e: V2Entity) =>
      [...(this.rows.get(e)?.values() ?? [])].map((r) => r.row as unknown as T);
    return {
      profiles: rowsOf<CustomerProfile>('customer_profiles'),
      bookings: rowsOf<Booking>('bookings'),
      payments: rowsOf<Payment>('payments'),
    };
  }

  /** Derives every user from the bookings, payments and profiles in the state (replacing any derived before). */
  deriveUsers(): void {
    const users = this.entity('users');
    users.clear();
    for (const u of deriveUsers(this.sources())) this.put('users', u as unknown as JsonRow, '');
  }

  /**
   * The user of one normalized email as these rows derive it, or null (no booking or profile has it). The rows
   * are grouped by email once (until the next `add`): the re-check asks for many users of one state.
   */
  deriveUser(email: string): JsonRow | null {
    if (!this.byEmail) {
      const { profiles, bookings, payments } = this.sources();
      const group = <T>(rows: readonly T[], key: (r: T) => string | null) => {
        const m = new Map<string, T[]>();
        for (const r of rows) {
          const k = key(r);
          if (k === null) continue;
          const list = m.get(k);
          if (list) list.push(r);
          else m.set(k, [r]);
        }
        return m;
      };
      this.byEmail = {
        profiles: group(profiles, (p) => p.email),
        bookings: group(bookings, bookingEmail),
        payments: group(payments, (p) => p.user_id),
      };
    }
    const g = this.byEmail;
    return deriveUser(email, {
      profiles: g.profiles.get(email) ?? [],
      bookings: g.bookings.get(email) ?? [],
      payments: g.payments.get(userId(email)) ?? [],
    }) as unknown as JsonRow | null;
  }

  /** Legacy rows (refText) whose V2 rows make the user of this id: its bookings (and their payments) and profiles. */
  userOrigins(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    const add = (id: string, origin: string) => {
      let s = out.get(id);
      if (!s) {
        s = new Set();
        out.set(id, s);
      }
      s.add(origin);
    };
    for (const b of this.rows.get('bookings')?.values() ?? []) add(String(b.row.user_id), b.origin);
    for (const p of this.rows.get('customer_profiles')?.values() ?? [])
      add(userId(String(p.row.email)), p.origin);
    return out;
  }
}
