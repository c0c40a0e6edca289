import pg from 'pg';
import { type CutoverPhase, type ShopCutoverState, shopCutoverState } from '../../contracts/cutover-phase.js';
import { ErrorCodes, ReplicatorError, withEndpoint } from '../../core/errors.js';
import type { ReplicatorConfig } from '../../pipeline/config/load-config.js';

/** One shop's cutover, as `replicator cutover status` lists it. */
export interface ShopCutoverStatus {
  shop: string;
  state: ShopCutoverState;
  /** Its latest (non-dry-run) cutover, if any. */
  cutover: {
    id: string;
    phase: CutoverPhase;
    startedAt: string;
    /** Write-blocked window in ms (fence → flip, or → unfence when it aborted); null while it runs. */
    windowMs: number | null;
    error: string | null;
  } | null;
  /** Rows that differed for this shop in the last finished `replicator verify` (null: not in it). */
  drift: number | null;
}

/**
 * Every shop — those V2 bundles name, those the last verify counted, those with a cutover — with the state of its
 * latest per-shop cutover (`replicator cutover --shop`), its window and the drift the last verify found for it.
 */
export async function readCutoverStatus(client: pg.ClientBase): Promise<ShopCutoverStatus[]> {
  const has = async (name: string) =>
    (await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [name])).rows[0]!.ok;
  const shops = new Map<string, ShopCutoverStatus>();
  const shop = (name: string) => {
    let s = shops.get(name);
    if (!s) {
      s = { shop: name, state: 'pending', cutover: null, drift: null };
      shops.set(name, s);
    }
    return s;
  };
  if (await has('public.bundles'))
    for (const r of (await client.query<{ shop: string }>('SELECT DISTINCT shop FROM bundles')).rows)
      shop(r.shop);
  if (await has('replicator.verify_runs')) {
    const { rows } = await client.query<{ shops: { shop: string; drift: number }[] | null }>(
      `SELECT summary->'shops' AS shops FROM replicator.verify_runs
        WHERE finished_at IS NOT NULL ORDER BY started_at DESC, finished_at DESC LIMIT 1`,
    );
    for (const s of rows[0]?.shops ?? []) shop(s.shop).drift = s.drift;
  }
  if (await has('replicator.cutovers')) {
    const { rows } = await client.query<{
      shop: string;
      id: string;
      phase: CutoverPhase;
      started_at: string;
      ms: number | null;
      error: string | null;
    }>(
      `SELECT DISTINCT ON (shop) shop, id, phase, started_at::text, write_blocked_ms AS ms, error
         FROM replicator.cutovers WHERE shop IS NOT NULL AND NOT dry_run ORDER BY shop, started_at DESC`,
    );
    for (const r of rows) {
      const s = shop(r.shop);
      s.state = shopCutoverState(r.phase);
      s.cutover = { id: r.id, phase: r.phase, startedAt: r.started_at, windowMs: r.ms, error: r.error };
    }
  }
  return [...shops.values()].sort((a, b) => (a.shop < b.shop ? -1 : a.shop > b.shop ? 1 : 0));
}

/** `replicator cutover status`: readCutoverStatus on the configured target. */
export async function cutoverStatus(config: ReplicatorConfig): Promise<ShopCutoverStatus[]> {
  if (!config.target) throw new ReplicatorError(ErrorCodes.CONFIG_INVALID, 'cutover status needs target.url');
  const client = new pg.Client({ connectionString: config.target.url });
  client.on('error', () => {});
  await withEndpoint({ kind: 'postgres', url: config.target.url, role: 'target' }, () => client.connect());
  try {
    return await readCutoverStatus(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The table `replicator cutover status` prints. */
export function renderCutoverStatus(shops: readonly ShopCutoverStatus[]): string {
  if (shops.length === 0) return 'no shops: no V2 bundles, verify or per-shop cutover names one';
  const rows = [
    ['shop', 'state', 'last window', 'drift', 'cutover'],
    ...shops.map((s) => [
      s.shop,
      s.state,
      s.cutover?.windowMs == null ? '-' : `${Math.round(s.cutover.windowMs)} ms`,
      s.drift === null ? '-' : String(s.drift),
      s.cutover
        ? `${s.cutover.id.slice(0, 8)} ${s.cutover.phase} ${s.cutover.startedAt}${s.cutover.error ? `: ${s.cutover.error}` : ''}`
        : '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}
