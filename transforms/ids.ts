import { createHash } from 'node:crypto';
import { v5 as uuidLibV5 } from 'uuid';

/**
 * Deterministic V2 ids (uuid v5), so a replay, a re-snapshot or a second replicator computes the same ids as the
 * first. The namespaces are fixed forever: changing one would orphan every V2 row already written.
 */
export const USERS_NS = '5770a4fd-5e50-48a8-8c8a-3cc05d0b5a47';
export const PAYMENTS_NS = 'a42880e4-24c4-47fa-b300-a849e46ce4d6';
export const BUNDLES_NS = '72752b09-931f-4735-bd6e-dfe1636eacdb';

const namespaceBytes = (ns: string) => Buffer.from(ns.replaceAll('-', ''), 'hex');
const NAMESPACES = new Map([USERS_NS, PAYMENTS_NS, BUNDLES_NS].map((ns) => [ns, namespaceBytes(ns)]));
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * RFC 9562 uuid v5 (what the `uuid` package's v5 computes, byte for byte) with node's SHA-1 and the namespace
 * parsed once: these ids are computed for every row a transform maps, and verify maps whole tables. Names with
 * surrogates go to the package itself, so a lone surrogate behaves exactly as it does there.
 */
function uuidv5(name: string, namespace: string): string {
  const ns = NAMESPACES.get(namespace);
  if (ns === undefined || SURROGATE.test(name)) return uuidLibV5(name, namespace);
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.toString('hex', 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The legacy tables a V2 bundle comes from (without schema: the name is part of the id). */
export type LegacyBundleTable = 'bundle_discount_id' | 'ai_fbt_bundles';

/** users.id of an email that is already normalized (see normalizeEmail). */
export function userId(normalizedEmail: string): string {
  let id = userIds.get(normalizedEmail);
  if (id === undefined) {
    // Emails repeat (a customer's bookings): remember the recent ones, bounded.
    if (userIds.size >= 100_000) userIds.clear();
    id = uuidv5(normalizedEmail, USERS_NS);
    userIds.set(normalizedEmail, id);
  }
  return id;
}
const userIds = new Map<string, string>();

/** payments.id of a legacy booking; lower-cased because PostgreSQL's uuid text (what SQL would hash) is. */
export function paymentId(bookingId: string): string {
  return uuidv5(`booking:${bookingId.toLowerCase()}`, PAYMENTS_NS);
}

/** bundles.id of a legacy bundle row. */
export function bundleId(table: LegacyBundleTable, legacyId: number | string): string {
  return uuidv5(`${table}:${legacyId}`, BUNDLES_NS);
}
