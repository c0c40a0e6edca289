/**
 * The package's public API (package.json `exports`): what a `replicator.config.ts` imports, and the library the CLI
 * is a thin shell over.
 */
export { ErrorCodes, EXIT_CODES, isReplicatorError, ReplicatorError } from './core/errors.js';
export { readStatus } from './ops/status/read-status.js';
export { runVerify } from './ops/verify/verify.js';
export {
  defineConfig,
  loadConfig,
  parseConfig,
  type ReplicatorConfig,
} from './pipeline/config/load-config.js';
export type { ConfigInput } from './pipeline/config/schema.js';
export { buildPipeline, type Pipeline, type Role } from './pipeline/pipeline-builder.js';
