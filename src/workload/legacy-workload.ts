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

/**
 * The seed of the live writes that follow a seeding done by another process with `seed`: a different stream, so
 * they do not repeat the seeding's uuids (`replicator-workload run` after `replicator-workload seed`).
 */
export const liveSeed = (seed: number): number =>
  (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ 0x5bd1e995) >>> 0;

export interface WorkloadOptions {
  seed: number;
  /** Distinct customers (normalized emails); bookings share them, with case and whitespace variants. */
  customers: number;
  shops: number;
  /** Share of writes that produce invalid rows (bad email, unknown status, negative amount, bad products). */
  invalidShare: number;
  /** Size of `contactDetails.notes` for a tenth of the bookings, to exercise TOAST (> 4 KB); 0: none. */
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
type Status = (typeof STATUSES)[number];
/** A status no transform accepts: the row is dead-lettered (and counts as absent in V2). */
const INVALID_STATUS = 'LOST';
type TrackedStatus = Status | typeof INVALID_STATUS;

/**
 * A booking's life: PENDING → PAID → COMPLETED → ATTENDED, cancelled before payment, refunded after it (an attended
 * booking only by an explicit `refund`).
 */
const TRANSITIONS: Readonly<Record<TrackedStatus, readonly Status[]>> = {
  PENDING: ['PAID', 'PAID', 'PAID', 'CANCELLED'],
  PAID: ['COMPLETED', 'COMPLETED', 'COMPLETED', 'REFUNDED'],
  COMPLETED: ['ATTENDED', 'ATTENDED', 'ATTENDED', 'REFUNDED'],
  ATTENDED: [],
  CANCELLED: [],
  REFUNDED: [],
  LOST: [],
};
const REFUNDABLE: ReadonlySet<TrackedStatus> = new Set(['PAID', 'COMPLETED', 'ATTENDED']);
/** Statuses of the seeded (historic) bookings, weighted. */
const HISTORIC: readonly Status[] = [
  'PENDING',
  'PAID',
  'PAID',
  'COMPLETED',
  'COMPLETED',
  'COMPLETED',
  'ATTENDED',
  'ATTENDED',
  'CANCELLED',
  'REFUNDED',
];
const PAID_STATUSES: ReadonlySet<Status> = new Set(['PAID', 'COMPLETED', 'ATTENDED', 'REFUNDED']);

const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Radia', 'Ken'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Perlman', 'Thompson'];
const METHODS = ['card', 'paypal', 'bank'];

/** Every kind of write the generator makes. */
export const WRITE_KINDS = [
  'insert booking',
  'status transition',
  'refund',
  'change booking email',
  'delete booking',
  'upsert profile',
  'delete profile',
  'insert bundle',
  'change bundle products',
  'insert ai bundle',
  'toggle ai bundle',
] as const;
export type WriteKind = (typeof WRITE_KINDS)[number];

export interface Write {
  kind: WriteKind;
  /** The row it leaves is one a transform rejects (dead-lettered; absent in V2). */
  invalid: boolean;
  sql: string;
  params: unknown[];
}

interface Product {
  productId: string;
  variantId?: string;
  quantity?: number;
}

/** What earlier writes (or another process's seeding) left in the database, for `adopt`. */
export interface WorkloadState {
  /** Bookings in a stable order, with their status. */
  bookings: { id: string; status: string }[];
  /** The highest N of the `BK-<N>-…` references. */
  bookingSeq: number;
  /** Manual bundles: the N of their `bundleId` (`gid://shopify/Metaobject/<N>`) and their products. */
  bundles: { n: number; products: unknown }[];
  /** ai_fbt_bundles ids. */
  aiIds: number[];
}

const BUNDLE_GID = 'gid://shopify/Metaobject/';

/**
 * A realistic legacy write mix for the demo, the benchmarks and the tests: bookings whose emails are shared by
 * several bookings in case and whitespace variants, status transitions along a booking's life (payments,
 * cancellations, refunds), email changes, deletes, TOASTed `contactDetails.notes` (incompressible text > 4 KB, so
 * stored out of line), a key-value profile store, manual bundles (serial ids) whose product lists change (added,
 * removed, reordered, re-counted), AI bundles switched on and off, and a share of invalid rows of every table.
 *
 * Writes are generated from the seed and from what this generator itself wrote (it never reads the database; see
 * `adopt` to continue after another process), so the same seed gives the same writes. Each write is one statement
 * (its own transaction under autocommit); several may run at once through a pool — out-of-order updates of one row
 * are harmless, the pipeline replicates whatever legacy ends up holding.
 */
