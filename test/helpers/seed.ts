/**
 * Random seeds of randomized tests. A test draws its seed once at load time (from its environment variable, to
 * replay a failure, else from the clock), names it in its title — so even a timeout's report shows it — and runs
 * its body under `withSeed`, so every failure message carries it.
 */
export function testSeed(variable: string): { seed: number; tag: string } {
  const given = process.env[variable];
  const seed = given !== undefined && given !== '' ? Number(given) : Date.now() % 100_000;
  if (!Number.isInteger(seed)) throw new Error(`${variable}=${given} is not an integer seed`);
  return { seed, tag: `seed ${seed} (replay: ${variable}=${seed})` };
}

/** Runs `fn`; an error it throws (an assertion, a timeout of its own, anything) has `tag` put before its message. */
export async function withSeed<T>(tag: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Error) {
      if (!e.message.includes(tag)) {
        e.message = `${tag}: ${e.message}`;
        if (e.stack) e.stack = e.stack.replace(/^([^\n]*)/, `$1 [${tag}]`);
      }
      throw e;
    }
    throw new Error(`${tag}: ${String(e)}`);
  }
}
