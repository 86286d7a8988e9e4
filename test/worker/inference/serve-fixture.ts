import { EventEmitter, once } from 'node:events';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { main } from '../../../cli/main.js';
import { ClusterError } from '../../../shared/errors.js';
import { createMemoryLogger, type LogFields, type Logger } from '../../../shared/logging.js';

/**
 * `ssd-cluster serve ARGV` in this process through cli/main.ts, with its own streams and signal, so a
 * test can talk to it while it runs: `url` comes from the first stdout line; `serving` resolves when
 * the command logs that the model is ready (or rejects if the command ends first).
 */
export interface ServeRun {
  url: string;
  port: number;
  /** Every log line of the command. */
  logs: ReturnType<typeof createMemoryLogger>['entries'];
  serving: Promise<void>;
  /** Ends like SIGTERM would; resolves with the exit code. Idempotent. */
  stop(): Promise<number>;
  /** Resolves with the exit code when the command ends by itself. */
  exit: Promise<number>;
  stderr(): string;
}

const DEADLINE_MS = 60_000;

/** A memory logger that also emits every message by name. */
function eventLogger(): {
  logger: Logger;
  events: EventEmitter;
  memory: ReturnType<typeof createMemoryLogger>;
} {
  const memory = createMemoryLogger();
  const events = new EventEmitter();
  const wrap = (bound: Logger): Logger => ({
    debug: (msg, fields) => bound.debug(msg, fields),
    info: (msg: string, fields?: LogFields) => {
      bound.info(msg, fields);
      events.emit(msg, fields);
    },
    warn: (msg, fields) => bound.warn(msg, fields),
    error: (msg, fields) => bound.error(msg, fields),
    child: (fields) => wrap(bound.child(fields)),
  });
  return { logger: wrap(memory), events, memory };
}

function endedEarly(exit: Promise<number>, what: string): Promise<never> {
  return exit.then((code) => {
    throw new Error(`serve exited with ${code} before ${what}`);
  });
}

export async function startServeCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ServeRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let stderrText = '';
  stderr.on('data', (chunk: Buffer) => (stderrText += chunk.toString()));
  const controller = new AbortController();
  const { logger, events, memory } = eventLogger();
  const exit = main(['serve', ...argv], { stdout, stderr, env, signal: controller.signal, logger });
  const deadline = AbortSignal.timeout(DEADLINE_MS);
  const lines = createInterface({ input: stdout });
  const [line] = (await Promise.race([
    once(lines, 'line', { signal: deadline }),
    endedEarly(exit, 'printing its address'),
  ])) as [string];
  const { url, port } = JSON.parse(line) as { url: string; port: number };
  const serving = Promise.race([
    once(events, 'serving', { signal: deadline }).then(() => undefined),
    endedEarly(exit, 'serving'),
  ]);
  serving.catch(() => {}); // a test that never awaits it must not see an unhandled rejection
  return {
    url: url.replace('0.0.0.0', '127.0.0.1'),
    port,
    logs: memory.entries,
    serving,
    exit,
    stop: () => {
      controller.abort(new ClusterError('ABORTED', 'received SIGTERM (test)'));
      return exit;
    },
    stderr: () => stderrText,
  };
}
