import type pg from 'pg';

/** Deterministic PRNG (mulberry32): the same seed gives the same workload. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadOptions {
  seed: number;
  /** Distinct customers (normalized emails); bookings share them, with case and whitespace variants. */
  customers: number;
  shops: number;
  /** Share of writes that produce invalid rows (bad email, unknown status, negative amount, bad products). */
  invalidShare: number;
  /** Size of `contactDetails.notes` for some bookings, to exercise TOAST (> 4 KB). */
  bigNotesBytes: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  seed: 42,
  customers: 200,
  shops: 3,
  invalidShare: 0.02,
  bigNotesBytes: 6000,
};

const STATUSES = ['PENDING', 'PAID', 'COMPLETED', 'ATTENDED', 'CANCELLED', 'REFUNDED'] as const;
const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Radia', 'Ken'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Perlman', 'Thompson'];

export interface Write {
  kind: string;
  sql: string;
  params: unknown[];
}

/**
 * A realistic legacy write mix for the demo, the benchmarks and the tests: bookings whose emails are shared in
 * case/whitespace variants, status transitions with refunds, email changes, deletes, TOASTed notes, a KV profile
 * store, bundles whose product lists change, and a share of invalid rows. Writes are generated from the seed and
 * from what this generator itself inserted (it never reads the database), so a run is reproducible.
 */
export class LegacyWorkload {
  private readonly random: () => number;
  private bookingSeq = 0;
  private readonly bookings: string[] = [];
  private bundleSeq = 0;
  private readonly bundles: number[] = [];
  private aiSeq = 0;
  private readonly ai: number[] = [];

