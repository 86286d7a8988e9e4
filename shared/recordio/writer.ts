/**
 * Writes PREFIX.rec and PREFIX.idx (im2rec's pair) atomically: records stream to a temporary file, the
 * .idx lines are kept in memory, and nothing appears under the final names until close():
 *
 * - local path: temp files beside the targets (named with the storage's TEMP_MARKER, so `list` hides
 *   them); close() fsyncs, deletes any old .idx, renames the .rec, then renames the .idx. A crash between
 *   the renames leaves a new .rec without an .idx, which readers scan sequentially: never a mismatched pair.
 * - s3:// URL: temp files in os.tmpdir(); close() deletes any old .idx, uploads the .rec with
 *   storage.write (multipart for large files), then the .idx.
 *
 * abort() (also `await using` without close) removes the temporaries and leaves the targets untouched.
 */
import { createReadStream } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ClusterError, ConfigError, errorMessage, StorageError } from '../errors.js';
import { TEMP_MARKER } from '../storage/local.js';
import { isS3Url, type Storage } from '../storage/storage.js';
import { replaceExtension } from '../storage/url.js';
import { formatIndexLine, type RecordKey } from './index-file.js';
import { encodeRecord } from './record.js';

export interface OpenRecordIOWriterOptions {
  storage: Storage;
  signal?: AbortSignal;
  /** Records are written in batches of about this many bytes (default 4 MiB). */
  bufferBytes?: number;
}

