import type { TransformModule } from '../src/contracts/transform-api.js';
import { bookingsModule } from './bookings.js';
import { bundlesModule } from './bundles.js';
import { customerProfilesModule } from './customer-profiles.js';

/** Every transform module; each legacy table belongs to exactly one. */
export const transformModules: readonly TransformModule[] = [
  bookingsModule,
  customerProfilesModule,
  bundlesModule,
];

const byTable = new Map<string, TransformModule>();
for (const module of transformModules) {
  for (const table of module.tables) {
    // A second module for a table would make routing depend on list order: fail at load instead.
    if (byTable.has(table)) throw new Error(`legacy table ${table} has two transform modules`);
    byTable.set(table, module);
  }
}

/** The module of a legacy table (schema.table), or undefined when no module handles it. */
export function moduleForTable(table: string): TransformModule | undefined {
  return byTable.get(table);
}
