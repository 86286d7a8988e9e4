/**
 * Reading RecordIO files by URL (local path or s3://) through the Storage interface: sequential and
 * byte-range scans (range-scan.ts), random access by offset or by .idx key. The .idx beside the .rec
 * (same name, .idx extension) is loaded when present; the reader checks its offsets against the file.
 */
import { ClusterError, RecordIOError, StorageError } from '../errors.js';
import type { ByteRange, Storage } from '../storage/storage.js';
import { replaceExtension } from '../storage/url.js';
import { type DecodedRecord, RecordDecoder } from './decoder.js';
import { type IndexEntry, parseIndexFile, type RecordKey } from './index-file.js';
import { type CorruptData, scanRecords } from './range-scan.js';
import { recordHeadProblem } from './record.js';

export interface OpenRecordIOOptions {
  storage: Storage;
  signal?: AbortSignal;
  /** Load the .idx beside the .rec when there is one (default true). */
  useIndex?: boolean;
  /** Largest record accepted (default 2^29 - 1). */
  maxRecordBytes?: number;
}

export interface ScanOptions {
  /** Yield exactly the records whose first byte lies in [start, end). */
  range?: ByteRange;
  signal?: AbortSignal;
  /**
   * Faster sequential scans (local files): read through a few reused buffers instead of a fresh one per
   * chunk. Payloads may then be views of those buffers, so each record is only valid until the next one
   * is requested: copy a payload you keep. Default false.
   */
  reuseBuffers?: boolean;
  /**
   * Skip corrupt data instead of failing: each spot is reported here, in file order with the records,
   * and the scan resynchronises on the next record head (range-scan.ts, step 4).
   */
  onCorrupt?: (corrupt: CorruptData) => void;
}

export interface RecordIOSource {
  readonly url: string;
  readonly sizeBytes: number;
  /** URL of the .idx that was loaded, or null. */
  readonly indexUrl: string | null;
  /** The .idx entries in file order, or null when there is no .idx. */
  readonly index: readonly IndexEntry[] | null;
  scan(options?: ScanOptions): AsyncIterable<DecodedRecord>;
  /** The record starting at `offset`; an error when no record starts there. */
  readAt(offset: number, options?: { signal?: AbortSignal }): Promise<DecodedRecord>;
  /** The record the .idx gives for `key`. */
  readByKey(key: RecordKey, options?: { signal?: AbortSignal }): Promise<DecodedRecord>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The .idx URL for a .rec URL (`x.rec` -> `x.idx`), or null when the name does not end in .rec. */
export function indexUrlFor(recUrl: string): string | null {
  return recUrl.endsWith('.rec') ? replaceExtension(recUrl, '.idx') : null;
}

export async function openRecordIO(url: string, options: OpenRecordIOOptions): Promise<RecordIOSource> {
  const { storage, signal } = options;
  const info = await storage.stat(url, { signal });
  if (!info) throw new StorageError(url, 'no such RecordIO file', { code: 'NOT_FOUND' });
  let indexUrl = options.useIndex === false ? null : indexUrlFor(url);
  let index: IndexEntry[] | null = null;
  if (indexUrl !== null && (await storage.stat(indexUrl, { signal }))) {
    const text = (await storage.read(indexUrl, { signal })).toString('utf8');
    index = parseIndexFile(text, indexUrl).sort((a, b) => a.offset - b.offset);
    checkIndex(index, url, indexUrl, info.sizeBytes);
  } else {
    indexUrl = null;
  }
  return new StorageRecordIOSource(storage, url, info.sizeBytes, indexUrl, index, options.maxRecordBytes);
}

/** Cheap checks of .idx offsets against the .rec size; readAt checks that each is a record head. */
function checkIndex(index: readonly IndexEntry[], url: string, indexUrl: string, sizeBytes: number): void {
  for (const entry of index) {
    const where = `${indexUrl} line ${entry.line} (key ${entry.key})`;
    if (entry.offset >= sizeBytes) {
      throw new RecordIOError(
        url,
        entry.offset,
        `${where}: offset is past the end of the file (${sizeBytes} bytes): the .rec is truncated ` +
          '(an interrupted copy?) or the .idx belongs to another file; copy both again, or move the ' +
          '.idx away to read the .rec without it (corrupt records are then skipped or fail as --on-bad-record says)',
      );
    }
    if (entry.offset % 4 !== 0) {
      throw new RecordIOError(
        url,
        entry.offset,
        `${where}: offset is not a record start (not a multiple of 4)`,
      );
    }
  }
}

/** First read size for random access when no .idx gives the record's size. */
const DEFAULT_READ_BYTES = 256 * 1024;
/**
 * Least size of a read after the first, which otherwise asks for at most as much as has been read: a
 * record longer than its first read comes in reads that double. So a damaged length (up to 512 MiB)
 * costs about the distance to the next head, where the decoder stops it, not a read of all it claims.
 */
const FOLLOW_UP_READ_BYTES = 1024 * 1024;

class StorageRecordIOSource implements RecordIOSource {
  private closed = false;
  private byKey: Map<string, IndexEntry> | null = null;

