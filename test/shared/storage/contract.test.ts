import test, { type ExecutionContext } from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { createMemoryStorage } from '../../../shared/storage/memory.js';
import { createS3Storage } from '../../../shared/storage/s3.js';
import type { Storage } from '../../../shared/storage/storage.js';
import { type S3TestServer, startS3Server } from '../../helpers/s3-server.js';
import { collectChunks, inChunks, randomBytes, tempDir } from './fixtures.js';

/**
 * The Storage contract, run against every implementation: local files, memory, and S3 through the
 * real SDK against a real s3rver. Each test gets its own folder URL (`base`, ending in '/').
 */
interface Opened {
  storage: Storage;
  base: string;
}
interface Backend {
  name: string;
  open(t: ExecutionContext): Promise<Opened>;
}

const MiB = 1024 * 1024;
let server: S3TestServer | undefined;
let folderCounter = 0;

test.before(async () => {
  server = await startS3Server();
});
test.after.always(() => server?.close());

const backends: Backend[] = [
  {
    name: 'local',
    async open(t) {
      const dir = await tempDir(t, 'storage-contract-');
      // 1 MiB chunks instead of 8 so a 3 MiB object streams in several (the default is tested in local.test.ts).
      return { storage: createLocalStorage({ chunkBytes: MiB }), base: `${dir}/` };
    },
  },
  {
    // The same local storage with every readStream asking for reused buffers (1 MiB, two of them).
    // collectChunks copies each chunk before asking for the next, as that mode requires.
    name: 'local (reuseBuffers)',
    async open(t) {
      const dir = await tempDir(t, 'storage-contract-');
      const local = createLocalStorage({ reusedChunkBytes: MiB });
      const storage: Storage = {
        ...local,
        readStream: (url, options) => local.readStream(url, { ...options, reuseBuffers: true }),
      };
      return { storage, base: `${dir}/` };
    },
  },
  {
    name: 'memory',
    async open() {
      return { storage: createMemoryStorage(), base: `s3://memory/t${++folderCounter}/` };
    },
  },
  {
    name: 's3',
    async open() {
      const { endpoint, credentials, bucket } = server!;
      return {
        storage: createS3Storage({ endpoint, credentials }),
        base: `s3://${bucket}/t${++folderCounter}/`,
      };
    },
  },
];

const onBackend = test.macro<[Backend, (t: ExecutionContext, opened: Opened) => Promise<void>]>({
  async exec(t, backend, run) {
    const opened = await backend.open(t);
    t.teardown(() => opened.storage.close());
    await run(t, opened);
  },
  title: (provided, backend) => `${backend.name} storage ${provided}`,
});

function contract(title: string, run: (t: ExecutionContext, opened: Opened) => Promise<void>) {
  for (const backend of backends) test(title, onBackend, backend, run);
}

contract('reads back the whole object it wrote', async (t, { storage, base }) => {
  const bytes = randomBytes(100_003);
  await storage.write(`${base}obj.bin`, bytes);
  t.true((await storage.read(`${base}obj.bin`)).equals(bytes));
});

contract(
  'writes and reads back empty objects, from a buffer and from an empty stream',
  async (t, { storage, base }) => {
    async function* nothing(): AsyncGenerator<Uint8Array> {}
    for (const [name, body] of [
      ['from-buffer', new Uint8Array(0)],
      ['from-stream', nothing()],
    ] as const) {
      const url = `${base}empty/${name}`;
      await storage.write(url, body);
      t.is((await storage.stat(url))?.sizeBytes, 0, name);
      t.is((await storage.read(url)).length, 0, name);
      // No ranged read here: s3rver answers a Range on a 0-byte object with a malformed 206 and a reset.
      t.deepEqual(await collectChunks(storage.readStream(url)), [], name);
    }
  },
);

contract('reads ranges at the start, in the middle and past the end', async (t, { storage, base }) => {
  const url = `${base}ranges.bin`;
  const bytes = randomBytes(1000);
  await storage.write(url, bytes);
  const read = (start: number, end: number) => storage.read(url, { range: { start, end } });
  t.true((await read(0, 10)).equals(bytes.subarray(0, 10)));
  t.true((await read(100, 350)).equals(bytes.subarray(100, 350)));
  t.true((await read(990, 5000)).equals(bytes.subarray(990)), 'a range past the end stops at the end');
  t.is((await read(1000, 1010)).length, 0, 'a range starting at the end is empty');
  t.is((await read(5000, 6000)).length, 0, 'a range starting past the end is empty');
  t.is((await read(7, 7)).length, 0, 'an empty range is empty');
});

