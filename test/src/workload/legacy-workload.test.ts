import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  LegacyWorkload,
  liveSeed,
  type WorkloadOptions,
  type WorkloadState,
  WRITE_KINDS,
  type Write,
} from '../../../src/workload/legacy-workload.js';
import { dueAt, parseDuration, percentile, runOpenLoop } from '../../../src/workload/open-loop.js';
import { normalizeEmail } from '../../../transforms/email.js';

const OPTIONS: WorkloadOptions = {
  seed: 7,
  customers: 50,
  shops: 3,
  invalidShare: 0.05,
  bigNotesBytes: 6000,
};

function writes(o: WorkloadOptions, seedBookings: number, live: number): Write[] {
  const w = new LegacyWorkload(o);
  const out = [...w.seed(seedBookings)];
  for (let i = 0; i < live; i++) out.push(w.next());
  return out;
}

const table = (w: Write) => /(?:INTO|UPDATE|FROM)\s+(\w+)/.exec(w.sql)![1]!;
const contact = (w: Write) => JSON.parse(w.params[2] as string) as { email: string; notes?: string };

/** What the writes leave, modelled from their parameters: each booking's status, each bundle's products. */
function model(ws: Write[]) {
  const status = new Map<string, string>();
  const transitions: { from: string; to: string; kind: string }[] = [];
  for (const w of ws) {
    if (w.kind === 'insert booking') status.set(w.params[0] as string, w.params[3] as string);
    else if (w.kind === 'status transition' || w.kind === 'refund') {
      const id = w.params[0] as string;
      transitions.push({ from: status.get(id)!, to: w.params[1] as string, kind: w.kind });
      status.set(id, w.params[1] as string);
    } else if (w.kind === 'delete booking') status.delete(w.params[0] as string);
  }
  return { status, transitions };
}