export class LegacyWorkload {
  private readonly random: () => number;
  private bookingSeq = 0;
  /** Booking ids (swap-removed on delete) and their status as last written. */
  private readonly bookings: string[] = [];
  private readonly status = new Map<string, TrackedStatus>();
  private bundleSeq = 0;
  private readonly bundles: number[] = [];
  private readonly products = new Map<number, Product[]>();
  private aiSeq = 0;
  private readonly ai: number[] = [];
  /** A virtual clock for the creation times of live inserts: deterministic, and moving forward. */
  private clock = Date.UTC(2025, 0, 1);

  constructor(private readonly o: WorkloadOptions = DEFAULT_WORKLOAD) {
    this.random = prng(o.seed);
  }

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  private invalid(): boolean {
    return this.chance(this.o.invalidShare);
  }

  /** A customer's email as some legacy screen typed it: case and surrounding white space vary. */
  private email(customer = this.int(this.o.customers)): string {
    const base = `customer${customer}@example.com`;
    switch (this.int(7)) {
      case 1:
        return base.toUpperCase();
      case 2:
        return `  ${base} `;
      case 3:
        return `Customer${customer}@Example.COM`;
      case 4:
        return `\t${base}\n`;
      case 5:
        // A no-break space pasted from a web page: JavaScript's trim removes it (PostgreSQL's would not).
        return `\u00a0Customer${customer}@example.com`;
      default:
        return base;
    }
  }

  private uuid(): string {
    const hex = (n: number) => Array.from({ length: n }, () => this.int(16).toString(16)).join('');
    return `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(12)}`;
  }

  /** Free text of random words: incompressible enough that PostgreSQL stores it out of line, not compressed inline. */
  private text(bytes: number): string {
    const parts: string[] = [];
    let size = 0;
    while (size < bytes) {
      const word = Array.from({ length: 2 + this.int(9) }, () => String.fromCharCode(97 + this.int(26))).join(
        '',
      );
      parts.push(word);
      size += word.length + 1;
    }
    return parts.join(' ').slice(0, bytes);
  }

  private contact(invalidEmail: boolean) {
    const notes =
      this.o.bigNotesBytes > 0 && this.chance(0.1)
        ? this.text(this.o.bigNotesBytes)
        : this.chance(0.2)
          ? this.text(20 + this.int(80))
          : undefined;
    return {
      email: invalidEmail ? this.pick(['not-an-email', '', 'n/a', 'customer@']) : this.email(),
      firstName: this.pick(FIRST),
      lastName: this.pick(LAST),
      phone: `+1-555-${String(this.int(10000)).padStart(4, '0')}`,
      company: this.chance(0.5) ? `${this.pick(LAST)} Ltd` : '',
      ...(notes !== undefined ? { notes } : {}),
    };
  }

  private tick(): string {
    this.clock += 1_000 + this.int(60_000);
    return new Date(this.clock).toISOString();
  }

  /**
   * Continue after writes made elsewhere (another process's seeding): bookings to move along, references and
   * bundle numbers not to reuse. With `readWorkloadState`, the database's state in a stable order.
   */
  adopt(state: WorkloadState): this {
    for (const b of state.bookings) {
      if (this.status.has(b.id)) continue;
      this.bookings.push(b.id);
      this.status.set(
        b.id,
        (STATUSES as readonly string[]).includes(b.status) ? (b.status as Status) : INVALID_STATUS,
      );
    }
    this.bookingSeq = Math.max(this.bookingSeq, state.bookingSeq);
    for (const b of state.bundles) {
      if (this.products.has(b.n)) continue;
      this.bundles.push(b.n);
      this.products.set(b.n, validProducts(b.products));
      this.bundleSeq = Math.max(this.bundleSeq, b.n);
    }
    for (const id of state.aiIds) {
      this.ai.push(id);
      this.aiSeq = Math.max(this.aiSeq, id);
    }
    return this;
  }

