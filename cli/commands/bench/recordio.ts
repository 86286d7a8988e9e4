import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { errorMessage, StorageError, UsageError } from '../../../shared/errors.js';
import { type DecodedRecord, RecordDecoder } from '../../../shared/recordio/decoder.js';
import { parseDetectionLabel } from '../../../shared/recordio/detection-label.js';
import { parseImageRecord } from '../../../shared/recordio/image-record.js';
import { openRecordIO, type RecordIOSource, type ScanOptions } from '../../../shared/recordio/reader.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { isS3Url, type Storage } from '../../../shared/storage/storage.js';
import { parseCommandArgs } from '../../args.js';
import { type CliCommand, writeJsonLine } from '../../command.js';

const USAGE = `Usage: ssd-cluster bench recordio SOURCE [--json] [--s3-endpoint URL]

Times, in one run, over the same file (a path or an s3:// URL; MB = 10^6 bytes):
  cat     a path: the \`cat SOURCE > /dev/null\` process (GNU cat reads 128 KiB at a time into one
          buffer); an s3:// URL: the raw Storage stream, nothing done to the chunks.
  read    (paths only) the same bytes read in this process with fs reads into one reused 2 MiB buffer,
          nothing done to them: what Node.js itself costs next to cat.
  scan    openRecordIO(SOURCE).scan({ reuseBuffers: true }): every record decoded through the Storage
          stream's reused read buffers, its IRHeader and detection label parsed (not the image).
  freshScan  the same scan without reuseBuffers (a fresh 8 MiB buffer per chunk, the default mode).
  decode  (paths only) the RecordIO decoder and the same parsing over the read pass's buffer: the cost
          of the RecordIO code itself, without the Storage layer.

Fairness: for a path, one untimed cat pass runs first, so every timed pass reads the page cache when the
file fits in free memory (otherwise all of them read the disk). All passes read the whole file once, one
after another, so a busy machine slows them alike; run it a few times and compare within a run.

Output (--json: one JSON object):
  {"source", "records", "bytes", "seconds", "recordsPerSecond", "megabytesPerSecond",
   "catSeconds", "catMegabytesPerSecond", "scanToCatRatio",
   "readSeconds", "readMegabytesPerSecond", "freshScanSeconds", "freshScanMegabytesPerSecond",
   "decodeSeconds", "decodeMegabytesPerSecond" (read and decode are null for S3), "detectionLabels",
   "objects"}
  (seconds and megabytesPerSecond are the scan's.)
`;

/** The same size as local storage's reused read buffers (shared/storage/local.ts). */
const READ_BUFFER_BYTES = 2 * 1024 * 1024;

interface ScanCounts {
  records: number;
  detectionLabels: number;
  objects: number;
}

type Timed<T> = { value: T; seconds: number };

interface Passes {
  bytes: number;
  cat: Timed<unknown>;
  read: Timed<unknown> | null;
  scan: Timed<ScanCounts>;
  freshScan: Timed<ScanCounts>;
  decode: Timed<ScanCounts> | null;
}

export const command: CliCommand = {
  name: 'bench recordio',
  summary: 'records/s and MB/s of a sequential RecordIO scan, next to cat',
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
      const result = report(url, await runPasses(storage, url, ctx.signal));
      if (values.json) writeJsonLine(ctx.stdout, result);
      else ctx.stdout.write(summary(result));
    } finally {
      await storage.close();
    }
    return 0;
  },
};

/** The passes in a fixed order (see USAGE: Fairness). */
async function runPasses(storage: Storage, url: string, signal: AbortSignal): Promise<Passes> {
  const source = await openRecordIO(url, { storage, signal, useIndex: false });
  try {
    const isLocal = !isS3Url(url);
    if (isLocal) await runCat(url, signal); // warms the page cache; not timed
    const cat = await timed<unknown>(() => (isLocal ? runCat(url, signal) : readRaw(storage, url, signal)));
    const read = isLocal ? await timed(() => readReused(url, signal, () => {})) : null;
    const scan = await timed(() => scanSource(source, { signal, reuseBuffers: true }));
    const freshScan = await timed(() => scanSource(source, { signal }));
    const decode = isLocal ? await timed(() => decodeReused(url, signal)) : null;
    return { bytes: source.sizeBytes, cat, read, scan, freshScan, decode };
  } finally {
    await source.close();
  }
}

function report(url: string, p: Passes) {
  const mbps = (pass: Timed<unknown> | null) => (pass ? round(p.bytes / 1e6 / pass.seconds) : null);
  const seconds = (pass: Timed<unknown> | null) => (pass ? round(pass.seconds) : null);
  return {
    source: url,
    records: p.scan.value.records,
    bytes: p.bytes,
    seconds: seconds(p.scan),
    recordsPerSecond: round(p.scan.value.records / p.scan.seconds),
    megabytesPerSecond: mbps(p.scan),
    catSeconds: seconds(p.cat),
    catMegabytesPerSecond: mbps(p.cat),
    scanToCatRatio: round(p.scan.seconds / p.cat.seconds),
    readSeconds: seconds(p.read),
    readMegabytesPerSecond: mbps(p.read),
    freshScanSeconds: seconds(p.freshScan),
    freshScanMegabytesPerSecond: mbps(p.freshScan),
    decodeSeconds: seconds(p.decode),
    decodeMegabytesPerSecond: mbps(p.decode),
    detectionLabels: p.scan.value.detectionLabels,
    objects: p.scan.value.objects,
  };
}

function summary(r: ReturnType<typeof report>): string {
  const read = r.readMegabytesPerSecond === null ? '' : `, fs reads ${r.readMegabytesPerSecond} MB/s`;
  const decode =
    r.decodeMegabytesPerSecond === null ? '' : `, decoder alone ${r.decodeMegabytesPerSecond} MB/s`;
  return (
    `${r.source}: ${r.records} records, ${(r.bytes / 1e6).toFixed(1)} MB; scan ${r.megabytesPerSecond} MB/s, ` +
    `cat ${r.catMegabytesPerSecond} MB/s (scan takes ${r.scanToCatRatio}x as long)${read}, ` +
    `scan with fresh chunks ${r.freshScanMegabytesPerSecond} MB/s${decode}\n`
  );
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}

async function timed<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  const started = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - started) / 1000 };
}

/** `cat FILE > /dev/null` ('ignore' gives the child /dev/null); stderr is kept for the error message. */
async function runCat(file: string, signal: AbortSignal): Promise<void> {
  const child = spawn('cat', ['--', file], { stdio: ['ignore', 'ignore', 'pipe'], signal });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(stderr.trim() || `exit code ${code}`);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw new StorageError(file, `cat baseline failed: ${errorMessage(err)}`, { cause: err });
  }
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

/** The S3 baseline: the raw Storage stream; returns the bytes read. */
async function readRaw(storage: Storage, url: string, signal: AbortSignal): Promise<number> {
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

/** Each record is counted before the next is requested, as reuseBuffers requires. */
async function scanSource(source: RecordIOSource, options: ScanOptions): Promise<ScanCounts> {
  const counts: ScanCounts = { records: 0, detectionLabels: 0, objects: 0 };
  for await (const record of source.scan(options)) countRecord(counts, source.url, record);
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
