import type { StatusReport } from './read-status.js';

/** 1.5 MB: a byte count for people (1024-based); `?` when unknown. */
export function bytes(n: number | undefined): string {
  if (n === undefined) return '?';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** `[########------------] 40%` on a terminal; just the percentage elsewhere. */
export function progressBar(ratio: number, tty: boolean, width = 20): string {
  const r = Math.max(0, Math.min(1, ratio));
  const pct = `${Math.floor(r * 100)}%`;
  if (!tty) return pct;
  const filled = Math.round(r * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}`;
}

/** The one-screen text of `replicator status`. */
export function renderStatus(r: StatusReport, options: { tty: boolean }): string {
  const out: string[] = [];
  const pad = (label: string) => label.padEnd(11);
  const more = ' '.repeat(11);
  out.push(
    `replicator status: ${r.healthy ? 'HEALTHY' : `UNHEALTHY (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'})`}`,
    '',
  );

  const s = r.source;
  if (!s.reachable) {
    out.push(`${pad('source')}${s.database}  UNREACHABLE`);
  } else {
    const slot = s.slot;
    out.push(
      `${pad('source')}${s.database}  slot ${slot.name}${slot.exists ? ` (${slot.plugin}, ${slot.active ? `active pid ${slot.activePid}` : 'inactive'}, wal_status ${slot.walStatus ?? '?'})` : ' (does not exist)'}`,
    );
    if (slot.exists) {
      out.push(
        `${more}confirmed ${slot.confirmedFlushLsn ?? '?'}  current ${s.currentLsn ?? '?'}  lag ${bytes(s.lagBytes)}  retained WAL ${bytes(s.retainedBytes)}`,
      );
    }
    out.push(`${more}leader: ${s.leaderPid !== undefined ? `backend pid ${s.leaderPid}` : 'none'}`);
  }

  const t = r.target;
  if (t) {
    if (!t.reachable) out.push(`${pad('target')}${t.database}  UNREACHABLE`);
    else
      out.push(
        `${pad('target')}${t.database}  lag ${t.lagSeconds === null ? 'unknown (nothing applied yet)' : `${t.lagSeconds.toFixed(1)} s`}${t.appliedCommitTs ? `  newest applied commit ${t.appliedCommitTs}` : ''}`,
      );
  }

  if (!r.kafka.reachable) {
    out.push(`${pad('kafka')}UNREACHABLE`);
  } else {
    r.kafka.groups.forEach((g, i) => {
      out.push(
        `${i === 0 ? pad('kafka') : more}group ${g.group} (${g.stage}): ${g.state}, ${g.members} member${g.members === 1 ? '' : 's'}, lag ${g.lag}`,
      );
    });
    out.push(`${more}dlq ${r.kafka.dlq.topic}: ${r.kafka.dlq.messages ?? '?'} messages`);
  }

  const snap = r.snapshot;
  if (snap.state === 'complete') out.push(`${pad('snapshot')}complete (${snap.completedAt})`);
  else if (snap.state === 'in progress') {
    out.push(`${pad('snapshot')}in progress`);
    for (const tb of snap.tables) {
      const of = tb.estimate ? ` of ~${Math.round(tb.estimate)}` : '';
      const bar = tb.estimate ? `  ${progressBar(tb.rows / tb.estimate, options.tty)}` : '';
      out.push(`${more}${tb.table}: ${tb.rows}${of} rows${bar}`);
    }
  } else out.push(`${pad('snapshot')}${snap.state}`);

  const c = r.cutover;
  if (c.state !== 'present') out.push(`${pad('cutover')}${c.state}`);
  else
    c.rows.forEach((row, i) => {
      const { phase, id, shop, started_at: started, error, ...rest } = row;
      const done = Object.entries(rest)
        .filter(([k, v]) => k.endsWith('_at') && v !== null)
        .map(([k, v]) => `${k} ${v}`);
      const what = [
        `${phase}`,
        `id ${id}`,
        shop ? `shop ${shop}` : '',
        `started ${started}`,
        ...done,
        error ? `error: ${error}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      out.push(`${i === 0 ? pad('cutover') : more}${what}`);
    });

  r.preflight.forEach((f, i) => {
    const level = f.level === 'ok' ? 'ok  ' : f.level === 'warn' ? 'WARN' : 'FAIL';
    out.push(`${i === 0 ? pad('preflight') : more}${level} ${f.message}${f.fix ? `  (fix: ${f.fix})` : ''}`);
  });

  if (r.problems.length > 0) out.push('', 'problems:', ...r.problems.map((p) => `  - ${p}`));
  if (r.warnings.length > 0) out.push('', 'warnings:', ...r.warnings.map((w) => `  - ${w}`));
  return `${out.join('\n')}\n`;
}
