import { pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFields = Record<string, unknown>;

/**
 * Structured logging: messages are fixed strings, everything variable goes in `fields`
 * (`log.info('worker joined', { workerId, generation })`). Loggers are injected; the pure
 * core returns events and the edges log them.
 */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** JSON lines on stderr (stdout stays free for command output), one object per event. */
export function createLogger(options: { level?: LogLevel; fields?: LogFields; fd?: number } = {}): Logger {
  const base = pino(
    { level: options.level ?? 'info', base: { pid: process.pid, ...options.fields } },
    pino.destination({ fd: options.fd ?? 2, sync: true }),
  );
  return wrap(base);
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (fields) => wrap(p.child(fields)),
  };
}

export const noopLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => noopLogger,
};

/** A logger that keeps what it is told, for tests. */
export function createMemoryLogger(): Logger & {
  entries: { level: string; msg: string; fields: LogFields }[];
} {
  const entries: { level: string; msg: string; fields: LogFields }[] = [];
  const make = (bound: LogFields): Logger => ({
    debug: (msg, fields) => entries.push({ level: 'debug', msg, fields: { ...bound, ...fields } }),
    info: (msg, fields) => entries.push({ level: 'info', msg, fields: { ...bound, ...fields } }),
    warn: (msg, fields) => entries.push({ level: 'warn', msg, fields: { ...bound, ...fields } }),
    error: (msg, fields) => entries.push({ level: 'error', msg, fields: { ...bound, ...fields } }),
    child: (fields) => make({ ...bound, ...fields }),
  });
  return Object.assign(make({}), { entries });
}

/** Named tracers for chatty paths, enabled by CLUSTER_TRACE=ring,membership (or `all`). */
export function isTraceEnabled(name: string, env: string | undefined = process.env.CLUSTER_TRACE): boolean {
  if (!env) return false;
  const names = env.split(',').map((s) => s.trim());
  return names.includes('all') || names.includes(name);
}
