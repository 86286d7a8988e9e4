import { StorageError } from '../errors.js';

/**
 * One interface over local paths and `s3://bucket/key` URLs. Every command that reads or writes
 * data takes either. Implementations: `local.ts` (node:fs), `s3.ts` (@aws-sdk/client-s3),
 * `memory.ts` (tests); `open-storage.ts` picks by URL.
 *
 * Errors are `StorageError` naming the URL (code NOT_FOUND for a missing object). An abort rejects with
 * the signal's reason, unwrapped, so `isAbortError` and typed reasons keep working.
 */
export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /**
   * One past the last byte (exclusive); may exceed the size, in which case the read stops at the end.
   * A range that starts at or past the end reads as empty (the object must still exist).
   */
  end: number;
}

export interface ObjectInfo {
  url: string;
  sizeBytes: number;
  mtimeMs: number;
}

export interface ReadOptions {
  range?: ByteRange;
  signal?: AbortSignal;
  /**
   * readStream only (default false): the implementation may yield views of a few read buffers that it
   * reuses, so a long sequential scan does not allocate (and page-fault in) fresh memory per chunk.
   * Each chunk is then only valid until the next one is requested: copy whatever you keep. An
   * implementation without such a mode (S3, memory) ignores the flag and yields fresh chunks.
   */
  reuseBuffers?: boolean;
}

export interface DeleteOptions {
  signal?: AbortSignal;
  /**
   * On local disk, also remove the object's folder when this was its last object (never an ancestor), as
   * a prefix vanishes with its last object on S3. Only for folders the caller made itself (a checkpoint's):
   * a folder the user made, with its owner and mode, stays unless asked. Best effort.
   */
  removeEmptyFolder?: boolean;
}

export interface WriteOptions {
  signal?: AbortSignal;
  contentType?: string;
}

export interface Storage {
  /** The whole object, or a byte range of it. */
  read(url: string, options?: ReadOptions): Promise<Buffer>;
  /** The object (or a range) as a stream of chunks, for large sequential scans. */
  readStream(url: string, options?: ReadOptions): AsyncIterable<Buffer>;
  /**
   * Writes an object atomically: a reader never sees a half-written object (local: temp file +
   * rename; S3: single PUT or multipart upload completed last). Large bodies use multipart.
   */
  write(url: string, body: Uint8Array | AsyncIterable<Uint8Array>, options?: WriteOptions): Promise<void>;
  /** Size and mtime, or `undefined` when there is no such object. */
  stat(url: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined>;
  /**
   * Objects whose URL starts with `prefix` as a plain string (a "folder" URL ending in / lists its
   * contents, recursively; without the / it also matches siblings like `dir2/`), sorted by URL.
   */
  list(prefix: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo[]>;
  /** Deletes one object; deleting a missing one is not an error. */
  delete(url: string, options?: DeleteOptions): Promise<void>;
  /** Idempotent; releases connections (S3). */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function isS3Url(url: string): boolean {
  return url.startsWith('s3://');
}

/** Throws a StorageError naming the URL unless `range` is whole numbers with 0 <= start <= end. */
export function checkRange(url: string, range: ByteRange | undefined): void {
  if (range === undefined) return;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new StorageError(
      url,
      `invalid byte range [${start}, ${end}): expected integers with 0 <= start <= end`,
    );
  }
}

/** Orders URLs by UTF-16 code units, the order `list` returns (S3 lists keys in the same order for ASCII). */
export function compareUrls(a: ObjectInfo, b: ObjectInfo): number {
  return a.url < b.url ? -1 : a.url > b.url ? 1 : 0;
}