  constructor(
    private readonly storage: Storage,
    readonly url: string,
    readonly sizeBytes: number,
    readonly indexUrl: string | null,
    readonly index: readonly IndexEntry[] | null,
    private readonly maxRecordBytes: number | undefined,
  ) {}

  scan(options: ScanOptions = {}): AsyncIterable<DecodedRecord> {
    this.checkOpen();
    const { storage, url, sizeBytes, maxRecordBytes } = this;
    return scanRecords({
      storage,
      url,
      sizeBytes,
      maxRecordBytes,
      range: options.range,
      signal: options.signal,
      reuseBuffers: options.reuseBuffers,
      onCorrupt: options.onCorrupt,
    });
  }

  async readAt(offset: number, options: { signal?: AbortSignal } = {}): Promise<DecodedRecord> {
    return this.readRecord(offset, `offset ${offset}`, options.signal);
  }

  async readByKey(key: RecordKey, options: { signal?: AbortSignal } = {}): Promise<DecodedRecord> {
    this.checkOpen();
    if (!this.index)
      throw new ClusterError('NOT_FOUND', `${this.url}: no .idx, so records cannot be read by key`);
    this.byKey ??= new Map(this.index.map((e) => [String(e.key), e]));
    const entry = this.byKey.get(String(key));
    if (!entry) throw new ClusterError('NOT_FOUND', `${this.indexUrl}: no key ${JSON.stringify(key)}`);
    const what = `.idx offset ${entry.offset} (${this.indexUrl} line ${entry.line}, key ${entry.key})`;
    return this.readRecord(entry.offset, what, options.signal);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError(this.url, 'the RecordIO source is closed');
  }

  /** Reads one record with as few storage reads as possible (one, when the .idx gives its size). */
  private async readRecord(
    offset: number,
    what: string,
    signal: AbortSignal | undefined,
  ): Promise<DecodedRecord> {
    this.checkOpen();
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % 4 !== 0 || offset >= this.sizeBytes) {
      const why = offset >= this.sizeBytes ? `past the end (${this.sizeBytes} bytes)` : 'not a multiple of 4';
      throw new RecordIOError(this.url, offset, `${what} is not a record start: ${why}`);
    }
    const decoder = new RecordDecoder({
      source: this.url,
      baseOffset: offset,
      maxRecordBytes: this.maxRecordBytes,
    });
    const out: DecodedRecord[] = [];
    let pos = offset;
    let want = this.sizeHint(offset);
    for (;;) {
      signal?.throwIfAborted();
      const chunk = await this.storage.read(this.url, { range: { start: pos, end: pos + want }, signal });
      const problem = pos === offset ? recordHeadProblem(chunk, 0) : null;
      if (problem !== null)
        throw new RecordIOError(this.url, offset, `${what} is not a record start: ${problem}`);
      if (chunk.length === 0) {
        decoder.end(); // throws: the record is cut short
        throw new RecordIOError(this.url, offset, `${what}: the file ends at byte ${pos}`);
      }
      try {
        decoder.write(chunk, out);
      } catch (err) {
        if (out.length === 0) throw err; // errors after the record are not this record's
      }
      if (out.length > 0) return out[0]!;
      pos += chunk.length;
      want = Math.min(decoder.bytesNeeded, Math.max(FOLLOW_UP_READ_BYTES, pos - offset));
    }
  }

  /** The record's size from the .idx (gap to the next offset), else a guess. */
  private sizeHint(offset: number): number {
    const index = this.index;
    if (!index) return DEFAULT_READ_BYTES;
    let lo = 0;
    let hi = index.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (index[mid]!.offset <= offset) lo = mid + 1;
      else hi = mid;
    }
    const next = index[lo]?.offset ?? this.sizeBytes;
    return index[lo - 1]?.offset === offset ? next - offset : DEFAULT_READ_BYTES;
  }
}
