/**
 * The architecture's import rules (README "Architecture"), checked by test/architecture.test.ts.
 * Layers, top to bottom: cli → ops → pipeline → connectors → contracts → core. transforms/ sits beside the
 * connectors and sees only the contracts. No exception list: a rule that stops fitting is changed here, once.
 */
const CORE = '^src/core/';
const CONTRACTS = '^src/contracts/';
const CONNECTOR_INDEX = '^connectors/[^/]+/index[.]ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules import each other in a circle: split out what both need.',
      from: { path: '^(src|connectors|transforms)/' },
      to: { circular: true },
    },
    {
      name: 'core-imports-only-core',
      severity: 'error',
      comment: 'src/core (errors, logger, lsn, retry, pg helpers) depends on nothing of ours above it.',
      from: { path: CORE },
      to: { path: '^(src|connectors|transforms|test|bench|scripts)/', pathNot: CORE },
    },
    {
      name: 'contracts-import-only-core',
      severity: 'error',
      comment:
        'src/contracts (topic names, event, unit and dead-letter formats, transform API) sees only core.',
      from: { path: CONTRACTS },
      to: { path: '^(src|connectors|transforms|test|bench|scripts)/', pathNot: [CORE, CONTRACTS] },
    },
    {
      name: 'transforms-import-only-contracts',
      severity: 'error',
      comment: 'Transform modules are pure domain code: they see the transform API and each other only.',
      from: { path: '^transforms/' },
      to: { path: '^(src|connectors|test|bench|scripts)/', pathNot: CONTRACTS },
    },
    {
      name: 'connector-imports-core-contracts-and-itself',
      severity: 'error',
      comment:
        'A stage implementation sees core, contracts and its own folder: never another connector, the config, or transforms/ (domain knowledge is handed in).',
      from: { path: '^connectors/([^/]+)/' },
      to: {
        path: '^(src|connectors|transforms|test|bench|scripts)/',
        pathNot: [CORE, CONTRACTS, '^connectors/$1/'],
      },
    },
    {
      name: 'connectors-only-through-their-index',
      severity: 'error',
      comment: 'Outside its folder, a connector is used through connectors/<name>/index.ts only.',
      from: { path: '^(src|test/src|bench|scripts)/' },
      to: { path: '^connectors/', pathNot: CONNECTOR_INDEX },
    },
    {
      name: 'pipeline-below-ops-and-cli',
      severity: 'error',
      comment: 'src/pipeline (config → stage options, builder) never reaches up into ops or the CLI.',
      from: { path: '^src/pipeline/' },
      to: { path: '^src/(ops|cli|stack|workload)/' },
    },
    {
      name: 'ops-below-cli',
      severity: 'error',
      comment:
        'src/ops (verify, cutover, status, dlq) is a library the CLI calls, never the other way round.',
      from: { path: '^src/ops/' },
      to: { path: '^src/(cli|stack|workload)/' },
    },
    {
      name: 'tools-import-only-core-contracts-transforms',
      severity: 'error',
      comment:
        'The local stack and the workload generator are tools beside the product; they use only its base.',
      from: { path: '^src/(stack|workload)/' },
      to: { path: '^(src|connectors)/', pathNot: [CORE, CONTRACTS, '^src/stack/', '^src/workload/'] },
    },
    {
      name: 'product-never-imports-tests-or-benches',
      severity: 'error',
      from: { path: '^(src|connectors|transforms)/' },
      to: { path: '^(test|bench|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/|^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
