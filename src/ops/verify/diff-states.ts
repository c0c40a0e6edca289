import type { JsonRow, V2Entity } from '../../contracts/transform-api.js';
import { canonical } from './canonical.js';
import type { V2State } from './expected-v2.js';

export interface EntityDiff {
  entity: V2Entity;
  expected: number;
  actual: number;
  missing: string[];
  extra: string[];
  different: { key: string; columns: string[]; expected: JsonRow; actual: JsonRow }[];
}

const same = (a: unknown, b: unknown) =>
  JSON.stringify(canonical(a as never)) === JSON.stringify(canonical(b as never));

/** Row-by-row comparison of two V2 states (canonical values: timestamps and key order do not matter). */
export function diffStates(expected: V2State, actual: V2State, entities: readonly V2Entity[]): EntityDiff[] {
  return entities.map((entity) => {
    const e = expected.get(entity) ?? new Map<string, JsonRow>();
    const a = actual.get(entity) ?? new Map<string, JsonRow>();
    const diff: EntityDiff = {
      entity,
      expected: e.size,
      actual: a.size,
      missing: [],
      extra: [],
      different: [],
    };
    for (const [key, row] of e) {
      const other = a.get(key);
      if (!other) {
        diff.missing.push(key);
        continue;
      }
      const columns = [...new Set([...Object.keys(row), ...Object.keys(other)])].filter(
        (c) => !same(row[c], other[c]),
      );
      if (columns.length > 0) diff.different.push({ key, columns, expected: row, actual: other });
    }
    for (const key of a.keys()) if (!e.has(key)) diff.extra.push(key);
    return diff;
  });
}

export const isClean = (diffs: readonly EntityDiff[]) =>
  diffs.every((d) => d.missing.length === 0 && d.extra.length === 0 && d.different.length === 0);
