/**
 * A `.rec` file as a Dataset (dataset.ts). Sample i is the record at the i-th line of the `.idx`
 * (the order coordinator/sharding/plan.ts assumes), read with one ranged read (S3 GET with Range).
 *
 * Without an `.idx`, open() scans the file once to collect record offsets. Corrupt framing met by the
 * scan is skipped with a warning naming the file and offset (or fails, with onBadRecord 'fail'), and the
 * scan resynchronises on the next record head, so every intact record after it is found (range-scan.ts).
 * The size is the one the `.idx` would give: a damaged record (a valid head whose record does not decode,
 * or a header with one damaged word) stays a sample, whose read() fails, so training skips it and its
 * bad-record log counts it (see checkTrainData in coordinator/main.ts for why corrupt records count).
 * Only bytes that frame no record at all are left out, listed in skippedAtOpen. Image and label
 * problems are found by read().
 */
import { errorMessage, RecordIOError } from '../../shared/errors.js';
import { noopLogger } from '../../shared/logging.js';
import { expectDetectionLabel } from '../../shared/recordio/detection-label.js';
import { parseImageRecord } from '../../shared/recordio/image-record.js';
import type { CorruptData } from '../../shared/recordio/range-scan.js';
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

/**
 * Record offsets in file order. Corrupt framing is skipped (see the file comment); a damaged record
 * stays a sample, so that the count is the one its .idx would give (see openRecordIODataset).
 */
async function scanOffsets(
  source: RecordIOSource,
  options: OpenDatasetOptions,
): Promise<{ offsets: number[]; skipped: SkippedInput[] }> {
  const logger = options.logger ?? noopLogger;
  const offsets: number[] = [];
  const skipped: SkippedInput[] = [];
  const onCorrupt = (corrupt: CorruptData) => {
    const entry = { source: `${source.url}@${corrupt.offset}`, reason: errorMessage(corrupt.error) };
    if (corrupt.isRecord) {
      offsets.push(corrupt.offset);
      logger.warn('corrupt RecordIO record: kept as a sample, which training skips', entry);
    } else {
      skipped.push(entry);
      logger.warn('skipped corrupt RecordIO data', entry);
    }
  };
  const scanOptions = {
    signal: options.signal,
    onCorrupt: options.onBadRecord === 'fail' ? undefined : onCorrupt,
  };
  for await (const record of source.scan(scanOptions)) offsets.push(record.offset);
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
