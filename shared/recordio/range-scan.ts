/**
 * Byte-range scans of a RecordIO file, for sharding. `scanRecords({ range: [start, end) })` yields exactly
 * the records whose first magic lies in [start, end), so adjacent ranges partition the file:
 *
 * 1. Range [0, end) decodes from byte 0, so garbage at the start of a file is an error, never skipped.
 *    Any other range resynchronises: it reads from `start` rounded up to 4 and looks for the first
 *    record head (an aligned magic followed by an lrec with cflag 0 or 1). Every aligned magic word in
 *    a file is a part head (the writer escapes magic words in data), so this finds exactly the record
 *    starts a sequential read would. The bytes it skips are the tail of the record that began before
 *    `start`, which the previous range reads in full.
 * 2. It decodes sequentially from that head, reading past `end` only to finish the last record that
 *    starts before `end`.
 * 3. It stops once it has read a valid head at or after `end` (or reached the end of the file). That
 *    check is what makes step 1 safe: bytes between the last record of one range and the first head of
 *    the next are always decoded by someone, so corruption there is an error rather than a silent skip.
 * 4. Corrupt data is an error, unless `onCorrupt` is given: then the scan reports it and resynchronises
 *    (as in step 1) 4 bytes after the spot, which is the head of the record being read when there was
 *    one, else where the next head should have been. So a damaged length costs only its own record: the
 *    decoder rejects a part whose data holds an aligned magic (a head it runs over), and the resync finds
 *    that head. A spot belongs to the range that decodes it: a record starting in the range, or the bytes
 *    right after the range's last record (which may lie past `end`; the next range skips them in step 1).
 *    Accepted records hold no head, so every range still resynchronises where a sequential scan would.
 */
import { RecordIOError } from '../errors.js';
import type { ByteRange, Storage } from '../storage/storage.js';
import { type DecodedRecord, RecordDecoder } from './decoder.js';
import {
  CFLAG,
  findRecordHead,
  lrecCflag,
  lrecLength,
  paddedLength,
  RECORD_HEADER_BYTES,
  RECORDIO_MAGIC,
} from './record.js';

/** Corrupt data that a scan with `onCorrupt` skipped. */
export interface CorruptData {
  /** The head of the record that does not decode, or where a record head should have been. */
  offset: number;
  /**
   * A (damaged) record starts at `offset`, as an .idx would list it: its head is valid, or only one
   * header word is damaged (the magic is there, or the lrec frames exactly up to the next part head or
   * the end of the file). False for bytes that frame no record (say, junk written between records).
   */
  isRecord: boolean;
  error: RecordIOError;
}

export interface ScanInput {
  storage: Storage;
  url: string;
  sizeBytes: number;
  range?: ByteRange;
  signal?: AbortSignal;
  maxRecordBytes?: number;
  /**
   * Read through the storage's reused buffers (ReadOptions.reuseBuffers). A record's payload may then
   * be a view of such a buffer: each record is only valid until the next one is requested.
   */
  reuseBuffers?: boolean;
  /** Skip corrupt data (step 4 above): called in file order with the records; the scan goes on. */
  onCorrupt?: (corrupt: CorruptData) => void;
}

/** Where a scan met corrupt data; `hasHead` when a valid record head starts there. */
interface CorruptSpot {
  offset: number;
  hasHead: boolean;
  error: RecordIOError;
}

/** Records whose offset lies in `range` (default: the whole file), in file order. */
export async function* scanRecords(input: ScanInput): AsyncGenerator<DecodedRecord> {
  let start = alignUp(Math.max(0, input.range?.start ?? 0));
  const end = Math.min(input.range?.end ?? input.sizeBytes, input.sizeBytes);
  while (start < end) {
    const spot = yield* scanFrom(input, new RangeScan(input.url, start, end, input.maxRecordBytes));
    if (spot === null) return;
    const isRecord = spot.hasHead || (await framesRecord(input, spot.offset));
    input.onCorrupt?.({ offset: spot.offset, isRecord, error: spot.error });
    start = alignUp(spot.offset + 4);
  }
}

/** One run of `scan` to its end; the corrupt spot that stopped it (with onCorrupt), else null. */
async function* scanFrom(
  input: ScanInput,
  scan: RangeScan,
): AsyncGenerator<DecodedRecord, CorruptSpot | null> {
  let pos = scan.start;
  while (!scan.done && pos < input.sizeBytes) {
    input.signal?.throwIfAborted();
    const windowEnd = pos < scan.end ? scan.end : Math.min(input.sizeBytes, pos + scan.tailBytesWanted());
    const range = { start: pos, end: windowEnd };
    let received = 0;
    const { signal, reuseBuffers } = input;
    for await (const chunk of input.storage.readStream(input.url, { range, signal, reuseBuffers })) {
      received += chunk.length;
      const { records, error } = scan.push(chunk);
      yield* records;
      if (error !== undefined) return corruptSpot(input, scan, error);
      if (scan.done) return null;
    }
    if (received === 0) break; // the file is shorter than its stat said: end() reports what is cut
    pos += received;
  }
  try {
    scan.finish();
  } catch (err) {
    return corruptSpot(input, scan, err);
  }
  return null;
}

