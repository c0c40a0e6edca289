import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import type { ChildReplicator } from './child-source.js';

const bin = new URL('../../bin/replicator.js', import.meta.url).pathname;

/** Environment for a ChildReplicator whose HTTP endpoints bind any free port (read back with `daemonUrl`). */
export const ANY_PORT = { REPLICATOR_METRICS_PORT: '0' };

/** Polls `fn` until it returns a value; throws `what` (and the last error) when `timeoutMs` passes first. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The daemon's base URL (http://host:port), from the line it logs once its HTTP server listens. */
export async function daemonUrl(child: ChildReplicator): Promise<string> {
  await child.waitForLog(/"msg":"http server listening"/);
  const line = child
    .log()
    .split('\n')
    .find((l) => l.includes('"msg":"http server listening"'))!;
  const { host, port } = JSON.parse(line) as { host: string; port: number };
  return `http://${host}:${port}`;
}

export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Waits until `/readyz` answers 200 with the given source role (any role when omitted); returns the body. */
export async function waitReady(base: string, role?: string, timeoutMs = 60_000) {
  return waitFor(
    `${base}/readyz to be ready${role ? ` as ${role}` : ''}`,
    async () => {
      const r = await getJson(`${base}/readyz`);
      return r.status === 200 && (role === undefined || r.body.role === role) ? r.body : undefined;
    },
    timeoutMs,
  );
}

/** One sample of a metric from the daemon's /metrics (the first series whose labels contain `labels`). */
export async function scrape(base: string, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels && !line.includes(labels)) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs `replicator <args>` to completion; returns its exit code and output. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { env: { ...process.env, ...env }, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
