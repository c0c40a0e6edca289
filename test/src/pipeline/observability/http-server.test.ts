import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isReplicatorError } from '../../../../src/core/errors.js';
import { silentLogger } from '../../../../src/core/logger.js';
import {
  createHttpServer,
  type ObservabilityServer,
  type Readiness,
} from '../../../../src/pipeline/observability/http-server.js';
import { createMetrics } from '../../../../src/pipeline/observability/metrics.js';

const servers: ObservabilityServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

function start(readiness: () => Readiness, port = 0) {
  const metrics = createMetrics(new Registry());
  const server = createHttpServer({
    host: '127.0.0.1',
    port,
    registry: metrics.registry,
    readiness,
    logger: silentLogger(),
  });
  servers.push(server);
  return { server, metrics };
}

describe('the HTTP endpoints', () => {
  it('serve /metrics, /healthz and /readyz on the configured address', async () => {
    let readiness: Readiness = { ready: false, role: 'starting', stages: { source: 'starting' } };
    const { server, metrics } = start(() => readiness);
    const { host, port } = await server.listen();
    expect(host).toBe('127.0.0.1');
    const base = `http://${host}:${port}`;
    metrics.sourceEvents.inc({ table: 'public.t', op: 'c' });

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await res.text()).toMatch(/^replicator_source_events_total\{table="public\.t",op="c"\} 1$/m);

    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual(readiness);
    readiness = { ready: true, role: 'standby', stages: { source: 'standby' } };
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ role: 'standby' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('fails with METRICS_LISTEN_FAILED when the port is taken', async () => {
    const { server } = start(() => ({ ready: true, stages: {} }));
    const { port } = await server.listen();
    const { server: second } = start(() => ({ ready: true, stages: {} }), port);
    const e = await second.listen().catch((err: unknown) => err);
    expect(isReplicatorError(e, ErrorCodes.METRICS_LISTEN_FAILED)).toBe(true);
  });
});