function corruptSpot(input: ScanInput, scan: RangeScan, error: unknown): CorruptSpot | null {
  if (!input.onCorrupt || !(error instanceof RecordIOError)) throw error;
  return scan.spotOf(error);
}

/**
 * Whether the header at `at` (no valid head) is a record's with one damaged word: the magic is there
 * (the lrec is damaged), or the lrec frames exactly up to the end of the file or the part head that
 * must follow it (the magic is damaged). Data and junk almost never frame like that by chance.
 */
async function framesRecord(input: ScanInput, at: number): Promise<boolean> {
  const head = await readBytes(input, at);
  if (head.length >= 4 && head.readUInt32LE(0) === RECORDIO_MAGIC) return true;
  if (head.length < RECORD_HEADER_BYTES) return false;
  const cflag = lrecCflag(head.readUInt32LE(4));
  if (cflag > CFLAG.first) return false;
  const next = at + RECORD_HEADER_BYTES + paddedLength(lrecLength(head.readUInt32LE(4)));
  if (next === input.sizeBytes) return cflag === CFLAG.whole;
  const after = await readBytes(input, next);
  if (after.length < RECORD_HEADER_BYTES || after.readUInt32LE(0) !== RECORDIO_MAGIC) return false;
  const nextCflag = lrecCflag(after.readUInt32LE(4));
  return cflag === CFLAG.whole
    ? nextCflag <= CFLAG.first
    : nextCflag === CFLAG.middle || nextCflag === CFLAG.last;
}

/** Up to one header's bytes at `at` (fewer at the end of the file). */
async function readBytes(input: ScanInput, at: number): Promise<Buffer> {
  if (at >= input.sizeBytes) return Buffer.alloc(0);
  const range = { start: at, end: Math.min(input.sizeBytes, at + RECORD_HEADER_BYTES) };
  return input.storage.read(input.url, { range, signal: input.signal });
}

function alignUp(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/** The state of one range scan: resynchronising, then decoding; pure apart from the chunks it is given. */
class RangeScan {
  done = false;
  private decoder: RecordDecoder | null = null;
  /** Up to 7 unsearched bytes from the previous chunk while resynchronising. */
  private carry: Buffer = Buffer.alloc(0);
  /** File offset of the next chunk's first byte. */
  private offset: number;

  constructor(
    private readonly source: string,
    readonly start: number,
    readonly end: number,
    private readonly maxRecordBytes: number | undefined,
  ) {
    this.offset = start;
    if (start === 0) this.decoder = this.decoderAt(0);
  }

  /** Bytes to read past `end`: enough to finish the current part and see the next head. */
  tailBytesWanted(): number {
    return (this.decoder?.bytesNeeded ?? 0) + RECORD_HEADER_BYTES;
  }

  push(chunk: Buffer): { records: DecodedRecord[]; error?: unknown } {
    const data = this.decoder ? chunk : this.resync(chunk);
    this.offset += chunk.length;
    const records: DecodedRecord[] = [];
    if (data === null || !this.decoder) return { records };
    let error: unknown;
    try {
      this.decoder.write(data, records);
    } catch (err) {
      error = err;
    }
    const past = records.findIndex((r) => r.offset >= this.end);
    if (past >= 0) {
      records.length = past;
      this.done = true;
    }
    if (this.decoder.pendingRecordOffset >= this.end) this.done = true;
    return { records, error };
  }

  /**
   * Where `error` (from push or finish) lies: this range's to report (step 4), unless it is in a record
   * that starts at or past `end` (a guard: reads past `end` stop after one more header, so the scan is
   * done before it could meet such an error).
   */
  spotOf(error: RecordIOError): CorruptSpot | null {
    const pending = this.decoder?.pendingRecordOffset ?? -1;
    if (pending >= this.end) return null;
    return pending >= 0
      ? { offset: pending, hasHead: true, error }
      : { offset: error.offset, hasHead: false, error };
  }

  /** At the end of the file: a record cut short is an error. */
  finish(): void {
    this.decoder?.end();
  }

  /** Looks for the first head in carry + chunk; returns the bytes from it on, or null. */
  private resync(chunk: Buffer): Buffer | null {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const bufOffset = this.offset - this.carry.length;
    const i = findRecordHead(buf, bufOffset);
    if (i >= 0 && bufOffset + i < this.end) {
      this.decoder = this.decoderAt(bufOffset + i);
      return buf.subarray(i);
    }
    // No head before `end` here. Once every position below `end` has had its 8 bytes searched, stop.
    const searchedUpTo = bufOffset + buf.length - (RECORD_HEADER_BYTES - 1);
    if (i >= 0 || searchedUpTo >= this.end) this.done = true;
    this.carry = Buffer.from(buf.subarray(Math.max(0, buf.length - (RECORD_HEADER_BYTES - 1))));
    return null;
  }

  private decoderAt(offset: number): RecordDecoder {
    return new RecordDecoder({
      source: this.source,
      baseOffset: offset,
      maxRecordBytes: this.maxRecordBytes,
    });
  }
}
