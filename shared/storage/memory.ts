import { type Clock, systemClock } from '../clock.js';
import { StorageError } from '../errors.js';
import {
  checkRange,
  compareUrls,
  type ObjectInfo,
  type ReadOptions,
  type Storage,
  type WriteOptions,
} from './storage.js';

/**
 * In-memory Storage for unit tests of other modules: the same semantics as local and S3 (ranges,
 * prefix listing, NOT_FOUND naming the URL, atomic writes, aborts), keyed by the URL string as given.
 * Buffers are copied in and out, so callers cannot change a stored object by mutating a buffer.
 */
export interface MemoryStorageOptions {
  /** Source of `mtimeMs`; defaults to the system clock. */
  clock?: Clock;
  /** Chunk size for readStream (default 64 KiB), small enough that tests see several chunks. */
  chunkBytes?: number;
}

interface StoredObject {
  bytes: Buffer;
  mtimeMs: number;
}

const DEFAULT_CHUNK_BYTES = 64 * 1024;

export function createMemoryStorage(options: MemoryStorageOptions = {}): Storage {
  const clock = options.clock ?? systemClock;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const objects = new Map<string, StoredObject>();
  let closed = false;

  function begin(url: string, signal: AbortSignal | undefined): void {
    if (closed) throw new StorageError(url, 'storage is closed');
    signal?.throwIfAborted();
  }

  function slice(url: string, { range, signal }: ReadOptions): Buffer {
    begin(url, signal);
    checkRange(url, range);
    const object = objects.get(url);
    if (!object) throw new StorageError(url, 'no such object', { code: 'NOT_FOUND' });
    return range ? object.bytes.subarray(range.start, range.end) : object.bytes;
  }

  async function collect(body: Uint8Array | AsyncIterable<Uint8Array>, url: string, signal?: AbortSignal) {
    if (body instanceof Uint8Array) return Buffer.from(body);
    const parts: Buffer[] = [];
    for await (const part of body) {
      begin(url, signal);
      parts.push(Buffer.from(part));
    }
    return Buffer.concat(parts);
  }

  const storage: Storage = {
    async read(url, readOptions = {}) {
      return Buffer.from(slice(url, readOptions));
    },

    async *readStream(url, readOptions = {}) {
      const bytes = slice(url, readOptions);
      for (let at = 0; at < bytes.length; at += chunkBytes) {
        if (at > 0) begin(url, readOptions.signal);
        yield Buffer.from(bytes.subarray(at, at + chunkBytes));
      }
    },

    async write(url, body, { signal }: WriteOptions = {}) {
      begin(url, signal);
      const bytes = await collect(body, url, signal);
      begin(url, signal);
      // Committed in one step after the whole body arrived: readers never see a partial object.
      objects.set(url, { bytes, mtimeMs: clock.now() });
    },

    async stat(url, { signal } = {}) {
      begin(url, signal);
      const object = objects.get(url);
      return object && { url, sizeBytes: object.bytes.length, mtimeMs: object.mtimeMs };
    },

    async list(prefix, { signal } = {}) {
      begin(prefix, signal);
      const found: ObjectInfo[] = [];
      for (const [url, object] of objects) {
        if (url.startsWith(prefix))
          found.push({ url, sizeBytes: object.bytes.length, mtimeMs: object.mtimeMs });
      }
      return found.sort(compareUrls);
    },

    async delete(url, { signal } = {}) {
      begin(url, signal);
      objects.delete(url);
    },

    async close() {
      closed = true;
    },

    [Symbol.asyncDispose]() {
      return storage.close();
    },
  };
  return storage;
}
