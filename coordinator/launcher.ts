import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClusterError } from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import { RING_NODE_FLAGS } from '../worker/allreduce/grpc-transport.js';

/** bin/ssd-cluster.js of this checkout: workers run the same code as the launcher. */
export const CLI_ENTRY = fileURLToPath(new URL('../bin/ssd-cluster.js', import.meta.url));

export interface WorkerProcess {
  index: number;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number>;
}

export interface LaunchOptions {
  count: number;
  coordinator: string;
  /** Extra `ssd-cluster worker` flags (backend, token, log level...). */
  args: (index: number) => string[];
  logDir: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

/**
 * Starts N `ssd-cluster worker` processes on this host, each logging to logDir/worker-<i>.log
 * (stdout and stderr: JSON log lines and SageMaker metric lines).
 */
export function launchWorkers(o: LaunchOptions): WorkerProcess[] {
  mkdirSync(o.logDir, { recursive: true });
  return Array.from({ length: o.count }, (_, index) => {
    const logFile = path.join(o.logDir, `worker-${index}.log`);
    const out = createWriteStream(logFile);
    // RING_NODE_FLAGS: a larger initial old space spares a worker most of the mark-compacts that
    // gRPC buffers and per-step state snapshots would otherwise trigger in the middle of a step.
    const child = spawn(
      process.execPath,
      [...RING_NODE_FLAGS, CLI_ENTRY, 'worker', '--coordinator', o.coordinator, ...o.args(index)],
      {
        env: o.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    const exited = once(child, 'exit').then(([code, signal]) => {
      out.end();
      return typeof code === 'number' ? code : signal ? 128 : 1;
    });
    o.logger.info('worker started', { index, pid: child.pid, logFile });
    return { index, child, logFile, exited };
  });
}

/** Resolves when fewer than `minAlive` workers are still running; rejects never. */
export function whenTooFewAlive(workers: WorkerProcess[], minAlive: number): Promise<WorkerProcess[]> {
  return new Promise((resolve) => {
    const dead: WorkerProcess[] = [];
    for (const w of workers) {
      void w.exited.then((code) => {
        if (code === 0) return;
        dead.push(w);
        if (workers.length - dead.length < minAlive) resolve(dead);
      });
    }
  });
}

/** Waits for every worker to exit within `graceMs`; then SIGTERM, then SIGKILL. */
export async function stopWorkers(workers: WorkerProcess[], graceMs: number): Promise<number[]> {
  const all = Promise.all(workers.map((w) => w.exited));
  const timer = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
  if ((await Promise.race([all.then(() => 'done'), timer(graceMs)])) !== 'done') {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
    if ((await Promise.race([all.then(() => 'done'), timer(5000)])) !== 'done') {
      for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    }
  }
  return all;
}

export function deadWorkersError(dead: WorkerProcess[]): ClusterError {
  const list = dead.map(
    (w) => `worker ${w.index} (exit ${w.child.exitCode ?? w.child.signalCode}, log ${w.logFile})`,
  );
  return new ClusterError('PEER_LOST', `too few workers left: ${list.join('; ')}`);
}
