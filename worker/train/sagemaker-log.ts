/**
 * SageMaker's object-detection metric lines (SPEC part 1, section 1.3), so log-based tooling
 * (CloudWatch metric definitions, hyperparameter tuning on validation:mAP) keeps working. Pure
 * formatters; the trainer decides when to print them. Each line matches the console's regex:
 *
 *   #quality_metric: host=H, epoch=E, batch=B train cross_entropy <loss>=X
 *   #quality_metric: host=H, epoch=E, batch=B train smooth_l1 <loss>=X
 *   #throughput_metric: host=H, train throughput=X records/second
 *   #quality_metric: host=H, epoch=E, validation mAP <score>=(X)
 *   #progress_metric: host=H, completed X % of epochs
 *
 * The train regexes capture `(\S+)` after `<loss>=`, so the value stands bare there; the mAP regex
 * has literal parentheses, `<score>=\((\S+)\)`, so it is wrapped. Epochs and batches are 0-based.
 * Losses are the running means of the epoch so far, as MXNet's metrics report them.
 */

/** `SM_CURRENT_HOST` (set by SageMaker), else the machine's hostname, else `algo-1`. */
export function trainingHost(env: Readonly<Record<string, string | undefined>>, hostname: string): string {
  const host = env.SM_CURRENT_HOST || hostname || 'algo-1';
  // Whitespace would break the `host=\S+` regexes.
  return host.replace(/\s+/g, '_');
}

export function trainLossLines(
  host: string,
  epoch: number,
  batch: number,
  losses: { crossEntropy: number; smoothL1: number },
): string[] {
  const head = `#quality_metric: host=${host}, epoch=${epoch}, batch=${batch} train`;
  return [
    `${head} cross_entropy <loss>=${losses.crossEntropy}`,
    `${head} smooth_l1 <loss>=${losses.smoothL1}`,
  ];
}

export function throughputLine(host: string, recordsPerSecond: number): string {
  return `#throughput_metric: host=${host}, train throughput=${recordsPerSecond} records/second`;
}

export function validationMapLine(host: string, epoch: number, map: number): string {
  return `#quality_metric: host=${host}, epoch=${epoch}, validation mAP <score>=(${map})`;
}

export function progressLine(host: string, epochsDone: number, epochs: number): string {
  const percent = Math.round((10000 * epochsDone) / epochs) / 100;
  return `#progress_metric: host=${host}, completed ${percent} % of epochs`;
}

/** Running means of the step losses of one epoch (pure). */
export interface EpochLosses {
  readonly steps: number;
  readonly crossEntropySum: number;
  readonly smoothL1Sum: number;
}

export const EMPTY_EPOCH_LOSSES: EpochLosses = Object.freeze({
  steps: 0,
  crossEntropySum: 0,
  smoothL1Sum: 0,
});

export function addStepLosses(acc: EpochLosses, clsLoss: number, locLoss: number): EpochLosses {
  return {
    steps: acc.steps + 1,
    crossEntropySum: acc.crossEntropySum + clsLoss,
    smoothL1Sum: acc.smoothL1Sum + locLoss,
  };
}

export function meanLosses(acc: EpochLosses): { crossEntropy: number; smoothL1: number } {
  const n = Math.max(1, acc.steps);
  return { crossEntropy: acc.crossEntropySum / n, smoothL1: acc.smoothL1Sum / n };
}
