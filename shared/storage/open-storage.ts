import { StorageError } from '../errors.js';
import { createLocalStorage } from './local.js';
import { createS3Storage, resolveS3ClientConfig, type S3Credentials, type S3StorageOptions } from './s3.js';
import { isS3Url, type Storage } from './storage.js';

/**
 * The Storage every command uses: `s3://bucket/key` URLs go to S3, everything else to the local file
 * system. The S3 client is created on the first S3 URL (so local-only runs never touch the credential
 * chain) and closed by close(), together with anything else this made.
 */
export interface CreateStorageOptions {
  /** `--s3-endpoint`: an S3-compatible store; else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL from `env`. */
  s3Endpoint?: string;
  /** Explicit S3 credentials; else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in `env`; else the SDK's chain. */
  s3Credentials?: S3Credentials;
  s3Region?: string;
  /** Where endpoint, region and static keys are looked up; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Tuning passed to the S3 storage (part size, upload queue, list page size). */
  s3?: Pick<S3StorageOptions, 'partSizeBytes' | 'queueSize' | 'listPageSize'>;
}

export function createStorage(options: CreateStorageOptions = {}): Storage {
  const s3Options: S3StorageOptions = {
    ...options.s3,
    endpoint: options.s3Endpoint,
    credentials: options.s3Credentials,
    region: options.s3Region,
    env: options.env,
  };
  resolveS3ClientConfig(s3Options); // a bad --s3-endpoint fails now, not at the first S3 URL
  const local = createLocalStorage();
  let s3: Storage | undefined;
  let closed = false;

  function pick(url: string): Storage {
    if (closed) throw new StorageError(url, 'storage is closed');
    if (!isS3Url(url)) return local;
    s3 ??= createS3Storage(s3Options);
    return s3;
  }

  // async wrappers, so a closed storage rejects like every other failure instead of throwing synchronously
  const storage: Storage = {
    read: async (url, readOptions) => pick(url).read(url, readOptions),
    async *readStream(url, readOptions) {
      yield* pick(url).readStream(url, readOptions);
    },
    write: async (url, body, writeOptions) => pick(url).write(url, body, writeOptions),
    stat: async (url, statOptions) => pick(url).stat(url, statOptions),
    list: async (prefix, listOptions) => pick(prefix).list(prefix, listOptions),
    delete: async (url, deleteOptions) => pick(url).delete(url, deleteOptions),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([local.close(), s3?.close()]);
    },
    [Symbol.asyncDispose]() {
      return storage.close();
    },
  };
  return storage;
}