contract('rejects an inverted range, naming the URL', async (t, { storage, base }) => {
  await storage.write(`${base}r.bin`, randomBytes(10));
  const err = await t.throwsAsync(storage.read(`${base}r.bin`, { range: { start: 8, end: 2 } }));
  t.true(isClusterError(err, 'STORAGE'));
  t.true(err.message.startsWith(`${base}r.bin: `), err.message);
});

contract(
  'streams an object in chunks that concatenate to it, whole and ranged',
  async (t, { storage, base }) => {
    const url = `${base}stream.bin`;
    const bytes = randomBytes(3 * MiB + 17);
    await storage.write(url, bytes);
    const chunks = await collectChunks(storage.readStream(url));
    t.true(chunks.length > 1, `${chunks.length} chunk(s)`);
    t.true(Buffer.concat(chunks).equals(bytes));
    const ranged = await collectChunks(
      storage.readStream(url, { range: { start: 1_000_001, end: 2_500_000 } }),
    );
    t.true(Buffer.concat(ranged).equals(bytes.subarray(1_000_001, 2_500_000)));
    t.deepEqual(
      await collectChunks(storage.readStream(url, { range: { start: 5 * MiB, end: 6 * MiB } })),
      [],
    );
    t.deepEqual(await collectChunks(storage.readStream(url, { range: { start: 9, end: 9 } })), []);
  },
);

contract('writes a 20 MiB body in parts and reads back identical bytes', async (t, { storage, base }) => {
  const url = `${base}big.bin`;
  const bytes = randomBytes(20 * MiB + 5);
  await storage.write(url, bytes);
  t.is((await storage.stat(url))?.sizeBytes, bytes.length);
  t.true((await storage.read(url)).equals(bytes));
  const tail = await storage.read(url, { range: { start: 16 * MiB - 3, end: 30 * MiB } });
  t.true(tail.equals(bytes.subarray(16 * MiB - 3)), 'bytes across the part boundaries');
});

contract('writes an async-iterable body larger than one part', async (t, { storage, base }) => {
  const url = `${base}streamed.bin`;
  const bytes = randomBytes(9 * MiB + 1);
  await storage.write(url, inChunks(bytes, MiB / 2));
  t.true((await storage.read(url)).equals(bytes));
});

contract('overwrites an object with new content and size', async (t, { storage, base }) => {
  const url = `${base}x/over.bin`;
  await storage.write(url, randomBytes(5000, 1));
  const second = randomBytes(300, 2);
  await storage.write(url, second);
  t.true((await storage.read(url)).equals(second));
  t.is((await storage.stat(url))?.sizeBytes, 300);
});

contract('keeps its own copy of a written buffer and of a read one', async (t, { storage, base }) => {
  const url = `${base}copy.bin`;
  const bytes = Buffer.from('original');
  await storage.write(url, bytes);
  bytes.fill(0);
  const first = await storage.read(url);
  first.fill(1);
  t.is((await storage.read(url)).toString(), 'original');
});

contract(
  'stats an object with its size and mtime, and a missing one as undefined',
  async (t, { storage, base }) => {
    const url = `${base}dir/stat.bin`;
    await storage.write(url, randomBytes(1234));
    const info = await storage.stat(url);
    t.is(info?.url, url);
    t.is(info?.sizeBytes, 1234);
    t.true(Math.abs((info?.mtimeMs ?? 0) - Date.now()) < 60_000, `mtimeMs ${info?.mtimeMs}`);
    t.is(await storage.stat(`${base}dir/missing.bin`), undefined);
    t.is(await storage.stat(`${base}dir`), undefined, 'a folder is not an object');
  },
);

