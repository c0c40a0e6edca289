import type { JsonRow, V2Entity, V2Op } from '../../src/contracts/transform-api.js';
import { userId } from '../../transforms/ids.js';
import { deriveUser } from '../../transforms/users.js';
import {
  bookingSchema,
  customerProfileSchema,
  paymentSchema,
  V2_KEYS,
  V2Schemas,
} from '../../transforms/v2-schema.js';

/**
 * A tiny in-memory V2 database for tests: a Map per entity, the V2 foreign keys (checked on upsert, cascading on
 * delete) and users recomputed with deriveUser. `applyOp` applies one operation as is; `applyUnit` applies one
 * legacy row's operations the way the sink must: ops in order, then what the row produced before and no longer
 * produces (its lineage) removed, then every user it names now or named before recomputed — last, so a removed
 * payment is not counted.
 */

const ENTITIES: readonly V2Entity[] = [
  'users',
  'customer_profiles',
  'bookings',
  'payments',
  'bundles',
  'bundle_components',
  'bundle_discounts',
];

/** Child → its parent through `column` (payments.booking_id → bookings.id, …); users are the sink's placeholders. */
const PARENT: Partial<Record<V2Entity, { parent: V2Entity; column: string }>> = {
  payments: { parent: 'bookings', column: 'booking_id' },
  bundle_components: { parent: 'bundles', column: 'bundle_id' },
  bundle_discounts: { parent: 'bundles', column: 'bundle_id' },
};

export type V2Snapshot = Record<V2Entity, JsonRow[]>;

interface Lineage {
  rows: { entity: V2Entity; key: string }[];
  emails: string[];
}

function keyString(entity: V2Entity, row: JsonRow): string {
  return JSON.stringify(V2_KEYS[entity].map((column) => row[column] ?? null));
}

export class V2Model {
  private readonly tables = new Map<V2Entity, Map<string, JsonRow>>(ENTITIES.map((e) => [e, new Map()]));
  private readonly lineage = new Map<string, Lineage>();

  applyOp(op: V2Op): void {
    switch (op.kind) {
      case 'upsert':
        this.upsert(op.entity, op.row);
        break;
      case 'delete':
        this.delete(op.entity, keyString(op.entity, op.key));
        break;
      case 'replace-children': {
        const table = this.table(op.entity);
        for (const [key, row] of [...table]) {
          if (Object.entries(op.parentKey).every(([c, v]) => row[c] === v)) this.delete(op.entity, key);
        }
        for (const row of op.rows) this.upsert(op.entity, row);
        break;
      }
      case 'recompute-derived':
        for (const email of op.keys) this.recomputeUser(email);
        break;
    }
  }

  applyUnit(sourceKey: string, ops: readonly V2Op[]): void {
    const produced: Lineage = { rows: [], emails: [] };
    for (const op of ops) {
      if (op.kind === 'recompute-derived') {
        produced.emails.push(...op.keys);
        continue;
      }
      this.applyOp(op);
      if (op.kind === 'upsert') produced.rows.push({ entity: op.entity, key: keyString(op.entity, op.row) });
      if (op.kind === 'replace-children') {
        for (const row of op.rows) produced.rows.push({ entity: op.entity, key: keyString(op.entity, row) });
      }
    }
    const previous = this.lineage.get(sourceKey);
    const kept = new Set(produced.rows.map((r) => `${r.entity}|${r.key}`));
    for (const r of previous?.rows ?? []) if (!kept.has(`${r.entity}|${r.key}`)) this.delete(r.entity, r.key);
    for (const email of new Set([...produced.emails, ...(previous?.emails ?? [])])) this.recomputeUser(email);
    if (produced.rows.length === 0 && produced.emails.length === 0) this.lineage.delete(sourceKey);
    else this.lineage.set(sourceKey, produced);
  }

  rows(entity: V2Entity): JsonRow[] {
    return [...this.table(entity)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
  }

  snapshot(): V2Snapshot {
    return Object.fromEntries(ENTITIES.map((e) => [e, this.rows(e)])) as V2Snapshot;
  }

  private table(entity: V2Entity): Map<string, JsonRow> {
    return this.tables.get(entity)!;
  }

  private upsert(entity: V2Entity, row: JsonRow): void {
    V2Schemas[entity].parse(row);
    const fk = PARENT[entity];
    if (
      fk !== undefined &&
      !this.table(fk.parent).has(keyString(fk.parent, { id: row[fk.column] ?? null }))
    ) {
      throw new Error(`${entity} row references a missing ${fk.parent} row: ${JSON.stringify(row)}`);
    }
    this.table(entity).set(keyString(entity, row), row);
  }

  private delete(entity: V2Entity, key: string): void {
    const row = this.table(entity).get(key);
    if (row === undefined) return;
    this.table(entity).delete(key);
    // ON DELETE CASCADE
    for (const [child, fk] of Object.entries(PARENT) as [V2Entity, { parent: V2Entity; column: string }][]) {
      if (fk.parent !== entity) continue;
      for (const [childKey, childRow] of [...this.table(child)]) {
        if (childRow[fk.column] === row.id) this.delete(child, childKey);
      }
    }
  }

  private recomputeUser(email: string): void {
    const user = deriveUser(email, {
      profiles: this.rows('customer_profiles').map((r) => customerProfileSchema.parse(r)),
      bookings: this.rows('bookings').map((r) => bookingSchema.parse(r)),
      payments: this.rows('payments').map((r) => paymentSchema.parse(r)),
    });
    const key = keyString('users', { id: userId(email) });
    if (user === null) this.table('users').delete(key);
    else this.upsert('users', user);
  }
}
