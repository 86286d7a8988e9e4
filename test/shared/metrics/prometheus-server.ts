import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deadline, sleep } from '../../../shared/abort.js';

/** Debian's prometheus package (installed by .ci/run). */
export const PROMETHEUS = '/usr/bin/prometheus';

export interface QuerySample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PrometheusServer {
  url: string;
  /** Instant query through the HTTP API. */
  query(expr: string): Promise<QuerySample[]>;
  /** GET /api/v1/targets (active targets with their discovered and final labels). */
  activeTargets(): Promise<
    { discoveredLabels: Record<string, string>; labels: Record<string, string>; health: string }[]
  >;
  /** Stops the process it started and removes its directory. Idempotent. */
  close(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1 (for processes that cannot report what they bound). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls `probe` until it returns a value, failing with `what` and the last problem after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const limit = deadline(undefined, timeoutMs);
  let last = 'nothing yet';
  try {
    for (;;) {
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (err) {
        last = (err as Error).message;
      }
      if (limit.signal.aborted)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
      await sleep(200);
    }
  } finally {
    limit.clear();
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Starts a real Prometheus on 127.0.0.1:<free port> with `configYaml` and waits until it is ready. */
export async function startPrometheus(configYaml: string): Promise<PrometheusServer> {
  if (!existsSync(PROMETHEUS)) {
    throw new Error(`${PROMETHEUS} not found: install Debian's prometheus package, as .ci/run does`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-test-'));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, configYaml);
  const port = await freePort();
  const child = spawn(
    PROMETHEUS,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const url = `http://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= stop(child).then(() => rm(dir, { recursive: true, force: true })));
  try {
    await waitFor('prometheus to be ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${stderr}`);
      return (await fetch(`${url}/-/ready`)).ok ? true : undefined;
    });
  } catch (err) {
    await close();
    throw err;
  }
  const api = async <T>(path: string): Promise<T> => {
    const body = (await (await fetch(`${url}${path}`)).json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error}`);
    return body.data;
  };
  return {
    url,
    query: async (expr) =>
      (await api<{ result: QuerySample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    activeTargets: async () =>
      (await api<{ activeTargets: never[] }>('/api/v1/targets?state=active')).activeTargets,
    close,
  };
}
