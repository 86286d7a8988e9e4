import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Registry } from 'prom-client';

/** Debian's prometheus package installs it here; .ci/run installs that package. */
export const PROMTOOL = '/usr/bin/promtool';

export interface PromtoolResult {
  code: number | null;
  output: string;
}

/** Runs promtool with `args` and `stdin`; throws when promtool is missing. */
export function runPromtool(args: string[], stdin = ''): Promise<PromtoolResult> {
  if (!existsSync(PROMTOOL)) {
    throw new Error(
      `${PROMTOOL} not found: install Debian's prometheus package (apt-get install prometheus), as .ci/run does`,
    );
  }
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(stdin);
  });
}

/** `promtool check metrics` on a text exposition: exit 0 and no output when it is clean. */
export function promtoolCheckMetrics(text: string): Promise<PromtoolResult> {
  return runPromtool(['check', 'metrics'], text);
}

/** The value of the first series of `name` whose labels include the given ones. */
export async function seriesValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name} in the registry`);
  const { values } = await metric.get();
  const wanted = Object.entries(labels);
  const found = values.find((v) => wanted.every(([k, want]) => String(v.labels[k]) === want));
  return found?.value;
}

/** Series of `name` in a text exposition, as `{labels} value` strings keyed by the label part. */
export function seriesIn(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}
