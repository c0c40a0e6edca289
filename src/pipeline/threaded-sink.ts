import { ErrorCodes, ReplicatorError } from '../core/errors.js';
import { type ErrorShape, fromShape, logFromThread, startThread } from '../core/worker-thread.js';
import type { ReplicatorConfig } from './config/load-config.js';
import type { SinkHooks, SinkStageOptions } from './sink-stage.js';

/** What the sink thread is given (sink-thread.ts). */
export interface SinkThreadData {
  config: ReplicatorConfig;
  logLevel: string;
  /** The hooks the parent has (the thread posts those only). */
  hooks: (keyof SinkHooks)[];
  holdApplyMs?: number;
  holdSettleMs?: number;
}

export type ToSinkThread = { type: 'stop' };

export type FromSinkThread =
  | { type: 'hook'; name: keyof SinkHooks; args: unknown[] }
  | { type: 'connected'; connected: boolean }
  | { type: 'log'; line: string }
  | { type: 'stopped' }
  | { type: 'failed'; error: ErrorShape };

/**
 * The sink on a thread of its own (`--role all`): the same stage (buildSink), built there from the config; its
 * hooks, consumer state and log lines come back as messages. A stop is graceful as in process (the batch in
 * flight commits); a thread that fails or exits fails the stage, with the sink's own error and code.
 */
export class ThreadedSink {
  constructor(
    private readonly config: ReplicatorConfig,
    private readonly o: SinkStageOptions,
  ) {}

  run(signal: AbortSignal): Promise<void> {
    const { hooks, state, logger } = this.o;
    const data: SinkThreadData = {
      config: this.config,
      logLevel: logger.level,
      hooks: Object.keys(hooks) as (keyof SinkHooks)[],
      ...(this.o.holdApplyMs ? { holdApplyMs: this.o.holdApplyMs } : {}),
      ...(this.o.holdSettleMs ? { holdSettleMs: this.o.holdSettleMs } : {}),
    };
    // Its heap is the sink's: the 256 MB the README recommends for the daemon (what the sink needed in process).
    const worker = startThread(
      new URL(`./sink-thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
      data,
      { maxOldGenerationSizeMb: 256 },
    );
    return new Promise<void>((resolve, reject) => {
      let outcome: { stopped: true } | { error: Error } | undefined;
      const stop = () => worker.postMessage({ type: 'stop' } satisfies ToSinkThread);
      signal.addEventListener('abort', stop, { once: true });
      if (signal.aborted) stop();
      worker.on('message', (m: FromSinkThread) => {
        switch (m.type) {
          case 'hook': {
            const args = m.name === 'onRetry' ? [fromShape(m.args[0] as ErrorShape)] : m.args;
            (hooks[m.name] as ((...a: unknown[]) => void) | undefined)?.(...args);
            return;
          }
          case 'connected':
            state.connected = m.connected;
            return;
          case 'log':
            logFromThread(logger, m.line);
            return;
          // Done: whatever the thread still holds (a client's timer) must not keep the stage waiting.
          case 'stopped':
            outcome ??= { stopped: true };
            void worker.terminate();
            return;
          case 'failed':
            outcome ??= { error: fromShape(m.error) };
            void worker.terminate();
            return;
        }
      });
      worker.on('error', (e) => {
        outcome ??= { error: new ReplicatorError(ErrorCodes.ABORTED, 'sink thread failed', { cause: e }) };
      });
      worker.on('exit', (code) => {
        signal.removeEventListener('abort', stop);
        state.connected = false;
        if (outcome && 'stopped' in outcome) resolve();
        else
          reject(
            outcome?.error ?? new ReplicatorError(ErrorCodes.ABORTED, `sink thread exited with code ${code}`),
          );
      });
    });
  }
}
