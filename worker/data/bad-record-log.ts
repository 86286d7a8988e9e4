/**
 * How skipped bad records reach the log (issue 6's skip mode) without flooding it: the first `limit`
 * of an epoch are warned one by one, naming file@offset and the reason; the rest are only counted. At
 * the end of the epoch one warning sums them up by kind of reason (the reason with its numbers
 * replaced by #), so a systematic problem (every record's class beyond num_classes, a wrong label
 * width) reads as one line with a count instead of thousands. Counting for the metrics is separate
 * (the trainer counts every skip).
 *
 * Warnings come as records are loaded, which the prefetcher does ahead of training; the summary counts
 * the skips of the batches the epoch trained on (the caller's list), so records loaded for steps that
 * never ran (the run was interrupted or failed) are not in it, and its count never exceeds its records.
 */
import type { Logger } from '../../shared/logging.js';
import type { BadRecord } from './batch.js';

/** Individual warnings per epoch before the rest are only counted. */
export const BAD_RECORD_WARNINGS = 10;

export interface BadRecordLog {
  skipped(bad: BadRecord): void;
  /**
   * The epoch's summary of `skipped`, the bad ones among the `records` it trained on (nothing when none
   * was); the warnings start again.
   */
  endEpoch(epoch: number, records: number, skipped: readonly BadRecord[]): void;
}

/** "object 0 has class 3, but num_classes is 1" -> "object # has class #, but num_classes is #". */
export function reasonKind(reason: string): string {
  return reason.replace(/-?\d+(\.\d+)?(e[-+]?\d+)?/gi, '#');
}

export function createBadRecordLog(logger: Logger, limit = BAD_RECORD_WARNINGS): BadRecordLog {
  let warned = 0;
  return {
    skipped(bad) {
      warned++;
      if (warned <= limit) logger.warn('skipped a bad record', { ...bad });
      if (warned === limit + 1)
        logger.warn(`more bad records this epoch: only counted until it ends (first ${limit} shown)`);
    },
    endEpoch(epoch, records, skipped) {
      warned = 0;
      if (skipped.length === 0) return;
      const kinds = new Map<string, number>();
      for (const bad of skipped) {
        const kind = reasonKind(bad.reason);
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      const byKind = [...kinds].sort((a, b) => b[1] - a[1]).map(([kind, n]) => ({ kind, records: n }));
      logger.warn(`skipped ${skipped.length} of ${records} records in epoch ${epoch}`, {
        epoch,
        skipped: skipped.length,
        byKind,
      });
    },
  };
}