  /** Initial data: `bookings` bookings (history), a profile for every other customer, some bundles. */
  *seed(bookings: number): Generator<Write> {
    for (let c = 0; c < this.o.customers; c += 2) yield this.upsertProfile(c);
    for (let i = 0; i < bookings; i++) yield this.insertBooking(true);
    for (let i = 0; i < Math.max(5, bookings / 50); i++)
      yield this.chance(0.5) ? this.insertBundle() : this.insertAiBundle();
  }

  /** One live write, drawn from the mix. */
  next(): Write {
    const r = this.random();
    if (r < 0.25 || this.bookings.length === 0) return this.insertBooking();
    if (r < 0.49) return this.updateStatus();
    if (r < 0.52) return this.refund();
    if (r < 0.6) return this.changeEmail();
    if (r < 0.64) return this.deleteBooking();
    if (r < 0.76) return this.upsertProfile(this.int(this.o.customers));
    if (r < 0.79) return this.deleteProfile();
    if (r < 0.82 || this.bundles.length === 0) return this.insertBundle();
    if (r < 0.92) return this.changeProducts();
    if (r < 0.95 || this.ai.length === 0) return this.insertAiBundle();
    return this.toggleAi();
  }

  /** A new booking: historic ones (seeding) in any status during 2024; live ones pending or just paid, now. */
  insertBooking(historic = false): Write {
    const invalid = this.invalid();
    const id = this.uuid();
    const why = invalid ? this.pick(['email', 'status', 'amount'] as const) : 'valid';
    const status: TrackedStatus =
      why === 'status'
        ? INVALID_STATUS
        : historic
          ? this.pick(HISTORIC)
          : this.chance(0.7)
            ? 'PENDING'
            : 'PAID';
    this.bookings.push(id);
    this.status.set(id, status);
    const amount = why === 'amount' ? '-5.00' : (this.int(50000) / 100).toFixed(2);
    const created = historic
      ? new Date(Date.UTC(2024, 0, 1) + this.int(365 * 86400) * 1000).toISOString()
      : this.tick();
    const paid = status !== INVALID_STATUS && PAID_STATUSES.has(status);
    return {
      kind: 'insert booking',
      invalid,
      sql: `INSERT INTO bookings (id, "bookingReference", "contactDetails", status, "finalAmount", "paymentDate",
              "paymentMethod", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
      params: [
        id,
        `BK-${++this.bookingSeq}-${id.slice(0, 8)}`,
        JSON.stringify(this.contact(why === 'email')),
        status,
        amount,
        paid && this.chance(0.9) ? created : null,
        paid && this.chance(0.9) ? this.pick(METHODS) : null,
        created,
      ],
    };
  }

  /** A booking picked at random whose status satisfies `ok` (a few tries), or undefined. */
  private pickBooking(ok: (s: TrackedStatus) => boolean): string | undefined {
    for (let i = 0; i < 8 && this.bookings.length > 0; i++) {
      const id = this.pick(this.bookings);
      if (ok(this.status.get(id)!)) return id;
    }
    return undefined;
  }

  private setStatus(id: string, to: TrackedStatus, kind: WriteKind): Write {
    const from = this.status.get(id)!;
    this.status.set(id, to);
    const payment = from === 'PENDING' && to === 'PAID';
    return {
      kind,
      invalid: to === INVALID_STATUS,
      sql: payment
        ? `UPDATE bookings SET status = $2, "paymentDate" = now(), "paymentMethod" = $3, "updatedAt" = now()
            WHERE id = $1`
        : 'UPDATE bookings SET status = $2, "updatedAt" = now() WHERE id = $1',
      params: payment ? [id, to, this.pick(METHODS)] : [id, to],
    };
  }

  /** The next step of a booking's life (payment, completion, attendance, cancellation, refund). */
  updateStatus(): Write {
    const id = this.pickBooking((s) => TRANSITIONS[s].length > 0);
    if (id === undefined) return this.insertBooking();
    if (this.invalid()) return this.setStatus(id, INVALID_STATUS, 'status transition');
    const to = this.pick(TRANSITIONS[this.status.get(id)!]);
    return this.setStatus(id, to, to === 'REFUNDED' ? 'refund' : 'status transition');
  }

  /** A paid booking refunded (V2: its payment becomes `refunded`). */
  refund(): Write {
    const id = this.pickBooking((s) => REFUNDABLE.has(s));
    return id === undefined ? this.updateStatus() : this.setStatus(id, 'REFUNDED', 'refund');
  }

  /** The booking moves to another customer's email (both users are recomputed), or to an invalid one. */
  changeEmail(): Write {
    const invalid = this.invalid();
    return {
      kind: 'change booking email',
      invalid,
      sql: `UPDATE bookings SET "contactDetails" = jsonb_set("contactDetails", '{email}', to_jsonb($2::text)),
              "updatedAt" = now() WHERE id = $1`,
      params: [this.pick(this.bookings), invalid ? 'unknown' : this.email()],
    };
  }

  deleteBooking(): Write {
    const i = this.int(this.bookings.length);
    const id = this.bookings[i]!;
    this.bookings[i] = this.bookings[this.bookings.length - 1]!;
    this.bookings.pop();
    this.status.delete(id);
    return {
      kind: 'delete booking',
      invalid: false,
      sql: 'DELETE FROM bookings WHERE id = $1',
      params: [id],
    };
  }

  upsertProfile(customer: number): Write {
    const invalid = this.invalid();
    const name = this.chance(0.2) ? this.pick(FIRST) : `${this.pick(FIRST)}  ${this.pick(LAST)}`;
    const value = {
      customerId: invalid && this.chance(0.5) ? undefined : `c${customer}`,
      email: invalid ? '' : this.email(customer),
      name,
      companyName: this.chance(0.5) ? `${this.pick(LAST)} Inc` : null,
      plan: this.pick(['free', 'pro', 'enterprise']),
      status: this.pick(['active', 'churned']),
      createdAt: new Date(Date.UTC(2023, 0, 1) + this.int(365 * 86400) * 1000).toISOString(),
    };
    return {
      kind: 'upsert profile',
      invalid,
      sql: `INSERT INTO customers_kv (key, value, updated_at) VALUES ($1, $2, now())
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      params: [`customer_c${customer}`, JSON.stringify(value)],
    };
  }

