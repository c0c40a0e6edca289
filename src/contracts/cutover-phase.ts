/**
 * The cutover's state machine as it is persisted in `replicator.cutovers.phase` in the target: written by
 * `replicator cutover`, read by `status` and by the daemon's metrics sampler (`replicator_cutover_phase`).
 */

/** Phases in order; the gauge replicator_cutover_phase reports the index (negative: ended without a flip). */
export const CUTOVER_PHASES = [
  'planned',
  'fencing',
  'fenced',
  'draining',
  'drained',
  'verifying',
  'verified',
  'flipping',
  'flipped',
] as const;
export type CutoverPhase =
  | (typeof CUTOVER_PHASES)[number]
  | 'aborted'
  | 'rolled-back'
  | 'dry-run'
  | 'finalized';

export const phaseNumber = (p: CutoverPhase): number =>
  p === 'aborted'
    ? -2
    : p === 'rolled-back'
      ? -1
      : p === 'dry-run'
        ? 0
        : p === 'finalized'
          ? 10
          : CUTOVER_PHASES.indexOf(p);

/** What an operator tracks per shop (tenant) in `replicator cutover status` and on the dashboard. */
export const SHOP_CUTOVER_STATES = [
  'pending',
  'verifying',
  'fenced',
  'flipped',
  'failed',
  'rolled back',
] as const;
export type ShopCutoverState = (typeof SHOP_CUTOVER_STATES)[number];

/** A shop's state from the phase of its latest cutover (none, or only dry runs: pending). */
export function shopCutoverState(phase: CutoverPhase | undefined): ShopCutoverState {
  switch (phase) {
    case undefined:
    case 'planned':
    case 'dry-run':
      return 'pending';
    case 'fencing':
    case 'fenced':
    case 'draining':
    case 'drained':
    case 'flipping':
      return 'fenced';
    case 'verifying':
    case 'verified':
      return 'verifying';
    case 'flipped':
    case 'finalized':
      return 'flipped';
    case 'aborted':
      return 'failed';
    case 'rolled-back':
      return 'rolled back';
  }
}