export interface RecordIOWriter {
  readonly url: string;
  readonly indexUrl: string;
  /** Records appended so far. */
  readonly recordCount: number;
  /** Bytes of .rec appended so far (the offset the next record gets). */
  readonly sizeBytes: number;
  /** Appends one record; keys must be unique (they become .idx lines). */
  append(key: RecordKey, payload: Uint8Array): Promise<void>;
  /** Publishes the .rec and .idx; idempotent. */
  close(): Promise<void>;
  /** Removes the temporaries; idempotent, and a no-op after a successful close(). */
  abort(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

type WriterState = 'open' | 'closing' | 'closed' | 'aborted';

interface TempFiles {
  rec: string;
  idx: string;
  /** A directory to remove with them (S3 staging), or null. */
  dir: string | null;
}

const DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024;
let tempCounter = 0;

export async function openRecordIOWriter(
  recUrl: string,
  options: OpenRecordIOWriterOptions,
): Promise<RecordIOWriter> {
  if (!recUrl.endsWith('.rec') || recUrl.endsWith('/.rec')) {
    throw new ConfigError([
      `${recUrl}: a RecordIO output must be named PREFIX.rec (PREFIX.idx is written beside it)`,
    ]);
  }
  options.signal?.throwIfAborted();
  let temps: TempFiles | undefined;
  try {
    temps = await makeTemps(recUrl);
    const handle = await fs.open(temps.rec, 'wx');
    return new FileRecordIOWriter(recUrl, temps, handle, options);
  } catch (err) {
    if (temps?.dir) await fs.rm(temps.dir, { recursive: true, force: true });
    throw new StorageError(recUrl, `cannot create a temporary file: ${errorMessage(err)}`, { cause: err });
  }
}

async function makeTemps(recUrl: string): Promise<TempFiles> {
  if (isS3Url(recUrl)) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ssd-cluster-recordio-'));
    return { rec: path.join(dir, 'staged.rec'), idx: path.join(dir, 'staged.idx'), dir };
  }
  await fs.mkdir(path.dirname(recUrl), { recursive: true });
  const stem = (url: string) =>
    path.join(path.dirname(url), `.${path.basename(url)}${TEMP_MARKER}${process.pid}-`);
  for (;;) {
    const n = ++tempCounter;
    const temps = {
      rec: `${stem(recUrl)}${n}`,
      idx: `${stem(replaceExtension(recUrl, '.idx'))}${n}`,
      dir: null,
    };
    // A leftover from a crashed writer with the same pid is skipped, never reused.
    if (!(await exists(temps.rec)) && !(await exists(temps.idx))) return temps;
  }
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

class FileRecordIOWriter implements RecordIOWriter {
  readonly indexUrl: string;
  recordCount = 0;
  sizeBytes = 0;
  private state: WriterState = 'open';
  private readonly keys = new Set<string>();
  private readonly indexLines: string[] = [];
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushedBytes = 0;
  /** Flushes run one after another; a failed one fails every later one. */
  private flushing: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private aborting: Promise<void> | null = null;
  private readonly bufferBytes: number;

  constructor(
    readonly url: string,
    private readonly temps: TempFiles,
    private readonly handle: FileHandle,
    private readonly options: OpenRecordIOWriterOptions,
  ) {
    this.indexUrl = replaceExtension(url, '.idx');
    this.bufferBytes = options.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  }

  async append(key: RecordKey, payload: Uint8Array): Promise<void> {
    if (this.state !== 'open')
      throw new ClusterError('RECORDIO', `${this.url}: append after the writer was ${this.state}`);
    this.options.signal?.throwIfAborted();
    const keyText = String(key);
    if (this.keys.has(keyText))
      throw new ClusterError('RECORDIO', `${this.url}: duplicate key ${JSON.stringify(keyText)}`);
    const line = formatIndexLine(key, this.sizeBytes);
    const record = encodeRecord(payload);
    this.keys.add(keyText);
    this.indexLines.push(line);
    this.recordCount++;
    this.sizeBytes += record.length;
    this.pending.push(record);
    this.pendingBytes += record.length;
    if (this.pendingBytes >= this.bufferBytes) await this.flush();
  }

  close(): Promise<void> {
    if (this.state === 'aborted')
      return Promise.reject(new ClusterError('RECORDIO', `${this.url}: close after abort`));
    this.closing ??= this.publish();
    return this.closing;
  }

  abort(): Promise<void> {
    this.aborting ??= (async () => {
      if (this.closing) return void (await this.closing.catch(() => {})); // close cleans up after itself
      this.state = 'aborted';
      await this.flushing.catch(() => {});
      await this.discard();
    })();
    return this.aborting;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.abort();
  }

  private flush(): Promise<void> {
    const buffers = this.pending;
    const position = this.flushedBytes;
    this.pending = [];
    this.flushedBytes += this.pendingBytes;
    this.pendingBytes = 0;
    this.flushing = this.flushing.then(() => writeAt(this.handle, buffers, position));
    return this.flushing;
  }

  private async publish(): Promise<void> {
    this.state = 'closing';
    const { signal, storage } = this.options;
    try {
      signal?.throwIfAborted();
      await this.flush();
      await this.handle.sync();
      await this.handle.close();
      await fs.writeFile(this.temps.idx, this.indexLines.join(''), { flag: 'wx', flush: true });
      await storage.delete(this.indexUrl, { signal });
      if (this.temps.dir === null) await this.rename();
      else await this.upload(storage, signal);
      this.state = 'closed';
    } catch (err) {
      this.state = 'aborted';
      await this.discard();
      if (err instanceof ClusterError || signal?.aborted) throw err;
      throw new StorageError(this.url, `writing the RecordIO pair failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  private async rename(): Promise<void> {
    await fs.rename(this.temps.rec, this.url);
    await fs.rename(this.temps.idx, this.indexUrl);
  }

  private async upload(storage: Storage, signal: AbortSignal | undefined): Promise<void> {
    await storage.write(this.url, createReadStream(this.temps.rec, { highWaterMark: 8 * 1024 * 1024 }), {
      signal,
    });
    await storage.write(this.indexUrl, await fs.readFile(this.temps.idx), {
      signal,
      contentType: 'text/plain',
    });
    await this.discard();
  }

  /** Closes the file and removes the temporaries (whatever of them exists). */
  private async discard(): Promise<void> {
    await this.handle.close().catch(() => {});
    await Promise.all([fs.rm(this.temps.rec, { force: true }), fs.rm(this.temps.idx, { force: true })]);
    if (this.temps.dir !== null) await fs.rm(this.temps.dir, { recursive: true, force: true });
  }
}

/** Writes `buffers` contiguously at `position`, finishing short writes. */
async function writeAt(handle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  const first = (await handle.writev(buffers, position)).bytesWritten;
  if (first === total) return;
  const rest = Buffer.concat(buffers).subarray(first);
  for (let done = 0; done < rest.length; ) {
    done += (await handle.write(rest, done, rest.length - done, position + first + done)).bytesWritten;
  }
}
