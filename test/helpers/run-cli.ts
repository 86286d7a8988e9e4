import { PassThrough } from 'node:stream';
import { main } from '../../cli/main.js';
import type { Logger } from '../../shared/logging.js';
import { noopLogger } from '../../shared/logging.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `ssd-cluster ARGV` in this process, as the binary would, and collects its exit code and output.
 * A signal is always passed, so main() installs no process-wide SIGINT/SIGTERM handlers (tests run
 * many commands concurrently).
 */
export async function runCli(
  argv: string[],
  io: { env?: NodeJS.ProcessEnv; signal?: AbortSignal; logger?: Logger } = {},
): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = { stdout: '', stderr: '' };
  stdout.on('data', (chunk: Buffer) => (text.stdout += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (text.stderr += chunk.toString()));
  const code = await main(argv, {
    stdout,
    stderr,
    env: io.env ?? {},
    signal: io.signal ?? new AbortController().signal,
    logger: io.logger ?? noopLogger,
  });
  return { code, ...text };
}