describe('LegacyWorkload', () => {
  it('is deterministic: the same seed gives the same writes, another seed others', () => {
    const a = writes(OPTIONS, 200, 3000);
    const b = writes(OPTIONS, 200, 3000);
    expect(b).toEqual(a);
    const c = writes({ ...OPTIONS, seed: 8 }, 200, 3000);
    expect(c).not.toEqual(a);
    expect(liveSeed(7)).toBe(liveSeed(7));
    expect(liveSeed(7)).not.toBe(7);
  });

  it('the live mix contains every kind of write, and invalid rows of every table', () => {
    const live = writes(OPTIONS, 200, 5000).slice(-5000);
    const kinds = new Set(live.map((w) => w.kind));
    expect([...kinds].sort()).toEqual([...WRITE_KINDS].sort());
    const invalidTables = new Set(live.filter((w) => w.invalid).map(table));
    expect([...invalidTables].sort()).toEqual([
      'ai_fbt_bundles',
      'bookings',
      'bundle_discount_id',
      'customers_kv',
    ]);
    const share = live.filter((w) => w.invalid).length / live.length;
    expect(share).toBeGreaterThan(0.01);
    expect(share).toBeLessThan(0.1);
    // No invalid rows when asked for none.
    expect(writes({ ...OPTIONS, invalidShare: 0 }, 100, 2000).some((w) => w.invalid)).toBe(false);
  });

  it('shares each customer’s email between bookings, in case and white-space variants', () => {
    const bookings = writes(OPTIONS, 500, 0).filter((w) => w.kind === 'insert booking' && !w.invalid);
    const byCustomer = new Map<string, Set<string>>();
    for (const w of bookings) {
      const raw = contact(w).email;
      const email = normalizeEmail(raw)!;
      expect(email).toMatch(/^customer\d+@example\.com$/);
      byCustomer.set(email, (byCustomer.get(email) ?? new Set()).add(raw));
    }
    // 500 bookings over 50 customers: every customer has several, typed differently.
    const variants = [...byCustomer.values()];
    expect(variants.filter((v) => v.size >= 3).length).toBeGreaterThan(40);
    const all = variants.flatMap((v) => [...v]);
    expect(all.some((e) => e !== e.trim())).toBe(true);
    expect(all.some((e) => /[A-Z]/.test(e))).toBe(true);
    expect(all.some((e) => e.startsWith('\u00a0'))).toBe(true);
  });

  it('writes TOASTed notes: over 4 kB and incompressible enough to be stored out of line', () => {
    const notes = writes(OPTIONS, 500, 0)
      .filter((w) => w.kind === 'insert booking')
      .map((w) => contact(w).notes)
      .filter((n): n is string => n !== undefined && n.length > 4096);
    expect(notes.length).toBeGreaterThan(20);
    for (const n of notes) {
      // PostgreSQL keeps a value compressed inline only if pglz (LZ matches only) saves 25%; even deflate, which
      // adds Huffman coding of the 27 symbols, cannot halve random words.
      expect(deflateSync(n).length / n.length).toBeGreaterThan(0.5);
      // No long repeats for LZ to reuse.
      const grams = new Set<string>();
      for (let i = 0; i + 12 <= n.length; i++) grams.add(n.slice(i, i + 12));
      expect(grams.size).toBe(n.length - 11);
    }
  });

  it('moves bookings along their life: payments, cancellations, refunds; refunds only after a payment', () => {
    const ws = writes(OPTIONS, 300, 5000);
    const { transitions } = model(ws);
    const allowed: Record<string, string[]> = {
      PENDING: ['PAID', 'CANCELLED'],
      PAID: ['COMPLETED', 'REFUNDED'],
      COMPLETED: ['ATTENDED', 'REFUNDED'],
    };
    expect(transitions.length).toBeGreaterThan(500);
    for (const t of transitions) {
      if (t.to === 'LOST') continue; // an invalid row on purpose
      expect(t.kind === 'refund').toBe(t.to === 'REFUNDED');
      if (t.kind === 'refund') expect(['PAID', 'COMPLETED', 'ATTENDED']).toContain(t.from);
      else expect(allowed[t.from], `${t.from} → ${t.to}`).toContain(t.to);
    }
    const tos = new Set(transitions.map((t) => t.to));
    for (const s of ['PAID', 'COMPLETED', 'ATTENDED', 'CANCELLED', 'REFUNDED', 'LOST'])
      expect(tos).toContain(s);
    // A payment sets the payment date and method.
    const pay = ws.find((w) => w.kind === 'status transition' && w.params[1] === 'PAID')!;
    expect(pay.sql).toContain('"paymentDate" = now()');
    expect(pay.params[2]).toMatch(/^(card|paypal|bank)$/);
  });

  it('changes bundle product lists: products added, removed, moved and re-counted', () => {
    const ws = writes({ ...OPTIONS, invalidShare: 0 }, 300, 5000);
    const lists = new Map<string, unknown[]>();
    let changed = 0;
    const edits = new Set<string>();
    for (const w of ws) {
      if (w.kind === 'insert bundle') lists.set(w.params[0] as string, JSON.parse(w.params[4] as string));
      if (w.kind !== 'change bundle products') continue;
      const before = lists.get(w.params[0] as string)!;
      const after = JSON.parse(w.params[1] as string) as unknown[];
      expect(after).not.toEqual(before);
      changed++;
      if (after.length > before.length) edits.add('added');
      else if (after.length < before.length) edits.add('removed');
      else if (
        JSON.stringify([...after].map((x) => JSON.stringify(x)).sort()) ===
        JSON.stringify([...before].map((x) => JSON.stringify(x)).sort())
      )
        edits.add('moved');
      else edits.add('re-counted');
      lists.set(w.params[0] as string, after);
    }
    expect(changed).toBeGreaterThan(200);
    expect([...edits].sort()).toEqual(['added', 'moved', 're-counted', 'removed']);
  });

  it('adopts a database seeded elsewhere: continues its bookings, reuses no reference, bundle or AI id', () => {
    const seeded = writes(OPTIONS, 300, 0);
    const bookings = seeded
      .filter((w) => w.kind === 'insert booking')
      .map((w) => ({ id: w.params[0] as string, status: w.params[3] as string }))
      .sort((a, b) => a.id.localeCompare(b.id));
    const refs = seeded.filter((w) => w.kind === 'insert booking').map((w) => w.params[1] as string);
    const bundles = seeded
      .filter((w) => w.kind === 'insert bundle')
      .map((w) => ({
        n: Number((w.params[0] as string).split('/').pop()),
        products: JSON.parse(w.params[4] as string),
      }));
    const aiIds = seeded.filter((w) => w.kind === 'insert ai bundle').map((w) => w.params[0] as number);
    const state: WorkloadState = { bookings, bookingSeq: refs.length, bundles, aiIds };

    const run = (n: number) => {
      const w = new LegacyWorkload({ ...OPTIONS, seed: liveSeed(OPTIONS.seed) }).adopt(state);
      return Array.from({ length: n }, () => w.next());
    };
    const live = run(3000);
    expect(run(3000)).toEqual(live);
    const known = new Set(bookings.map((b) => b.id));
    const newRefs = live.filter((w) => w.kind === 'insert booking').map((w) => w.params[1] as string);
    for (const r of newRefs) expect(refs).not.toContain(r);
    for (const w of live.filter((x) => x.kind === 'insert booking'))
      expect(known.has(w.params[0] as string)).toBe(false);
    const maxBundle = Math.max(...bundles.map((b) => b.n));
    for (const w of live.filter((x) => x.kind === 'insert bundle'))
      expect(Number((w.params[0] as string).split('/').pop())).toBeGreaterThan(maxBundle);
    for (const w of live.filter((x) => x.kind === 'insert ai bundle'))
      expect(w.params[0] as number).toBeGreaterThan(Math.max(...aiIds));
    // Updates touch the adopted bookings from the first write on.
    const touched = live.filter((w) => w.kind === 'status transition' || w.kind === 'change booking email');
    expect(touched.some((w) => known.has(w.params[0] as string))).toBe(true);
  });
});

