import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ErrorCodes, ReplicatorError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

/** What `/readyz` answers: ready or not, the source's role when this process runs one, and each stage's state. */
export interface Readiness {
  ready: boolean;
  /** The source's role (leader, standby, …) when this process runs a source. */
  role?: string;
  stages: Record<string, string>;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Readiness;
  logger: Logger;
}

export interface ObservabilityServer {
  /** Binds host:port; resolves with the bound address (port 0 picks a free one). */
  listen(): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

/**
 * The daemon's HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process is alive and serving)
 * and `/readyz` (200 when every configured stage is connected and a source knows whether it leads or stands by;
 * 503 otherwise; a JSON body says which).
 */
export function createHttpServer(o: HttpServerOptions): ObservabilityServer {
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(body)}\n`);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/metrics': {
        const text = await o.registry.metrics();
        res.writeHead(200, { 'content-type': o.registry.contentType });
        res.end(text);
        return;
      }
      case '/healthz':
        json(res, 200, { status: 'ok' });
        return;
      case '/readyz': {
        const r = o.readiness();
        json(res, r.ready ? 200 : 503, r);
        return;
      }
      default:
        json(res, 404, { error: 'not found', endpoints: ['/metrics', '/healthz', '/readyz'] });
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      o.logger.warn(
        { err: e instanceof Error ? e.message : String(e), path: req.url },
        'http request failed',
      );
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.end();
    });
  });
  // Scrapes are short; an idle keep-alive connection must not hold up shutdown.
  server.keepAliveTimeout = 5_000;

  return {
    listen: () =>
      new Promise((resolve, reject) => {
        const onError = (e: Error) =>
          reject(
            new ReplicatorError(
              ErrorCodes.METRICS_LISTEN_FAILED,
              `cannot listen on ${o.host}:${o.port}: ${e.message}`,
              {
                cause: e,
              },
            ),
          );
        server.once('error', onError);
        server.listen(o.port, o.host, () => {
          server.off('error', onError);
          const address = server.address() as AddressInfo;
          resolve({ host: address.address, port: address.port });
        });
      }),
    close: () =>
      new Promise((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
