import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { type Kafka, KafkaJSConnectionError } from 'kafkajs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../src/core/logger.js';
import { parseConfig } from '../../../../src/pipeline/config/load-config.js';
import { createMetrics, type Metrics } from '../../../../src/pipeline/observability/metrics.js';
import type { StageName } from '../../../../src/pipeline/observability/stage-errors.js';
import { buildPipeline } from '../../../../src/pipeline/pipeline-builder.js';
import { sourceOptions } from '../../../../src/pipeline/stage-options.js';
import { freePort, waitFor } from '../../../helpers/daemon.js';
import { freshPipeline } from '../../../helpers/pipeline-harness.js';

/**
 * replicator_stage_reconnects_total and replicator_stage_errors_total are counted where the stages retry: the
 * pipeline builder wires each stage's retry and reconnect hooks to the metrics it is given.
 */

async function errors(metrics: Metrics, stage: StageName, code: string): Promise<number> {
  const v = (await metrics.stageErrors.get()).values.find(
    (s) => s.labels.stage === stage && s.labels.code === code,
  );
  return v?.value ?? 0;
}

async function totalErrors(metrics: Metrics, stage: StageName): Promise<number> {
  return (await metrics.stageErrors.get()).values
    .filter((s) => s.labels.stage === stage)
    .reduce((n, s) => n + s.value, 0);
}

async function reconnects(metrics: Metrics, stage: StageName): Promise<number | undefined> {
  return (await metrics.stageReconnects.get()).values.find((s) => s.labels.stage === stage)?.value;
}

/** A TCP proxy to `upstream` on `port`, not listening until `open()`: the target is unreachable until then. */
function proxy(port: number, upstream: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const server = tcpConnect(upstream.port, upstream.host);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        server.destroy();
      });
    }
    client.pipe(server).pipe(client);
  });
  return {
    open: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('stage reconnect and error counters', () => {
  it('the sink (built by the pipeline builder): an unreachable target is retried and counted by code; reaching it is one reconnect', async () => {
    const env = await freshPipeline('stagecount');
    const target = new URL(env.targetUrl);
    const port = await freePort();
    const through = proxy(port, { host: target.hostname, port: Number(target.port || 5432) });
    target.port = String(port);
    const config = { ...env.config, target: { url: target.toString() } };
    const metrics = createMetrics(new Registry());
    const pipeline = buildPipeline(config, { role: 'sink', logger: silentLogger(), metrics });
    // Zero series from the start, for the stages this process runs.
    expect(await reconnects(metrics, 'sink')).toBe(0);
    expect(await reconnects(metrics, 'source')).toBeUndefined();
    expect(await totalErrors(metrics, 'sink')).toBe(0);

    const controller = new AbortController();
    const running = pipeline.run(controller.signal);
    running.catch(() => {});
    try {
      await waitFor('the sink to retry the unreachable target', async () =>
        (await errors(metrics, 'sink', 'PG_UNREACHABLE')) >= 2 ? true : undefined,
      );
      expect(await reconnects(metrics, 'sink')).toBe(0);
      await through.open();
      await waitFor('the sink to join its group', async () =>
        pipeline.readiness().ready ? true : undefined,
      );
      expect(await reconnects(metrics, 'sink')).toBe(1);
      // Every error it retried was the target's: nothing is counted as UNEXPECTED.
      expect(await totalErrors(metrics, 'sink')).toBe(await errors(metrics, 'sink', 'PG_UNREACHABLE'));
    } finally {
      controller.abort();
      await running;
      await through.close();
    }
  });

  it('the publisher (as the source’s options make it): a failed send is retried on a new producer', async () => {
    const config = parseConfig(
      {
        source: { url: 'postgres://replicator@127.0.0.1:1/legacy', tables: ['public.t'] },
        kafka: { brokers: ['127.0.0.1:1'] },
      },
      {},
    );
    let connects = 0;
    let sends = 0;
    const kafka = {
      producer: () => ({
        connect: async () => {
          connects++;
        },
        disconnect: async () => {},
        sendBatch: async () => {
          if (sends++ === 0) throw new KafkaJSConnectionError('Connection error: connect ECONNREFUSED');
          return [];
        },
      }),
    } as unknown as Kafka;
    const metrics = createMetrics(new Registry());
    metrics.trackStage('publisher');
    const options = sourceOptions(config, kafka, silentLogger(), {
      onRetry: (e) => metrics.countRetry('publisher', e),
      onReconnect: () => metrics.countReconnect('publisher'),
    });
    const checkpoints: bigint[] = [];
    const publisher = options.createPublisher({
      checkpoint: (lsn) => checkpoints.push(lsn),
      maxBufferedMessages: 100,
      maxBufferedBytes: 1 << 20,
    });
    await publisher.start();
    publisher.publish({ topic: 't', key: 'k', value: 'v' });
    publisher.mark(5n);
    await publisher.flush();
    await publisher.close();
    expect(checkpoints).toEqual([5n]);
    expect(connects).toBe(2);
    expect(await errors(metrics, 'publisher', 'KAFKA_UNREACHABLE')).toBe(1);
    expect(await totalErrors(metrics, 'publisher')).toBe(1);
    expect(await reconnects(metrics, 'publisher')).toBe(1);
  });
});
