import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../core/logger.js';
import { toShape } from '../core/worker-thread.js';
import { buildSink, type SinkHooks } from './sink-stage.js';
import type { FromSinkThread, SinkThreadData, ToSinkThread } from './threaded-sink.js';

/** The sink thread of `--role all` (see ThreadedSink): the sink stage, reporting to its parent by messages. */
const data = workerData as SinkThreadData;
const port = parentPort!;
const post = (m: FromSinkThread) => port.postMessage(m);
const logger = createLogger({
  level: data.logLevel,
  destination: { write: (line: string) => post({ type: 'log', line }) },
});
const hook =
  (name: keyof SinkHooks) =>
  (...args: unknown[]) =>
    post({ type: 'hook', name, args });
const bridges: Required<SinkHooks> = {
  onUnit: hook('onUnit'),
  onHops: hook('onHops'),
  onBatch: hook('onBatch'),
  onDeadLetter: hook('onDeadLetter'),
  onToastRefetch: hook('onToastRefetch'),
  onSchemaDrift: hook('onSchemaDrift'),
  // When it was applied, for the end-to-end latency: not when the parent reads the message.
  onApplied: (commitTs) => post({ type: 'hook', name: 'onApplied', args: [commitTs, Date.now()] }),
  onRetry: (e) => post({ type: 'hook', name: 'onRetry', args: [toShape(e)] }),
  onReconnect: hook('onReconnect'),
};
const hooks: SinkHooks = Object.fromEntries(data.hooks.map((name) => [name, bridges[name]]));
let connected = false;
const sink = buildSink(data.config, {
  logger,
  state: {
    get connected() {
      return connected;
    },
    set connected(value: boolean) {
      connected = value;
      post({ type: 'connected', connected: value });
    },
  },
  hooks,
  ...(data.holdApplyMs ? { holdApplyMs: data.holdApplyMs } : {}),
  ...(data.holdSettleMs ? { holdSettleMs: data.holdSettleMs } : {}),
});
const stop = new AbortController();
port.on('message', (m: ToSinkThread) => {
  if (m.type === 'stop') stop.abort();
});
sink.run(stop.signal).then(
  () => {
    post({ type: 'stopped' });
    port.close();
  },
  (e: unknown) => {
    post({ type: 'failed', error: toShape(e) });
    port.close();
  },
);
