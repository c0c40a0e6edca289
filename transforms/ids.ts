import { v5 as uuidv5 } from 'uuid';

/**
 * Deterministic V2 ids (uuid v5), so a replay, a re-snapshot or a second replicator computes the same ids as the
 * first. The namespaces are fixed forever: changing one would orphan every V2 row already written.
 */
export const USERS_NS = '5770a4fd-5e50-48a8-8c8a-3cc05d0b5a47';
export const PAYMENTS_NS = 'a42880e4-24c4-47fa-b300-a849e46ce4d6';
export const BUNDLES_NS = '72752b09-931f-4735-bd6e-dfe1636eacdb';

/** The legacy tables a V2 bundle comes from (without schema: the name is part of the id). */
export type LegacyBundleTable = 'bundle_discount_id' | 'ai_fbt_bundles';

/** users.id of an email that is already normalized (see normalizeEmail). */
export function userId(normalizedEmail: string): string {
  return uuidv5(normalizedEmail, USERS_NS);
}

/** payments.id of a legacy booking; lower-cased because PostgreSQL's uuid text (what SQL would hash) is. */
export function paymentId(bookingId: string): string {
  return uuidv5(`booking:${bookingId.toLowerCase()}`, PAYMENTS_NS);
}

/** bundles.id of a legacy bundle row. */
export function bundleId(table: LegacyBundleTable, legacyId: number | string): string {
  return uuidv5(`${table}:${legacyId}`, BUNDLES_NS);
}