  deleteProfile(): Write {
    return {
      kind: 'delete profile',
      invalid: false,
      sql: 'DELETE FROM customers_kv WHERE key = $1',
      params: [`customer_c${this.int(this.o.customers)}`],
    };
  }

  private product(): Product {
    return {
      productId: `gid://shopify/Product/${this.int(1000)}`,
      ...(this.chance(0.3) ? { variantId: `gid://shopify/ProductVariant/${this.int(1000)}` } : {}),
      ...(this.chance(0.5) ? { quantity: 1 + this.int(3) } : {}),
    };
  }

  /** A products list no transform accepts: a numeric product id, or a zero quantity. */
  private invalidProducts(): unknown[] {
    return this.chance(0.5)
      ? [{ productId: 42 }]
      : [{ productId: `gid://shopify/Product/${this.int(1000)}`, quantity: 0 }];
  }

  /** A manual bundle; its id comes from the table's serial (as the legacy app's), its `bundleId` from here. */
  insertBundle(): Write {
    const n = ++this.bundleSeq;
    const invalid = this.invalid();
    const products = Array.from({ length: 1 + this.int(4) }, () => this.product());
    this.bundles.push(n);
    this.products.set(n, products);
    return {
      kind: 'insert bundle',
      invalid,
      sql: `INSERT INTO bundle_discount_id ("bundleId", "bundleName", "discountId", shop, products, "discountPercent")
            VALUES ($1, $2, $3, $4, $5, $6)`,
      params: [
        `${BUNDLE_GID}${n}`,
        `${this.pick(['Summer', 'Winter', 'Starter', 'Pro'])} ${this.pick(['Set', 'Kit', 'Bundle'])} #${n}`,
        this.chance(0.6) ? `gid://shopify/DiscountNode/${n}` : null,
        `shop-${this.int(this.o.shops)}`,
        JSON.stringify(invalid ? this.invalidProducts() : products),
        (this.int(5000) / 100).toFixed(2),
      ],
    };
  }

