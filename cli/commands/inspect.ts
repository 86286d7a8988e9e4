import { once } from 'node:events';
import { errorMessage, UsageError } from '../../shared/errors.js';
import type { DecodedRecord } from '../../shared/recordio/decoder.js';
import { detectionLabelProblem, parseDetectionLabel } from '../../shared/recordio/detection-label.js';
import { readImageInfo, sniffImageFormat } from '../../shared/recordio/image-info.js';
import { parseImageRecord } from '../../shared/recordio/image-record.js';
import type { RecordKey } from '../../shared/recordio/index-file.js';
import { openRecordIO, type RecordIOSource } from '../../shared/recordio/reader.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { intFlag, parseCommandArgs } from '../args.js';
import type { CliCommand } from '../command.js';

const USAGE = `Usage: ssd-cluster inspect SOURCE [--limit N] [--s3-endpoint URL]

Prints one JSON line per record of an MXNet RecordIO file. SOURCE is a path or an s3:// URL; the .idx
beside it (SOURCE with .rec replaced by .idx) is used when present (records in index order), otherwise
the file is scanned sequentially.

Each line: {"index", "key", "offset", "id", "id2", "flag", "label", "headerWidth", "objectWidth",
"objects", "image"}
  label        all label floats (flag > 0), or [scalar] when flag is 0
  headerWidth, objectWidth, objects
               the detection label (A, B and [{"class","xmin","ymin","xmax","ymax","difficult"?}]),
               or null when the label is not one ("labelProblem" then says why)
  image        {"format": "jpeg"|"png", "width", "height", "bytes"} read from the image header
               ("problem" instead of a size when it cannot be read)

Options:
  --limit N            print at most N records
  --s3-endpoint URL    S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)
`;

export const command: CliCommand = {
  name: 'inspect',
  summary: 'print the records of a RecordIO file as JSON lines',
  usage: USAGE,
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(
      'inspect',
      argv,
      { limit: { type: 'string' } },
      { allowPositionals: true },
    );
    if (positionals.length !== 1)
      throw new UsageError(
        `inspect: expected one SOURCE, got ${positionals.length} (see ssd-cluster inspect --help)`,
      );
    const limit = intFlag('limit', values.limit, { min: 0 }) ?? Infinity;
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      const source = await openRecordIO(positionals[0]!, { storage, signal: ctx.signal });
      try {
        let index = 0;
        for await (const { key, record } of recordsOf(source, ctx.signal)) {
          if (index >= limit) break;
          const line = `${JSON.stringify(describeRecord(source.url, index++, key, record))}\n`;
          if (!ctx.stdout.write(line)) await once(ctx.stdout, 'drain', { signal: ctx.signal });
        }
      } finally {
        await source.close();
      }
    } finally {
      await storage.close();
    }
    return 0;
  },
};

/** Index order when there is an .idx, else a sequential scan. */
async function* recordsOf(
  source: RecordIOSource,
  signal: AbortSignal,
): AsyncGenerator<{ key: RecordKey | null; record: DecodedRecord }> {
  if (source.index) {
    for (const entry of source.index)
      yield { key: entry.key, record: await source.readByKey(entry.key, { signal }) };
    return;
  }
  for await (const record of source.scan({ signal })) yield { key: null, record };
}

/** The JSON object printed for one record. */
export function describeRecord(source: string, index: number, key: RecordKey | null, record: DecodedRecord) {
  const parsed = parseImageRecord(record.payload, { source, offset: record.offset });
  const detection = parseDetectionLabel(parsed.labels);
  return {
    index,
    key,
    offset: record.offset,
    id: parsed.id,
    id2: parsed.id2,
    flag: parsed.flag,
    label: parsed.labels ? Array.from(parsed.labels, shortestFloat32) : [shortestFloat32(parsed.label)],
    headerWidth: detection?.headerWidth ?? null,
    objectWidth: detection?.objectWidth ?? null,
    objects:
      detection?.objects.map((o) => ({
        class: o.class,
        xmin: shortestFloat32(o.xmin),
        ymin: shortestFloat32(o.ymin),
        xmax: shortestFloat32(o.xmax),
        ymax: shortestFloat32(o.ymax),
        ...(o.difficult === undefined ? {} : { difficult: o.difficult }),
      })) ?? null,
    ...(detection || parsed.labels === null ? {} : { labelProblem: detectionLabelProblem(parsed.labels) }),
    image: describeImage(parsed.image, `${source} record at byte ${record.offset}`),
  };
}

function describeImage(image: Buffer, where: string) {
  try {
    return { ...readImageInfo(image, where), bytes: image.length };
  } catch (err) {
    return {
      format: sniffImageFormat(image),
      width: null,
      height: null,
      bytes: image.length,
      problem: errorMessage(err),
    };
  }
}

/** The shortest decimal that reads back as the same float32 (0.16927083 rather than 0.1692708283662796). */
export function shortestFloat32(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.fround(x);
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}
