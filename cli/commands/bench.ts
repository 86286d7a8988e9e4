import { UsageError } from '../../shared/errors.js';
import type { CliCommand } from '../command.js';

/** `ssd-cluster bench NAME ...`: each benchmark prints one JSON object (with --json). */
const benches: Record<string, () => Promise<{ command: CliCommand }>> = {
  recordio: () => import('./bench/recordio.js'),
  step: () => import('./bench/step.js'),
  allreduce: () => import('./bench/allreduce.js'),
  learn: () => import('./bench/learn.js'),
  scaling: () => import('./bench/scaling.js'),
};

function loadBench(name: string | undefined): Promise<{ command: CliCommand }> {
  const load = name === undefined ? undefined : benches[name];
  if (!load)
    throw new UsageError(`bench: expected one of ${Object.keys(benches).join(', ')}, got '${name ?? ''}'`);
  return load();
}

/**
 * The text of `bench [NAME] --help`: the benchmark list without a NAME (or when an option comes
 * first), else NAME's own usage. cli/main.ts asks here instead of printing the list, since the
 * answer depends on the arguments.
 */
export async function helpFor(argv: readonly string[]): Promise<string> {
  const [name] = argv;
  if (name === undefined || name.startsWith('-')) return command.usage;
  return (await loadBench(name)).command.usage;
}

export const command: CliCommand = {
  name: 'bench',
  summary: 'benchmarks printing JSON',
  usage: `Usage: ssd-cluster bench NAME [options] --json

Benchmarks:
  recordio SOURCE     records/s and MB/s of a sequential scan (headers and labels, not images)
  step                one training step of an SSD configuration (forward, loss, backward, update)
  allreduce           ring all-reduce across N real worker processes on 127.0.0.1
  learn               make the synthetic data set, train the tiny SSD, report validation mAP
  scaling             images/s of local --workers 1 and --workers N on the same data: speedup,
                      efficiency and how far the speedup metric is from it

Run 'ssd-cluster bench NAME --help' for a benchmark's options.
`,
  // --help never gets here: cli/main.ts answers it with helpFor.
  async run(argv, ctx) {
    const [name, ...rest] = argv;
    const { command: bench } = await loadBench(name);
    return bench.run(rest, ctx);
  },
};