  /** A merchant edits a bundle: a product added, removed, moved or re-counted (or, rarely, garbage). */
  changeProducts(): Write {
    const n = this.pick(this.bundles);
    const invalid = this.invalid();
    const list = [...(this.products.get(n) ?? [])];
    const edit = list.length === 0 ? 0 : this.int(4);
    if (edit === 0 || list.length === 0) list.splice(this.int(list.length + 1), 0, this.product());
    else if (edit === 1 && list.length > 1) list.splice(this.int(list.length), 1);
    else if (edit === 2 && list.length > 1) list.push(...list.splice(this.int(list.length - 1), 1));
    else {
      const i = this.int(list.length);
      const was = list[i]!.quantity ?? 1;
      const q = 1 + this.int(5);
      list[i] = { ...list[i]!, quantity: q === was ? (q % 5) + 1 : q };
    }
    if (!invalid) this.products.set(n, list);
    return {
      kind: 'change bundle products',
      invalid,
      sql: 'UPDATE bundle_discount_id SET products = $2 WHERE "bundleId" = $1',
      params: [`${BUNDLE_GID}${n}`, JSON.stringify(invalid ? this.invalidProducts() : list)],
    };
  }

  insertAiBundle(): Write {
    const id = ++this.aiSeq;
    this.ai.push(id);
    const invalid = this.invalid();
    const bundled: (string | null)[] = Array.from({ length: this.int(3) }, () => `p${this.int(1000)}`);
    // A NULL in the text[]: the transform rejects it.
    if (invalid) bundled.push(null);
    return {
      kind: 'insert ai bundle',
      invalid,
      sql: `INSERT INTO ai_fbt_bundles (id, shop, "productId", "bundledProductIds", "bundleMetaobjectId", "discountId",
              "confidenceScore", support, lift, "isActive") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      params: [
        id,
        `shop-${this.int(this.o.shops)}`,
        `p${this.int(1000)}`,
        bundled,
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
      invalid: false,
      sql: 'UPDATE ai_fbt_bundles SET "isActive" = NOT "isActive" WHERE id = $1',
      params: [this.pick(this.ai)],
    };
  }
}

/** The products of a stored bundle, as the generator's own list (an invalid list restarts empty). */
function validProducts(v: unknown): Product[] {
  if (!Array.isArray(v)) return [];
  const out: Product[] = [];
  for (const p of v) {
    if (!p || typeof p !== 'object' || typeof (p as Product).productId !== 'string') return [];
    const { productId, variantId, quantity } = p as Product;
    if (quantity !== undefined && !(Number.isInteger(quantity) && quantity >= 1)) return [];
    out.push({
      productId,
      ...(typeof variantId === 'string' ? { variantId } : {}),
      ...(quantity !== undefined ? { quantity } : {}),
    });
  }
  return out;
}

/** The legacy database's state for `LegacyWorkload.adopt`, in a stable order (so a run stays reproducible). */
export async function readWorkloadState(client: pg.ClientBase): Promise<WorkloadState> {
  const bookings = (
    await client.query<{ id: string; status: string }>('SELECT id::text, status FROM bookings ORDER BY id')
  ).rows;
  const seq = (
    await client.query<{ n: number | null }>(
      `SELECT max(split_part("bookingReference", '-', 2)::int) AS n FROM bookings
        WHERE "bookingReference" ~ '^BK-[0-9]+-'`,
    )
  ).rows[0]?.n;
  const bundles = (
    await client.query<{ n: number; products: unknown }>(
      `SELECT substr("bundleId", $1)::int AS n, products FROM bundle_discount_id
        WHERE "bundleId" ~ '^gid://shopify/Metaobject/[0-9]+$' ORDER BY 1`,
      [BUNDLE_GID.length + 1],
    )
  ).rows;
  const aiIds = (await client.query<{ id: number }>('SELECT id FROM ai_fbt_bundles ORDER BY id')).rows.map(
    (r) => r.id,
  );
  return { bookings, bookingSeq: seq ?? 0, bundles, aiIds };
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
