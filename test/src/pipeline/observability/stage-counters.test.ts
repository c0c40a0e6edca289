import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createKafka } from '../../../../src/core/kafka-client.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { parseConfig } from '../../../../src/pipeline/config/load-config.js';
import { createMetrics, type Metrics } from '../../../../src/pipeline/observability/metrics.js';
import type { StageName } from '../../../../src/pipeline/observability/stage-errors.js';
import { buildPipeline } from '../../../../src/pipeline/pipeline-builder.js';
import { sourceOptions } from '../../../../src/pipeline/stage-options.js';
import { freePort, waitFor } from '../../../helpers/daemon.js';
import { freshPipeline } from '../../../helpers/pipeline-harness.js';
import { kafkaBrokers } from '../../../helpers/resources.js';

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

  it('the publisher (as the source’s options make it): a failed send is retried on a new producer, counted by code', async () => {
    const topic = `stagecount_pub_${process.pid}_${Date.now()}`;
    const config = parseConfig(
      {
        source: { url: 'postgres://replicator@127.0.0.1:1/legacy', tables: ['public.t'] },
        kafka: { brokers: [kafkaBrokers()] },
      },
      {},
    );
    const kafka = createKafka(config.kafka, silentLogger());
    const admin = kafka.admin();
    await admin.connect();
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
    try {
      await publisher.start();
      // The topic does not exist yet (and the broker creates none): the send fails after the client's retries.
      publisher.publish({ topic, key: 'k', value: 'v' });
      publisher.mark(5n);
      await waitFor('the publisher to retry a failed send', async () =>
        (await totalErrors(metrics, 'publisher')) >= 1 ? true : undefined,
      );
      expect(checkpoints).toEqual([]);
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
      await publisher.flush();
      expect(checkpoints).toEqual([5n]);
      // The error crossed the publisher's thread with what classifies it: a Kafka error, not UNEXPECTED.
      expect(await errors(metrics, 'publisher', 'KAFKA_UNAVAILABLE')).toBe(
        await totalErrors(metrics, 'publisher'),
      );
      expect(await reconnects(metrics, 'publisher')).toBeGreaterThanOrEqual(1);
      const offsets = await admin.fetchTopicOffsets(topic);
      expect(offsets.map((o) => o.high)).toEqual(['1']);
    } finally {
      await publisher.close();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  });
});
