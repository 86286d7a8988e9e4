import { ClusterError, ConfigError, errorMessage, UsageError } from '../shared/errors.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../shared/logging.js';
import { describeVersion } from '../shared/version.js';
import type { CliCommand, CliContext } from './command.js';

/**
 * A command's module. `helpFor`, when a command has it, answers `--help` from the arguments (the
 * usage of `bench NAME` rather than the benchmark list).
 */
interface CommandModule {
  command: CliCommand;
  helpFor?: (argv: readonly string[]) => Promise<string>;
}

/** Commands load lazily so `ssd-cluster inspect` never pays for TensorFlow.js or gRPC. */
const commands: Record<string, () => Promise<CommandModule>> = {
  local: () => import('./commands/local.js'),
  coordinator: () => import('./commands/coordinator.js'),
  worker: () => import('./commands/worker.js'),
  train: () => import('./commands/train.js'),
  predict: () => import('./commands/predict.js'),
  evaluate: () => import('./commands/evaluate.js'),
  serve: () => import('./commands/serve.js'),
  synth: () => import('./commands/synth.js'),
  pack: () => import('./commands/pack.js'),
  inspect: () => import('./commands/inspect.js'),
  'model-info': () => import('./commands/model-info.js'),
  map: () => import('./commands/map.js'),
  bench: () => import('./commands/bench.js'),
};

const SUMMARIES: Record<string, string> = {
  local: 'run a coordinator and N workers on this host (default: tiny SSD on a generated data set)',
  coordinator: 'run the coordinator: membership, sharding, epochs, learning rate, checkpoints',
  worker: 'run one worker: data, SSD gradients, ring all-reduce',
  train: 'train in one process (the reference the cluster must match)',
  predict: 'run a trained model on images, one JSON line per image',
  evaluate: 'VOC mAP of a trained model on a data set, as training validation computes it',
  serve: "serve a trained model with SageMaker's hosting contract (/ping, /invocations)",
  synth: 'write a deterministic synthetic detection data set as RecordIO',
  pack: 'pack images + SageMaker JSON annotations (or a manifest) into RecordIO',
  inspect: 'print the records of a RecordIO file as JSON lines',
  'model-info': 'print anchors, parameters and feature maps of an SSD configuration',
  map: 'compute VOC mAP from ground-truth and detection JSON files',
  bench: 'benchmarks: recordio, step, allreduce, learn, scaling (JSON output)',
};

function usage(): string {
  const width = Math.max(...Object.keys(SUMMARIES).map((k) => k.length));
  const lines = Object.entries(SUMMARIES).map(([k, s]) => `  ${k.padEnd(width)}  ${s}`);
  return `Usage: ssd-cluster COMMAND [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'ssd-cluster COMMAND --help' for a command's options; 'ssd-cluster --version' for the version.\n`;
}

/** The last --log-level, as the command's own parser (util.parseArgs) takes it. */
function logLevelFrom(argv: string[]): LogLevel {
  const i = argv.findLastIndex((a) => a === '--log-level' || a.startsWith('--log-level='));
  if (i < 0) return 'info';
  const value = argv[i]!.includes('=') ? argv[i]!.split('=')[1] : argv[i + 1];
  if (!LOG_LEVELS.includes(value as LogLevel)) {
    throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got '${value}'`);
  }
  return value as LogLevel;
}

/** Runs the CLI and returns the exit code: 0 success, 1 failure, 2 bad usage or configuration. */
export async function main(argv: string[], io: Partial<CliContext> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    stdout.write(`${describeVersion()}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    stderr.write(`ssd-cluster: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => controller.abort(new ClusterError('ABORTED', `received ${sig}`));
  if (!io.signal) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  try {
    const { command, helpFor } = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      stdout.write(`${(helpFor ? await helpFor(rest) : command.usage).trimEnd()}\n`);
      return 0;
    }
    const ctx: CliContext = {
      stdout,
      stderr,
      env: io.env ?? process.env,
      signal: io.signal ?? controller.signal,
      logger: io.logger ?? createLogger({ level: logLevelFrom(rest), fields: { command: name } }),
    };
    return (await command.run(rest, ctx)) ?? 0;
  } catch (err) {
    const rootSignal = io.signal ?? controller.signal;
    if (rootSignal.aborted) {
      stderr.write(`ssd-cluster ${name}: stopped (${errorMessage(rootSignal.reason)})\n`);
      return 130;
    }
    return reportError(name, err, stderr);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function reportError(name: string, err: unknown, stderr: NodeJS.WritableStream): number {
  if (err instanceof ConfigError && err.problems.length > 1) {
    stderr.write(
      `ssd-cluster ${name}: invalid configuration:\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n`,
    );
    return 2;
  }
  const isUsage = err instanceof UsageError || err instanceof ConfigError;
  stderr.write(`ssd-cluster ${name}: ${errorMessage(err)}\n`);
  if (!(err instanceof ClusterError) && err instanceof Error && err.stack) stderr.write(`${err.stack}\n`);
  else if (err instanceof ClusterError && err.cause !== undefined && process.env.SSD_CLUSTER_DEBUG) {
    stderr.write(`caused by: ${err.cause instanceof Error ? err.cause.stack : String(err.cause)}\n`);
  }
  return isUsage ? 2 : 1;
}