  constructor(private readonly o: WorkloadOptions = DEFAULT_WORKLOAD) {
    this.random = prng(o.seed);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.random() * xs.length)]!;
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  /** A customer's email as some legacy screen typed it: case and surrounding spaces vary. */
  private email(customer = Math.floor(this.random() * this.o.customers)): string {
    const base = `customer${customer}@example.com`;
    const variant = Math.floor(this.random() * 4);
    if (variant === 1) return base.toUpperCase();
    if (variant === 2) return `  ${base} `;
    if (variant === 3) return `Customer${customer}@Example.COM`;
    return base;
  }

  private uuid(): string {
    const hex = (n: number) =>
      Array.from({ length: n }, () => Math.floor(this.random() * 16).toString(16)).join('');
    return `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(12)}`;
  }

  private contact(invalid: boolean) {
    const notes = this.chance(0.1) ? 'x'.repeat(this.o.bigNotesBytes) : undefined;
    return {
      email: invalid ? 'not-an-email' : this.email(),
      firstName: this.pick(FIRST),
      lastName: this.pick(LAST),
      phone: `+1-555-${String(Math.floor(this.random() * 10000)).padStart(4, '0')}`,
      company: this.chance(0.5) ? `${this.pick(LAST)} Ltd` : '',
      ...(notes ? { notes } : {}),
    };
  }

  /** Initial data: `bookings` bookings, a profile per customer for half of them, some bundles. */
  *seed(bookings: number): Generator<Write> {
    for (let c = 0; c < this.o.customers; c += 2) yield this.upsertProfile(c);
    for (let i = 0; i < bookings; i++) yield this.insertBooking();
    for (let i = 0; i < Math.max(5, bookings / 50); i++)
      yield this.chance(0.5) ? this.insertBundle() : this.insertAiBundle();
  }

  /** One live write, drawn from the mix. */
  next(): Write {
    const r = this.random();
    if (r < 0.3 || this.bookings.length === 0) return this.insertBooking();
    if (r < 0.6) return this.updateStatus();
    if (r < 0.68) return this.changeEmail();
    if (r < 0.72) return this.deleteBooking();
    if (r < 0.82) return this.upsertProfile(Math.floor(this.random() * this.o.customers));
    if (r < 0.85) return this.deleteProfile();
    if (r < 0.92)
      return this.bundles.length > 0 && this.chance(0.7) ? this.changeProducts() : this.insertBundle();
    return this.ai.length > 0 && this.chance(0.5) ? this.toggleAi() : this.insertAiBundle();
  }

  insertBooking(): Write {
    const invalid = this.chance(this.o.invalidShare);
    const id = this.uuid();
    this.bookings.push(id);
    const kind = invalid ? this.pick(['email', 'status', 'amount']) : 'valid';
    const amount = kind === 'amount' ? '-5.00' : (Math.floor(this.random() * 50000) / 100).toFixed(2);
    const status = kind === 'status' ? 'LOST' : this.pick(STATUSES);
    const created = new Date(Date.UTC(2024, 0, 1) + Math.floor(this.random() * 365 * 86400e3)).toISOString();
    return {
      kind: `insert booking${invalid ? ' (invalid)' : ''}`,
      sql: `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount", "paymentDate",
              "paymentMethod", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
      params: [
        id,
        `BK-${++this.bookingSeq}-${id.slice(0, 8)}`,
        JSON.stringify(this.contact(kind === 'email')),
        status,
        amount,
        status === 'PAID' && this.chance(0.7) ? created : null,
        this.chance(0.3) ? null : this.pick(['card', 'paypal', 'bank']),
        created,
      ],
    };
  }

  updateStatus(): Write {
    return {
      kind: 'update booking status',
      sql: 'UPDATE bookings SET status = $2, "updatedAt" = now() WHERE id = $1',
      params: [this.pick(this.bookings), this.pick(STATUSES)],
    };
  }

  changeEmail(): Write {
    return {
      kind: 'change booking email',
      sql: `UPDATE bookings SET "contactDetails" = jsonb_set("contactDetails", '{email}', to_jsonb($2::text)),
              "updatedAt" = now() WHERE id = $1`,
      params: [this.pick(this.bookings), this.email()],
    };
  }

  deleteBooking(): Write {
    const i = Math.floor(this.random() * this.bookings.length);
    const [id] = this.bookings.splice(i, 1);
    return { kind: 'delete booking', sql: 'DELETE FROM bookings WHERE id = $1', params: [id] };
  }

  upsertProfile(customer: number): Write {
    const invalid = this.chance(this.o.invalidShare);
    const name = this.chance(0.2) ? this.pick(FIRST) : `${this.pick(FIRST)}  ${this.pick(LAST)}`;
    const value = {
      customerId: invalid && this.chance(0.5) ? undefined : `c${customer}`,
      email: invalid ? '' : this.email(customer),
      name,
      companyName: this.chance(0.5) ? `${this.pick(LAST)} Inc` : null,
      plan: this.pick(['free', 'pro', 'enterprise']),
      status: this.pick(['active', 'churned']),
      createdAt: new Date(Date.UTC(2023, 0, 1) + Math.floor(this.random() * 365 * 86400e3)).toISOString(),
    };
    return {
      kind: `upsert profile${invalid ? ' (invalid)' : ''}`,
      sql: `INSERT INTO customers_kv (key, value, updated_at) VALUES ($1, $2, now())
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      params: [`customer_c${customer}`, JSON.stringify(value)],
    };
  }

  deleteProfile(): Write {
    return {
      kind: 'delete profile',
      sql: 'DELETE FROM customers_kv WHERE key = $1',
      params: [`customer_c${Math.floor(this.random() * this.o.customers)}`],
    };
  }

  private products(invalid: boolean) {
    if (invalid) return [{ productId: 42 }];
    return Array.from({ length: 1 + Math.floor(this.random() * 4) }, () => ({
      productId: `gid://shopify/Product/${Math.floor(this.random() * 1000)}`,
      ...(this.chance(0.3)
        ? { variantId: `gid://shopify/ProductVariant/${Math.floor(this.random() * 1000)}` }
        : {}),
      ...(this.chance(0.5) ? { quantity: 1 + Math.floor(this.random() * 3) } : {}),
    }));
  }

  insertBundle(): Write {
    const id = ++this.bundleSeq;
    this.bundles.push(id);
    const invalid = this.chance(this.o.invalidShare);
    return {
      kind: `insert bundle${invalid ? ' (invalid)' : ''}`,
      sql: `INSERT INTO bundle_discount_id (id, "bundleId", "bundleName", "discountId", shop, products, "discountPercent")
            VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      params: [
        id,
        `gid://shopify/Metaobject/${id}`,
        `${this.pick(['Summer', 'Winter', 'Starter', 'Pro'])} ${this.pick(['Set', 'Kit', 'Bundle'])} #${id}`,
        this.chance(0.6) ? `gid://shopify/DiscountNode/${id}` : null,
        `shop-${Math.floor(this.random() * this.o.shops)}`,
        JSON.stringify(this.products(invalid)),
        (Math.floor(this.random() * 5000) / 100).toFixed(2),
      ],
    };
  }

  changeProducts(): Write {
    return {
      kind: 'change bundle products',
      sql: 'UPDATE bundle_discount_id SET products = $2 WHERE id = $1',
      params: [this.pick(this.bundles), JSON.stringify(this.products(this.chance(this.o.invalidShare)))],
    };
  }

  insertAiBundle(): Write {
    const id = ++this.aiSeq;
    this.ai.push(id);
    return {
      kind: 'insert ai bundle',
      sql: `INSERT INTO ai_fbt_bundles (id, shop, "productId", "bundledProductIds", "bundleMetaobjectId", "discountId",
              "confidenceScore", support, lift, "isActive") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      params: [
        id,
        `shop-${Math.floor(this.random() * this.o.shops)}`,
        `p${Math.floor(this.random() * 1000)}`,
        Array.from({ length: Math.floor(this.random() * 3) }, () => `p${Math.floor(this.random() * 1000)}`),
        this.chance(0.5) ? `gid://shopify/Metaobject/ai-${id}` : null,
        this.chance(0.4) ? `gid://shopify/DiscountNode/ai-${id}` : null,
        Math.round(this.random() * 1000) / 1000,
        Math.round(this.random() * 1000) / 1000,
        1 + Math.round(this.random() * 1000) / 1000,
        this.chance(0.8),
      ],
    };
  }

  toggleAi(): Write {
    return {
      kind: 'toggle ai bundle',
      sql: 'UPDATE ai_fbt_bundles SET "isActive" = NOT "isActive" WHERE id = $1',
      params: [this.pick(this.ai)],
    };
  }
}

/** Applies writes one by one (each its own transaction); returns how many committed. */
export async function applyWrites(client: pg.ClientBase, writes: Iterable<Write>): Promise<number> {
  let n = 0;
  for (const w of writes) {
    await client.query(w.sql, w.params);
    n++;
  }
  return n;
}