describe('open loop', () => {
  it('issues every write on schedule whatever the earlier ones take, and measures from the due time', async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const w = new LegacyWorkload(OPTIONS);
    let concurrent = 0;
    let peak = 0;
    const r = await runOpenLoop({
      rate: 500,
      durationMs: 400,
      next: () => w.next(),
      execute: async () => {
        peak = Math.max(peak, ++concurrent);
        await sleep(150);
        concurrent--;
      },
    });
    // 500/s for 0.4 s: 200 writes, although each takes 150 ms (a closed loop of one would manage 3).
    expect(r.issued).toBe(200);
    expect(r.committed).toBe(200);
    expect(r.failed).toBe(0);
    expect(peak).toBeGreaterThan(50);
    expect(r.latency.p50).toBeGreaterThanOrEqual(149);
    expect(Object.values(r.kinds).reduce((a, b) => a + b, 0)).toBe(200);
  });

  it('counts failures by message', async () => {
    const w = new LegacyWorkload(OPTIONS);
    let n = 0;
    const r = await runOpenLoop({
      rate: 1000,
      durationMs: 50,
      next: () => w.next(),
      execute: async () => {
        if (n++ % 2) throw new Error('boom');
      },
    });
    expect(r.issued).toBe(50);
    expect(r.failed).toBe(25);
    expect(r.errors).toEqual({ boom: 25 });
  });

  it('schedule, percentiles and durations', () => {
    expect(dueAt(0, 200)).toBe(0);
    expect(dueAt(200, 200)).toBe(1000);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
    expect(percentile([], 50)).toBeNaN();
    expect(parseDuration('60')).toBe(60_000);
    expect(parseDuration('1500ms')).toBe(1500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(() => parseDuration('soon')).toThrow();
  });
});
