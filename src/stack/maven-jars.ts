import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCodes, ReplicatorError } from '../core/errors.js';

const run = promisify(execFile);

/** True when `cmd args` runs and exits 0 (a tool is installed). */
export async function hasCommand(cmd: string, args: string[]): Promise<boolean> {
  try {
    await run(cmd, args);
    return true;
  } catch {
    return false;
  }
}

/**
 * Gathers the runtime jars a pom names into `libs` with `mvn dependency:copy-dependencies`, once: a marker file
 * records a complete copy, so an interrupted fetch is redone. `expect` is the prefix of a jar that must be there.
 */
export async function fetchMavenJars(o: {
  /** What the jars are, for messages ("the Kafka broker jars"). */
  what: string;
  pom: string;
  libs: string;
  /** `-Dname=value` properties passed to the pom. */
  properties?: Record<string, string>;
  expect: string;
  log: (line: string) => void;
}): Promise<string> {
  const marker = join(o.libs, '.complete');
  if (existsSync(marker)) return o.libs;
  if (!(await hasCommand('mvn', ['-v']))) {
    throw new ReplicatorError(
      ErrorCodes.STACK_TOOL_MISSING,
      `Maven is needed once to fetch ${o.what}: install it (Debian: apt-get install maven)`,
    );
  }
  o.log(`fetching ${o.what} from Maven Central (first run only)`);
  mkdirSync(o.libs, { recursive: true });
  try {
    await run(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        o.pom,
        'dependency:copy-dependencies',
        ...Object.entries(o.properties ?? {}).map(([k, v]) => `-D${k}=${v}`),
        `-DoutputDirectory=${resolve(o.libs)}`,
        '-DincludeScope=runtime',
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
  } catch (e) {
    throw new ReplicatorError(ErrorCodes.STACK_START_FAILED, `mvn could not fetch ${o.what}`, { cause: e });
  }
  if (!readdirSync(o.libs).some((f) => f.startsWith(o.expect))) {
    throw new ReplicatorError(ErrorCodes.STACK_START_FAILED, `no ${o.expect} jar in ${o.libs} after mvn ran`);
  }
  writeFileSync(marker, `${new Date().toISOString()}\n`);
  return o.libs;
}
