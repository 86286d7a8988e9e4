import type { Logger } from '../shared/logging.js';

/** What a command gets from the CLI edge: streams, a root abort signal (SIGINT/SIGTERM) and a logger. */
export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Aborted by SIGINT or SIGTERM. */
  signal: AbortSignal;
  /** Made from --log-level (default info); JSON lines on stderr. */
  logger: Logger;
}

/** One `ssd-cluster` subcommand; each lives in its own file under cli/commands/. */
export interface CliCommand {
  name: string;
  /** One line for `ssd-cluster --help`. */
  summary: string;
  /** Full usage text for `ssd-cluster NAME --help`. */
  usage: string;
  /** Returns the process exit code (0 when omitted). Throw UsageError / ConfigError for bad input. */
  run(argv: string[], ctx: CliContext): Promise<number | undefined>;
}

/** Writes one JSON object as one line. */
export function writeJsonLine(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(`${JSON.stringify(value)}\n`);
}
