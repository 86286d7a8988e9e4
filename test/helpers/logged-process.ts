import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI_ENTRY } from '../../coordinator/launcher.js';

const children: ChildProcess[] = [];

/** SIGKILLs every process `start` made that is still running (for test.after.always). */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export type LoggedProcess = ReturnType<typeof start>;

/** A process whose JSON log lines (stderr) can be awaited by predicate, with a deadline. */
export function start(argv: string[], env?: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI_ENTRY, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let stdout = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  createInterface({ input: child.stderr! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = { ...JSON.parse(text), at: performance.now() };
    } catch {
      return;
    }
    lines.push(line);
    for (const w of [...waiters])
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
  });
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 128)));
  return {
    child,
    exited,
    stdout: () => stdout,
    lines,
    waitFor(match: (l: Record<string, unknown>) => boolean, ms: number, what: string) {
      const hit = lines.find(match);
      if (hit) return Promise.resolve(hit);
      return new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}
