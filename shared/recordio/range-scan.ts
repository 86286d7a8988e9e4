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
 */
import type { ByteRange, Storage } from '../storage/storage.js';
import { type DecodedRecord, RecordDecoder } from './decoder.js';
import { findRecordHead, RECORD_HEADER_BYTES } from './record.js';

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
}

/** Records whose offset lies in `range` (default: the whole file), in file order. */
export async function* scanRecords(input: ScanInput): AsyncGenerator<DecodedRecord> {
  const start = alignUp(Math.max(0, input.range?.start ?? 0));
  const end = Math.min(input.range?.end ?? input.sizeBytes, input.sizeBytes);
  if (start >= end) return;
  const scan = new RangeScan(input.url, start, end, input.maxRecordBytes);
  let pos = start;
  while (!scan.done && pos < input.sizeBytes) {
    input.signal?.throwIfAborted();
    const windowEnd = pos < end ? end : Math.min(input.sizeBytes, pos + scan.tailBytesWanted());
    const range = { start: pos, end: windowEnd };
    let received = 0;
    const { signal, reuseBuffers } = input;
    for await (const chunk of input.storage.readStream(input.url, { range, signal, reuseBuffers })) {
      received += chunk.length;
      const { records, error } = scan.push(chunk);
      yield* records;
      if (error !== undefined) throw error;
      if (scan.done) return;
    }
    if (received === 0) break; // the file is shorter than its stat said: end() reports what is cut
    pos += received;
  }
  scan.finish();
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
    start: number,
    private readonly end: number,
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
