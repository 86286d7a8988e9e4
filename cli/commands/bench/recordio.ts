import fs from 'node:fs/promises';
import { UsageError } from '../../../shared/errors.js';
import { type DecodedRecord, RecordDecoder } from '../../../shared/recordio/decoder.js';
import { parseDetectionLabel } from '../../../shared/recordio/detection-label.js';
import { parseImageRecord } from '../../../shared/recordio/image-record.js';
import { openRecordIO } from '../../../shared/recordio/reader.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { isS3Url, type Storage } from '../../../shared/storage/storage.js';
import { parseCommandArgs } from '../../args.js';
import { type CliCommand, writeJsonLine } from '../../command.js';

const USAGE = `Usage: ssd-cluster bench recordio SOURCE [--json] [--s3-endpoint URL]

Times, in one run, over the same file (a path or an s3:// URL; MB = 10^6 bytes):
  scan    openRecordIO(SOURCE).scan(): every record decoded through the Storage stream, its IRHeader and
          detection label parsed (not the image). This is what workers get.
  cat     the same bytes read with nothing done to them: fs reads into one reused 8 MiB buffer for a
          path, the raw Storage stream for S3.
  decode  (paths only) the RecordIO decoder and the same parsing over the cat reads (one reused buffer):
          the cost of the RecordIO code itself, without the Storage stream's fresh chunk buffers.

Output (--json: one JSON object):
  {"source", "records", "bytes", "seconds", "recordsPerSecond", "megabytesPerSecond",
   "catSeconds", "catMegabytesPerSecond", "scanToCatRatio",
   "decodeSeconds", "decodeMegabytesPerSecond" (null for S3), "detectionLabels", "objects"}
`;

const READ_BUFFER_BYTES = 8 * 1024 * 1024;

interface ScanCounts {
  records: number;
  detectionLabels: number;
  objects: number;
}

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
      const cat = await timed(() => readPlain(storage, url, ctx.signal));
      const scan = await timed(() => scanSource(storage, url, ctx.signal));
      const decode = isS3Url(url) ? null : await timed(() => decodeReused(url, ctx.signal));
      const bytes = cat.value;
      const mbps = (seconds: number) => round(bytes / 1e6 / seconds);
      const result = {
        source: url,
        records: scan.value.records,
        bytes,
        seconds: round(scan.seconds),
        recordsPerSecond: round(scan.value.records / scan.seconds),
        megabytesPerSecond: mbps(scan.seconds),
        catSeconds: round(cat.seconds),
        catMegabytesPerSecond: mbps(cat.seconds),
        scanToCatRatio: round(scan.seconds / cat.seconds),
        decodeSeconds: decode ? round(decode.seconds) : null,
        decodeMegabytesPerSecond: decode ? mbps(decode.seconds) : null,
        detectionLabels: scan.value.detectionLabels,
        objects: scan.value.objects,
      };
      if (values.json) writeJsonLine(ctx.stdout, result);
      else ctx.stdout.write(summary(result));
    } finally {
      await storage.close();
    }
    return 0;
  },
};

function summary(r: { source: string; records: number; bytes: number; [k: string]: unknown }): string {
  const decode =
    r.decodeMegabytesPerSecond === null ? '' : `, decoder alone ${r.decodeMegabytesPerSecond} MB/s`;
  return (
    `${r.source}: ${r.records} records, ${(r.bytes / 1e6).toFixed(1)} MB; scan ${r.megabytesPerSecond} MB/s, ` +
    `plain read ${r.catMegabytesPerSecond} MB/s (scan takes ${r.scanToCatRatio}x as long)${decode}\n`
  );
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - started) / 1000 };
}

/** Reads `file` into one reused buffer, handing each filled part to `onChunk`; returns the bytes read. */
async function readReused(
  file: string,
  signal: AbortSignal,
  onChunk: (chunk: Buffer) => void,
): Promise<number> {
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    let bytes = 0;
    for (;;) {
      signal.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return bytes;
      onChunk(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/** The "cat" baseline; returns the bytes read. */
async function readPlain(storage: Storage, url: string, signal: AbortSignal): Promise<number> {
  if (!isS3Url(url)) return readReused(url, signal, () => {});
  let bytes = 0;
  for await (const chunk of storage.readStream(url, { signal })) bytes += chunk.length;
  return bytes;
}

function countRecord(counts: ScanCounts, url: string, record: DecodedRecord): void {
  const parsed = parseImageRecord(record.payload, { source: url, offset: record.offset });
  const label = parseDetectionLabel(parsed.labels);
  counts.records++;
  if (label) {
    counts.detectionLabels++;
    counts.objects += label.objects.length;
  }
}

async function scanSource(storage: Storage, url: string, signal: AbortSignal): Promise<ScanCounts> {
  const counts: ScanCounts = { records: 0, detectionLabels: 0, objects: 0 };
  const source = await openRecordIO(url, { storage, signal, useIndex: false });
  try {
    for await (const record of source.scan({ signal })) countRecord(counts, url, record);
  } finally {
    await source.close();
  }
  return counts;
}

/** Decoder + parsing over reused reads: records are used before the buffer is refilled (decoder invariant). */
async function decodeReused(file: string, signal: AbortSignal): Promise<ScanCounts> {
  const counts: ScanCounts = { records: 0, detectionLabels: 0, objects: 0 };
  const decoder = new RecordDecoder({ source: file });
  const out: DecodedRecord[] = [];
  await readReused(file, signal, (chunk) => {
    out.length = 0;
    for (const record of decoder.write(chunk, out)) countRecord(counts, file, record);
  });
  decoder.end();
  return counts;
}
