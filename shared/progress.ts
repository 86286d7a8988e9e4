/**
 * Training progress for `local`, `coordinator` and `train`: a cli-progress bar when the stream is a
 * TTY, otherwise one plain line at most every `intervalMs` (logs and CI output stay readable):
 *
 *   progress epoch 2/10 step 120/1000 (12.0%) 35.2 img/s loss 2.345 eta 4m10s
 *
 * The formatting and the ETA are pure functions; createProgress is the thin edge that writes.
 */
import cliProgress from 'cli-progress';
import { type Clock, systemClock } from './clock.js';

export interface ProgressUpdate {
  /** 1-based epoch being trained. */
  epoch: number;
  /** Steps done since the job began (of `total`). */
  step: number;
  imagesPerSecond: number;
  loss: number;
  /** Seconds left; estimated from the step rate since the first update when omitted. */
  etaSeconds?: number;
}

export interface ProgressOptions {
  stream: NodeJS.WritableStream & { isTTY?: boolean };
  /** Steps in the whole job; 0 when unknown (no bar fill, no ETA). */
  total: number;
  /** Epochs in the job, shown as epoch E/N when given. */
  epochs?: number;
  /** Force the bar (true) or plain lines (false); default: the stream's isTTY. */
  tty?: boolean;
  /** Plain mode: at most one line per this many ms (default 10 000). */
  intervalMs?: number;
  clock?: Clock;
}

export interface Progress {
  update(u: ProgressUpdate): void;
  /** Draws the last state once more and ends the bar (or prints the last line). Idempotent. */
  stop(): void;
}

export interface RateOrigin {
  atMs: number;
  step: number;
}

/** Seconds left at the mean step rate since `origin`; undefined while it cannot be estimated. */
export function estimateEtaSeconds(origin: RateOrigin, nowMs: number, step: number, total: number) {
  const steps = step - origin.step;
  if (!(total > 0) || steps <= 0 || nowMs <= origin.atMs) return undefined;
  return (Math.max(0, total - step) * (nowMs - origin.atMs)) / 1000 / steps;
}

/** 4m10s, 1h02m03s, 12s; `?` when unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m${pad(s % 60)}s`;
  return m > 0 ? `${m}m${pad(s % 60)}s` : `${s}s`;
}

function fields(u: ProgressUpdate, o: { total: number; epochs?: number }) {
  return {
    epochText: o.epochs ? `${u.epoch}/${o.epochs}` : String(u.epoch),
    stepText: o.total > 0 ? `${u.step}/${o.total}` : String(u.step),
    ips: u.imagesPerSecond.toFixed(1),
    lossText: Number.isFinite(u.loss) ? u.loss.toFixed(3) : String(u.loss),
    etaText: formatDuration(u.etaSeconds),
  };
}

/** The plain-mode line for one update (no newline). */
export function formatProgressLine(u: ProgressUpdate, o: { total: number; epochs?: number }): string {
  const f = fields(u, o);
  const percent = o.total > 0 ? ` (${((100 * Math.min(u.step, o.total)) / o.total).toFixed(1)}%)` : '';
  return `progress epoch ${f.epochText} step ${f.stepText}${percent} ${f.ips} img/s loss ${f.lossText} eta ${f.etaText}`;
}

// Payload names must differ from cli-progress's own placeholders (bar, eta, value, total, percentage...),
// which win over the payload.
const BAR_FORMAT =
  'epoch {epochText} |{bar}| step {stepText} | {ips} img/s | loss {lossText} | eta {etaText}';

export function createProgress(o: ProgressOptions): Progress {
  const clock = o.clock ?? systemClock;
  let origin: RateOrigin | undefined;
  const withEta = (u: ProgressUpdate): ProgressUpdate => {
    const now = clock.monotonic();
    origin ??= { atMs: now, step: u.step };
    return { ...u, etaSeconds: u.etaSeconds ?? estimateEtaSeconds(origin, now, u.step, o.total) };
  };
  const tty = o.tty ?? o.stream.isTTY === true;
  return tty ? barProgress(o, withEta) : lineProgress(o, clock, withEta);
}

function barProgress(o: ProgressOptions, withEta: (u: ProgressUpdate) => ProgressUpdate): Progress {
  const bar = new cliProgress.SingleBar(
    { stream: o.stream, format: BAR_FORMAT, hideCursor: false, barsize: 24, fps: 4 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let stopped = false;
  return {
    update(u) {
      if (stopped) return;
      const payload = fields(withEta(u), o);
      if (!started) bar.start(Math.max(o.total, 1), u.step, payload);
      else bar.update(u.step, payload);
      started = true;
    },
    stop() {
      if (started && !stopped) bar.stop();
      stopped = true;
    },
  };
}

function lineProgress(
  o: ProgressOptions,
  clock: Clock,
  withEta: (u: ProgressUpdate) => ProgressUpdate,
): Progress {
  const intervalMs = o.intervalMs ?? 10_000;
  let lastPrintMs: number | undefined;
  let pending: ProgressUpdate | undefined;
  let stopped = false;
  const print = (u: ProgressUpdate) => {
    o.stream.write(`${formatProgressLine(u, o)}\n`);
    lastPrintMs = clock.monotonic();
    pending = undefined;
  };
  return {
    update(u) {
      if (stopped) return;
      pending = withEta(u);
      if (lastPrintMs === undefined || clock.monotonic() - lastPrintMs >= intervalMs) print(pending);
    },
    stop() {
      if (!stopped && pending) print(pending);
      stopped = true;
    },
  };
}
