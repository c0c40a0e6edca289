import type { JsonRow, V2Entity, V2Op } from '../src/contracts/transform-api.js';
import { V2_KEYS, type V2Row } from './v2-schema.js';

/** Typed builders of V2 operations: the row must be the entity's row type, and the key is taken from it. */

export function upsertOp<E extends V2Entity>(entity: E, row: V2Row<E> & JsonRow): V2Op {
  return { kind: 'upsert', entity, key: keyOf(entity, row), row };
}

export function replaceChildrenOp<E extends V2Entity>(
  entity: E,
  parentKey: JsonRow,
  rows: readonly (V2Row<E> & JsonRow)[],
): V2Op {
  return { kind: 'replace-children', entity, parentKey, childKey: [...V2_KEYS[entity]], rows: [...rows] };
}

/** Recompute users for these normalized emails (deduplicated, in order of first appearance). */
export function recomputeUsersOp(emails: readonly string[]): V2Op {
  return { kind: 'recompute-derived', entity: 'users', keys: [...new Set(emails)] };
}

export function keyOf(entity: V2Entity, row: JsonRow): JsonRow {
  return Object.fromEntries(V2_KEYS[entity].map((column) => [column, row[column] ?? null]));
}
