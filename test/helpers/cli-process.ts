import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI_ENTRY } from '../../coordinator/launcher.js';

export interface ProcessRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `ssd-cluster ARGV` as a real process (bin/ssd-cluster.js) and collects its output; kills it on abort. */
export async function runCliProcess(
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {},
): Promise<ProcessRun> {
  const child = spawn(process.execPath, [CLI_ENTRY, ...argv], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const text = { stdout: '', stderr: '' };
  child.stdout.on('data', (c: Buffer) => (text.stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (text.stderr += c.toString()));
  const onAbort = () => child.kill('SIGKILL');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const [code, signal] = await once(child, 'exit');
    return { code: typeof code === 'number' ? code : signal ? 128 : 1, ...text };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** The last line of `stdout` that parses as a JSON object. */
export function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const value = JSON.parse(line);
      if (value && typeof value === 'object') return value;
    } catch {}
  }
  throw new Error(`no JSON line in: ${stdout.slice(-500)}`);
}
