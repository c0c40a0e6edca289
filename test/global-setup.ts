import type { TestProject } from 'vitest/node';
import { stopKafka } from '../src/stack/local-kafka.js';
import { kafkaBrokers, stackSettings, stackUp } from '../src/stack/stack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    kafkaBrokers: string;
  }
}

/** Brings the local stack up (or reuses a running one); stops at the end the broker this run started
 * (set REPLICATOR_STACK_KEEP=1 to keep it for the next run). */
export default async function setup(project: TestProject) {
  const settings = stackSettings();
  const result = await stackUp(settings, (line) => console.log(`[stack] ${line}`));
  project.provide('pgAdminUrl', settings.pgUrl);
  project.provide('kafkaBrokers', kafkaBrokers(settings));
  return async () => {
    if (result.kafkaPid && !process.env.REPLICATOR_STACK_KEEP) {
      await stopKafka(settings.kafka, (line) => console.log(`[stack] ${line}`));
    }
  };
}
