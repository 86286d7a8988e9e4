/**
 * A `.rec` file as a Dataset (dataset.ts). Sample i is the record at the i-th line of the `.idx`
 * (the order coordinator/sharding/plan.ts assumes), read with one ranged read (S3 GET with Range).
 *
 * Without an `.idx`, open() scans the file once to collect record offsets. Corrupt framing met by the
 * scan (a bad magic, a cut-off record) is skipped with a warning naming the file and offset (or fails,
 * with onBadRecord 'fail'): the scan restarts just past the bad spot and resynchronises on the next
 * record head, so later records still count. Image and label problems are found by read().
 */
import { errorMessage, RecordIOError } from '../../shared/errors.js';
import { noopLogger } from '../../shared/logging.js';
import { expectDetectionLabel } from '../../shared/recordio/detection-label.js';
import { parseImageRecord } from '../../shared/recordio/image-record.js';
import { openRecordIO, type RecordIOSource } from '../../shared/recordio/reader.js';
import {
  type Dataset,
  type DatasetSample,
  type OpenDatasetOptions,
  type SkippedInput,
  sampleAt,
} from './dataset.js';
import { labelProblem, packGroundTruth } from './ground-truth.js';

export async function openRecordIODataset(url: string, options: OpenDatasetOptions): Promise<Dataset> {
  const source = await openRecordIO(url, { storage: options.storage, signal: options.signal });
  try {
    if (source.index !== null) {
      const inLineOrder = [...source.index].sort((a, b) => a.line - b.line);
      return new RecordIODataset(
        source,
        options,
        inLineOrder.map((e) => e.offset),
        [],
      );
    }
    const { offsets, skipped } = await scanOffsets(source, options);
    return new RecordIODataset(source, options, offsets, skipped);
  } catch (err) {
    await source.close();
    throw err;
  }
}

/** Record offsets in file order, resynchronising past corrupt framing (see the file comment). */
async function scanOffsets(
  source: RecordIOSource,
  options: OpenDatasetOptions,
): Promise<{ offsets: number[]; skipped: SkippedInput[] }> {
  const logger = options.logger ?? noopLogger;
  const offsets: number[] = [];
  const skipped: SkippedInput[] = [];
  let start = 0;
  while (start < source.sizeBytes) {
    try {
      const range = { start, end: source.sizeBytes };
      for await (const record of source.scan({ range, signal: options.signal })) offsets.push(record.offset);
      break;
    } catch (err) {
      if (!(err instanceof RecordIOError) || options.onBadRecord === 'fail') throw err;
      const entry = { source: `${source.url}@${err.offset}`, reason: errorMessage(err) };
      skipped.push(entry);
      logger.warn('skipped corrupt RecordIO data', entry);
      // Always move forward: past the bad spot, past the last good record and past this attempt's start.
      const resume = Math.max(err.offset, offsets.at(-1) ?? -1, start) + 1;
      start = Math.ceil(resume / 4) * 4;
    }
  }
  return { offsets, skipped };
}

class RecordIODataset implements Dataset {
  readonly url: string;
  readonly size: number;

  constructor(
    private readonly source: RecordIOSource,
    private readonly options: OpenDatasetOptions,
    private readonly offsets: readonly number[],
    readonly skippedAtOpen: readonly SkippedInput[],
  ) {
    this.url = source.url;
    this.size = offsets.length;
  }

  sourceOf(index: number): string {
    return `${this.url}@${this.offsetOf(index)}`;
  }

  async read(index: number, signal?: AbortSignal): Promise<DatasetSample> {
    const offset = this.offsetOf(index);
    const record = await this.source.readAt(offset, { signal });
    const ctx = { source: this.url, offset };
    const image = parseImageRecord(record.payload, ctx);
    const label = expectDetectionLabel(image.labels, ctx);
    const problem = labelProblem(label.objects, this.options.numClasses);
    if (problem !== null) throw new RecordIOError(this.url, offset, `invalid detection label: ${problem}`);
    return { index, image: image.image, gt: packGroundTruth(label.objects), source: `${this.url}@${offset}` };
  }

  close(): Promise<void> {
    return this.source.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private offsetOf(index: number): number {
    return sampleAt(this.url, this.offsets, index);
  }
}
