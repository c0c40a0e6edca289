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
/**
 * Hook calls go to the parent together, every 100 ms: one message per unit and batch would be thousands a second,
 * each one an event on the source's loop. A failure or a stop sends what is pending first.
 */
let calls: [keyof SinkHooks, unknown[]][] = [];
const flush = () => {
  if (calls.length === 0) return;
  post({ type: 'hooks', calls });
  calls = [];
};
const flushing = setInterval(flush, 100);
const hook =
  (name: keyof SinkHooks) =>
  (...args: unknown[]) =>
    void calls.push([name, args]);
const bridges: Required<SinkHooks> = {
  onUnit: hook('onUnit'),
  onHops: hook('onHops'),
  onBatch: hook('onBatch'),
  onDeadLetter: hook('onDeadLetter'),
  onToastRefetch: hook('onToastRefetch'),
  onSchemaDrift: hook('onSchemaDrift'),
  // When it was applied, for the end-to-end latency: not when the parent reads the message.
  onApplied: (commitTs) => void calls.push(['onApplied', [commitTs, Date.now()]]),
  onRetry: (e) => void calls.push(['onRetry', [toShape(e)]]),
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
    clearInterval(flushing);
    flush();
    post({ type: 'stopped' });
    port.close();
  },
  (e: unknown) => {
    clearInterval(flushing);
    flush();
    post({ type: 'failed', error: toShape(e) });
    port.close();
  },
);
