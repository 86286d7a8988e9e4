import fs from 'node:fs/promises';
import { UsageError } from '../../../shared/errors.js';
import { parseDetectionLabel } from '../../../shared/recordio/detection-label.js';
import { parseImageRecord } from '../../../shared/recordio/image-record.js';
import { openRecordIO } from '../../../shared/recordio/reader.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { isS3Url, type Storage } from '../../../shared/storage/storage.js';
import { parseCommandArgs } from '../../args.js';
import { type CliCommand, writeJsonLine } from '../../command.js';

const USAGE = `Usage: ssd-cluster bench recordio SOURCE [--json] [--s3-endpoint URL]

Times a sequential scan of a RecordIO file (a path or an s3:// URL) that decodes every record and parses
its IRHeader and detection label (not the image), and, in the same run, a plain read of the same bytes
(fs reads into one reused buffer for a path; the raw storage stream for S3) as the "cat" baseline.
MB = 10^6 bytes.

Output (--json: one JSON object):
  {"source", "records", "bytes", "seconds", "recordsPerSecond", "megabytesPerSecond",
   "catSeconds", "catMegabytesPerSecond", "scanToCatRatio", "detectionLabels", "objects"}
`;

const CAT_CHUNK_BYTES = 8 * 1024 * 1024;

export const command: CliCommand = {
  name: 'bench recordio',
  summary: 'records/s and MB/s of a sequential RecordIO scan',
  usage: USAGE,
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(
      'bench recordio',
      argv,
      { json: { type: 'boolean' } },
      {
        allowPositionals: true,
      },
    );
    if (positionals.length !== 1)
      throw new UsageError(`bench recordio: expected one SOURCE, got ${positionals.length}`);
    const url = positionals[0]!;
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      const cat = await timeCat(storage, url, ctx.signal);
      const scan = await timeScan(storage, url, ctx.signal);
      const mb = scan.bytes / 1e6;
      const result = {
        source: url,
        records: scan.records,
        bytes: scan.bytes,
        seconds: round(scan.seconds),
        recordsPerSecond: round(scan.records / scan.seconds),
        megabytesPerSecond: round(mb / scan.seconds),
        catSeconds: round(cat.seconds),
        catMegabytesPerSecond: round(cat.bytes / 1e6 / cat.seconds),
        scanToCatRatio: round(scan.seconds / cat.seconds),
        detectionLabels: scan.detectionLabels,
        objects: scan.objects,
      };
      if (values.json) writeJsonLine(ctx.stdout, result);
      else {
        ctx.stdout.write(
          `${url}: ${result.records} records, ${mb.toFixed(1)} MB in ${result.seconds} s = ${result.megabytesPerSecond} MB/s ` +
            `(plain read: ${result.catMegabytesPerSecond} MB/s; scan takes ${result.scanToCatRatio}x as long)\n`,
        );
      }
    } finally {
      await storage.close();
    }
    return 0;
  },
};

function round(x: number): number {
  return Number(x.toPrecision(4));
}

/** The baseline: the same bytes read with nothing done to them. */
async function timeCat(
  storage: Storage,
  url: string,
  signal: AbortSignal,
): Promise<{ bytes: number; seconds: number }> {
  const started = performance.now();
  let bytes = 0;
  if (isS3Url(url)) {
    for await (const chunk of storage.readStream(url, { signal })) bytes += chunk.length;
  } else {
    const handle = await fs.open(url, 'r');
    try {
      const buffer = Buffer.allocUnsafe(CAT_CHUNK_BYTES);
      for (let n = -1; n !== 0; bytes += n) {
        signal.throwIfAborted();
        n = (await handle.read(buffer, 0, buffer.length, null)).bytesRead;
      }
    } finally {
      await handle.close();
    }
  }
  return { bytes, seconds: (performance.now() - started) / 1000 };
}

/** The scan: decode every record, parse its header and label. */
async function timeScan(storage: Storage, url: string, signal: AbortSignal) {
  const started = performance.now();
  const source = await openRecordIO(url, { storage, signal, useIndex: false });
  let records = 0;
  let detectionLabels = 0;
  let objects = 0;
  try {
    for await (const record of source.scan({ signal })) {
      const parsed = parseImageRecord(record.payload, { source: url, offset: record.offset });
      const label = parseDetectionLabel(parsed.labels);
      records++;
      if (label) {
        detectionLabels++;
        objects += label.objects.length;
      }
    }
  } finally {
    await source.close();
  }
  return {
    records,
    bytes: source.sizeBytes,
    detectionLabels,
    objects,
    seconds: (performance.now() - started) / 1000,
  };
}
