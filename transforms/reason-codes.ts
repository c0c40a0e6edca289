import { SCHEMA_DRIFT, TransformRejection, type TransformResult } from '../src/contracts/transform-api.js';

/**
 * Why a legacy change was dead-lettered. Stable: DLQ headers, metrics and `dlq replay` filters carry these, so a
 * code is never renamed or reused for another meaning.
 */
export const ReasonCodes = {
  /** The module was given a table it does not handle (a routing bug in the stage). */
  UNKNOWN_TABLE: 'UNKNOWN_TABLE',
  /** A truncate: it has no row, and removing a whole table's V2 rows is the stage's and the sink's job. */
  TRUNCATE_UNSUPPORTED: 'TRUNCATE_UNSUPPORTED',
  /** A create/update/read event without an `after` image. */
  MISSING_ROW: 'MISSING_ROW',
  /** The row does not have the legacy schema's column types (e.g. a timestamp 'infinity', a non-object jsonb). */
  LEGACY_ROW_INVALID: 'LEGACY_ROW_INVALID',
  /**
   * The legacy schema changed under the module (a declared column dropped, renamed or retyped): never a dead letter —
   * the apply stage holds the table's changes until the schema or the module fits (SchemaDriftRejection).
   */
  SCHEMA_DRIFT,
  BOOKING_INVALID_EMAIL: 'BOOKING_INVALID_EMAIL',
  BOOKING_UNKNOWN_STATUS: 'BOOKING_UNKNOWN_STATUS',
  BOOKING_NEGATIVE_AMOUNT: 'BOOKING_NEGATIVE_AMOUNT',
  /** An empty (or blank) booking reference: V2's unique payment reference is derived from it. */
  BOOKING_EMPTY_REFERENCE: 'BOOKING_EMPTY_REFERENCE',
  PROFILE_INVALID_EMAIL: 'PROFILE_INVALID_EMAIL',
  PROFILE_MISSING_CUSTOMER_ID: 'PROFILE_MISSING_CUSTOMER_ID',
  /** `products` (or `bundledProductIds`) is not a list of products with a string product id. */
  BUNDLE_INVALID_PRODUCTS: 'BUNDLE_INVALID_PRODUCTS',
  /** A product quantity that is not an integer from 1 to 2^31-1 (the V2 column is an integer). */
  BUNDLE_INVALID_QUANTITY: 'BUNDLE_INVALID_QUANTITY',
  /** A blank bundle name, shop or metaobject id, or a blank product id (V2 would get slug `-8` or a nameless bundle). */
  BUNDLE_EMPTY_FIELD: 'BUNDLE_EMPTY_FIELD',
  /** A discount percent outside 0–100. */
  BUNDLE_INVALID_DISCOUNT: 'BUNDLE_INVALID_DISCOUNT',
  /** An AI bundle's confidence, support or lift that is NaN or infinite (V2 metadata is JSON, which has neither). */
  BUNDLE_INVALID_SCORE: 'BUNDLE_INVALID_SCORE',
} as const;

export type ReasonCode = (typeof ReasonCodes)[keyof typeof ReasonCodes];

export const REASON_CODES: readonly ReasonCode[] = Object.freeze(Object.values(ReasonCodes));

export function reject(reason: ReasonCode, message: string): TransformResult {
  return { ok: false, rejection: new TransformRejection(reason, message) };
}