contract('lists the objects under a prefix, nested, sorted by URL', async (t, { storage, base }) => {
  const names = ['z/5', 'a/b/c/3', 'ab/4', 'a/1', 'a/b/2'];
  await Promise.all(names.map((name, i) => storage.write(`${base}${name}`, randomBytes(i + 1))));
  const urls = async (prefix: string) => (await storage.list(prefix)).map((info) => info.url);
  t.deepEqual(await urls(`${base}a/`), [`${base}a/1`, `${base}a/b/2`, `${base}a/b/c/3`]);
  t.deepEqual(await urls(`${base}a`), [`${base}a/1`, `${base}a/b/2`, `${base}a/b/c/3`, `${base}ab/4`]);
  t.deepEqual(await urls(`${base}a/b/c/3`), [`${base}a/b/c/3`], 'an object URL lists itself');
  t.deepEqual(await urls(`${base}nothing/`), []);
  const sizes = (await storage.list(base)).map((info) => info.sizeBytes);
  t.deepEqual(sizes, [4, 5, 2, 3, 1], 'sizes of a/1, a/b/2, a/b/c/3, ab/4, z/5');
});

contract('deletes an object, and deleting a missing one succeeds', async (t, { storage, base }) => {
  const url = `${base}del/gone.bin`;
  await storage.write(url, randomBytes(10));
  await storage.write(`${base}del/kept.bin`, randomBytes(10));
  await storage.delete(url);
  t.is(await storage.stat(url), undefined);
  t.deepEqual(
    (await storage.list(`${base}del/`)).map((info) => info.url),
    [`${base}del/kept.bin`],
  );
  await t.notThrowsAsync(storage.delete(url));
  await t.notThrowsAsync(storage.delete(`${base}never/was.bin`));
});

contract('reports a missing object as NOT_FOUND naming the URL', async (t, { storage, base }) => {
  const url = `${base}missing.rec`;
  for (const attempt of [
    () => storage.read(url),
    () => storage.read(url, { range: { start: 0, end: 10 } }),
    () => storage.read(url, { range: { start: 3, end: 3 } }),
    () => collectChunks(storage.readStream(url)),
  ]) {
    const err = await t.throwsAsync(attempt());
    t.true(isClusterError(err, 'NOT_FOUND'), err.message);
    t.true(err.message.startsWith(`${url}: `), err.message);
  }
});

contract('rejects with the abort reason when the signal is already aborted', async (t, { storage, base }) => {
  const url = `${base}aborted.bin`;
  await storage.write(url, randomBytes(10));
  const reason = new Error('stop now');
  const signal = AbortSignal.abort(reason);
  for (const attempt of [
    () => storage.read(url, { signal }),
    () => collectChunks(storage.readStream(url, { signal })),
    () => storage.write(url, randomBytes(5), { signal }),
    () => storage.stat(url, { signal }),
    () => storage.list(base, { signal }),
    () => storage.delete(url, { signal }),
  ]) {
    t.is(await t.throwsAsync(attempt()), reason);
  }
  t.is((await storage.stat(url))?.sizeBytes, 10, 'neither written nor deleted');
});

contract('ends a stream with the abort reason when aborted between chunks', async (t, { storage, base }) => {
  const url = `${base}abort-stream.bin`;
  await storage.write(url, randomBytes(3 * MiB));
  const controller = new AbortController();
  const reason = new Error('enough');
  const chunks = storage.readStream(url, { signal: controller.signal })[Symbol.asyncIterator]();
  t.false((await chunks.next()).done);
  controller.abort(reason);
  t.is(await t.throwsAsync(chunks.next()), reason);
});

contract(
  'abandons a write aborted in the middle of its body, leaving no object',
  async (t, { storage, base }) => {
    const url = `${base}abort-write.bin`;
    const controller = new AbortController();
    const reason = new Error('cancelled upload');
    async function* body() {
      yield randomBytes(MiB, 1);
      controller.abort(reason);
      yield randomBytes(MiB, 2);
    }
    t.is(await t.throwsAsync(storage.write(url, body(), { signal: controller.signal })), reason);
    t.is(await storage.stat(url), undefined);
  },
);

contract('rejects calls after close, and close is idempotent', async (t, { storage, base }) => {
  await storage.write(`${base}c.bin`, randomBytes(1));
  await storage.close();
  await storage.close();
  const err = await t.throwsAsync(storage.read(`${base}c.bin`));
  t.true(isClusterError(err, 'STORAGE'));
  t.regex(err.message, /closed/);
});
