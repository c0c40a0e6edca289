import type { StatusReport } from '../../../../src/ops/status/read-status.js';

/** A report with the fields `status --watch` samples; the rest as a healthy, idle replicator shows them. */
export function report(o: {
  lagBytes?: number;
  lagSeconds?: number | null;
  published?: number | null;
  applied?: number | null;
  dlq?: number | null;
  phase?: string;
  problems?: string[];
}): StatusReport {
  const problems = o.problems ?? [];
  return {
    healthy: problems.length === 0,
    problems,
    warnings: [],
    source: {
      database: '127.0.0.1:5432/legacy',
      reachable: true,
      slot: { name: 'slot', exists: true, active: true },
      ...(o.lagBytes !== undefined ? { lagBytes: o.lagBytes } : {}),
    },
    target: {
      database: '127.0.0.1:5432/v2',
      reachable: true,
      group: 'sink',
      appliedCommitTs: null,
      lagSeconds: o.lagSeconds ?? null,
      appliedChanges: o.applied ?? null,
      schemaDrift: [],
    },
    kafka: {
      reachable: true,
      groups: [],
      dlq: { topic: 'raw.dlq', messages: o.dlq === undefined ? 0 : o.dlq },
      publishedChanges: o.published ?? null,
    },
    snapshot: { state: 'complete', tables: [] },
    cutover: o.phase ? { state: 'present', rows: [{ id: 'c1', phase: o.phase }] } : { state: 'none' },
    preflight: [],
  };
}
