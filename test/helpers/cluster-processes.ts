import { type LoggedProcess, start } from './logged-process.js';

/**
 * `ssd-cluster coordinator` and `ssd-cluster worker` as real processes, for integration tests. Both are
 * LoggedProcesses: killAll() (in test.after.always) SIGKILLs whatever is still running.
 */

export interface ProcessOptions {
  env?: NodeJS.ProcessEnv;
}

/** A coordinator on `port` (default 0: ephemeral) with its metrics on an ephemeral port. */
export function startCoordinator(flags: string[], options: ProcessOptions & { port?: number } = {}) {
  const port = String(options.port ?? 0);
  return start(['coordinator', '--port', port, '--metrics-port', '0', ...flags], options.env);
}

/** The port the coordinator listens on, from its 'coordinator listening' line (info level or lower). */
export async function coordinatorPort(coordinator: LoggedProcess, timeoutMs = 60_000): Promise<number> {
  const listening = await coordinator.waitFor(
    (l) => l.msg === 'coordinator listening',
    timeoutMs,
    'the coordinator to listen',
  );
  return listening.port as number;
}

export interface WorkerOptions extends ProcessOptions {
  /** Default 'warn'. */
  logLevel?: string;
  /** More worker flags. */
  flags?: string[];
}

/** A worker on the WASM backend that joins the coordinator on 127.0.0.1:`port` as `workerId`. */
export function startWorker(port: number, workerId: string, options: WorkerOptions = {}) {
  const address = `127.0.0.1:${port}`;
  return start(
    [
      ...['worker', '--coordinator', address, '--backend', 'wasm', '--worker-id', workerId],
      ...['--log-level', options.logLevel ?? 'warn', ...(options.flags ?? [])],
    ],
    options.env,
  );
}

/** A coordinator log-line predicate: a step at `globalStep` or later was committed. */
export function stepCommitted(globalStep: number) {
  return (l: Record<string, unknown>) => l.msg === 'step committed' && (l.globalStep as number) >= globalStep;
}
