import { ClusterError } from '../../../shared/errors.js';
import { SYNTH_DEFAULTS } from '../../../shared/synth/synth-image.js';
import type { CliContext } from '../../command.js';
import { lastJsonObject, runCliChild } from './child.js';
import type { ScalingPlan } from './scaling.js';

/**
 * The scaling this host allows before any data loading, all-reduce or coordination: `bench step`
 * (forward, loss, backward and update of the plan's network on seeded inputs, no other process) run
 * alone, then as N processes at once. N processes that shared nothing but the machine would reach N x;
 * the shortfall is the machine's (shared caches and memory bandwidth, clock boost with one busy core,
 * a host that lends its cores to others), and `local --workers N` cannot beat it.
 */
export interface ComputeCeiling {
  /** "1": one process alone; "N": the sum over N concurrent processes. */
  imagesPerSecond: Record<string, number>;
  /** imagesPerSecond[N] / imagesPerSecond[1]. */
  speedup: number;
  /** Timed steps per process. */
  steps: number;
}

export const CEILING_STEPS = 20;

/** `bench step` arguments for the plan's network, batch, backend and threads. */
export function stepArgs(plan: ScalingPlan, steps = CEILING_STEPS): string[] {
  return [
    'bench',
    'step',
    '--base-network',
    plan.baseNetwork,
    '--image-shape',
    String(plan.imageShape),
    '--batch-size',
    String(plan.miniBatchSize),
    '--num-classes',
    String(SYNTH_DEFAULTS.classCount),
    '--backend',
    plan.backend,
    '--threads',
    String(plan.threads),
    '--warmup',
    '2',
    '--steps',
    String(steps),
    '--json',
  ];
}

/** The ceiling from one process's images/s and each concurrent process's (pure). */
export function ceilingFrom(alone: number, together: readonly number[], steps: number): ComputeCeiling {
  const sum = together.reduce((a, b) => a + b, 0);
  return { imagesPerSecond: { 1: alone, [together.length]: sum }, speedup: sum / alone, steps };
}

function stepImagesPerSecond(stdout: string, what: string): number {
  const value = lastJsonObject(stdout)?.imagesPerSecond;
  if (typeof value !== 'number' || !(value > 0))
    throw new ClusterError('INTERNAL', `bench scaling: ${what} printed no imagesPerSecond`);
  return value;
}

/** One round: a process alone, then N at once (the others are killed if one fails). */
async function measureRound(
  plan: ScalingPlan,
  ctx: CliContext,
): Promise<{ alone: number; together: number[] }> {
  const args = [...stepArgs(plan), '--log-level', 'warn'];
  const run = async (what: string, signal: AbortSignal) =>
    stepImagesPerSecond(await runCliChild('bench scaling', args, { ...ctx, signal }, what), what);
  const alone = await run('bench step (alone)', ctx.signal);
  const failed = new AbortController();
  const signal = AbortSignal.any([ctx.signal, failed.signal]);
  const together = await Promise.all(
    Array.from({ length: plan.workers }, (_, i) =>
      run(`bench step (${i + 1} of ${plan.workers} at once)`, signal).catch((err: unknown) => {
        failed.abort();
        throw err;
      }),
    ),
  );
  return { alone, together };
}

/** `rounds` rounds; the ceiling of the round with the median speedup (so one noisy run counts once). */
export async function measureComputeCeiling(
  plan: ScalingPlan,
  ctx: CliContext,
  rounds = 1,
): Promise<ComputeCeiling> {
  const ceilings: ComputeCeiling[] = [];
  for (let round = 0; round < rounds; round++) {
    ctx.logger.info('bench scaling: compute ceiling', { processes: plan.workers, round });
    const { alone, together } = await measureRound(plan, ctx);
    ceilings.push(ceilingFrom(alone, together, CEILING_STEPS));
  }
  return medianCeiling(ceilings);
}

/** The ceiling with the median speedup (the lower middle one for an even count) (pure). */
export function medianCeiling(ceilings: readonly ComputeCeiling[]): ComputeCeiling {
  if (ceilings.length === 0) throw new ClusterError('INTERNAL', 'medianCeiling: no ceilings');
  const sorted = [...ceilings].sort((a, b) => a.speedup - b.speedup);
  return sorted[(sorted.length - 1) >> 1]!;
}
