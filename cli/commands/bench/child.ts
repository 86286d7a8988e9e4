import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI_ENTRY } from '../../../coordinator/launcher.js';
import { ClusterError } from '../../../shared/errors.js';
import type { CliContext } from '../../command.js';

/** The last line of `stdout` that is a JSON object (progress and notes may surround it). */
export function lastJsonObject(stdout: string): Record<string, unknown> | undefined {
  for (const line of stdout.trim().split('\n').reverse()) {
    try {
      const value: unknown = JSON.parse(line);
      if (value && typeof value === 'object' && !Array.isArray(value))
        return value as Record<string, unknown>;
    } catch {}
  }
  return undefined;
}

/**
 * Runs `ssd-cluster ARGS` as a child process of a benchmark (stderr passed through) and returns its
 * stdout; a non-zero exit is an error naming `what` and the benchmark.
 */
export async function runCliChild(
  bench: string,
  args: string[],
  ctx: CliContext,
  what: string,
): Promise<string> {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], {
    env: ctx.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    signal: ctx.signal,
  });
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.pipe(ctx.stderr, { end: false });
  child.on('error', () => {}); // an abort kills it; the exit below reports it
  // 'close', not 'exit': stdout may still hold output when the process has exited.
  const [code, signal] = await once(child, 'close');
  ctx.signal.throwIfAborted();
  if (code !== 0) throw new ClusterError('INTERNAL', `${bench}: ${what} exited with ${code ?? signal}`);
  return stdout;
}
