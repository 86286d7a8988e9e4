import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { CheckpointMeta } from '../../../coordinator/checkpoint/format.js';
import { type CheckpointStore, createCheckpointStore } from '../../../coordinator/checkpoint/store.js';
import { ClusterError, ConfigError, isClusterError } from '../../../shared/errors.js';
import { createMemoryLogger } from '../../../shared/logging.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { Storage } from '../../../shared/storage/storage.js';
import type { TrainerState } from '../../../worker/train/trainer-state.js';
import { type S3TestServer, startS3Server } from '../../helpers/s3-server.js';
import { tempDir } from '../../shared/storage/fixtures.js';
import { assertSameState, makeMeta, makeState } from './fixtures.js';

/**
 * The checkpoint store over real storage: a local folder and a real S3-compatible server (s3rver),
 * both through createStorage. Each test gets a fresh checkpoint directory.
 */
interface Opened {
  storage: Storage;
  /** The checkpoint directory, no trailing slash. */
  dir: string;
}

let server: S3TestServer | undefined;
let runCounter = 0;
test.before(async () => {
  server = await startS3Server();
});
test.after.always(() => server?.close());

const backends: { name: string; open(t: ExecutionContext): Promise<Opened> }[] = [
  {
    name: 'local',
    async open(t) {
      return {
        storage: createStorage({ env: {} }),
        dir: path.join(await tempDir(t, 'ckpt-'), 'checkpoints'),
      };
    },
  },
  {
    name: 's3',
    async open() {
      const { endpoint, credentials, bucket } = server!;
      const storage = createStorage({ s3Endpoint: endpoint, s3Credentials: credentials, env: {} });
      return { storage, dir: `s3://${bucket}/run${++runCounter}/checkpoints` };
    },
  },
];

function onBoth(title: string, run: (t: ExecutionContext, opened: Opened) => Promise<void>): void {
  for (const backend of backends) {
    test(`${title} (${backend.name})`, async (t) => {
      const opened = await backend.open(t);
      t.teardown(() => opened.storage.close());
      await run(t, opened);
    });
  }
}

/**
 * The storage with every completed write and the start and end of every delete recorded relative to
 * `dir`; `afterWrite` runs once a write has completed.
 */
function recording(storage: Storage, dir: string, afterWrite?: (name: string) => void) {
  const events: string[] = [];
  const rel = (url: string) => url.slice(dir.length + 1);
  const recorded: Storage = {
    ...storage,
    async write(url, body, options) {
      await storage.write(url, body, options);
      events.push(`write ${rel(url)}`);
      afterWrite?.(rel(url));
    },
    async delete(url, options) {
      events.push(`delete ${rel(url)}`);
      await storage.delete(url, options);
      events.push(`deleted ${rel(url)}`);
    },
  };
  return { storage: recorded, events };
}

function open(t: ExecutionContext, storage: Storage, dir: string, keep = 10) {
  const logger = createMemoryLogger();
  const store = createCheckpointStore({ storage, dir, keep, logger });
  t.teardown(() => store.close());
  return { store, logger };
}

async function writeSteps(store: CheckpointStore, steps: number[], meta?: CheckpointMeta): Promise<string[]> {
  const urls: string[] = [];
  for (const globalStep of steps) urls.push(await store.write(makeState({ globalStep }), meta ?? makeMeta()));
  return urls;
}

async function objectsUnder(storage: Storage, dir: string): Promise<string[]> {
  return (await storage.list(`${dir}/`)).map((o) => o.url.slice(dir.length + 1));
}

async function editObject(storage: Storage, url: string, edit: (bytes: Buffer) => Buffer): Promise<void> {
  await storage.write(url, edit(await storage.read(url)));
}

onBoth(
  'store writes tensors.bin, state.json, then manifest.json, and load reads the state back bit for bit',
  async (t, { storage, dir }) => {
    const rec = recording(storage, dir);
    const { store } = open(t, rec.storage, dir);
    const state = makeState({ globalStep: 120, optimizer: 'adam' });
    const meta = makeMeta();
    const url = await store.write(state, meta);
    t.is(url, `${dir}/ckpt-000000000120`);
    t.deepEqual(rec.events, [
      'delete ckpt-000000000120/manifest.json',
      'deleted ckpt-000000000120/manifest.json',
      'write ckpt-000000000120/tensors.bin',
      'write ckpt-000000000120/state.json',
      'write ckpt-000000000120/manifest.json',
    ]);
    for (const given of [url, `${url}/`, `${url}/manifest.json`]) {
      const loaded = await store.load(given);
      t.is(loaded.url, url);
      assertSameState(t, loaded.state, state);
      t.deepEqual(loaded.meta, meta);
      t.like(loaded.manifest, { globalStep: 120, epoch: 2, position: 160, createdAt: meta.createdAt });
    }
    t.deepEqual(
      (await store.list()).map((c) => c.url),
      [url],
    );
  },
);

onBoth(
  'store streams a tensors.bin larger than one write slice and it still verifies',
  async (t, { storage, dir }) => {
    const { store } = open(t, storage, dir);
    const state = makeState({ globalStep: 7, largeFloats: 2_200_000 }); // 8.8 MB per array (> one 8 MiB slice), 2 arrays
    const url = await store.write(state, makeMeta());
    const loaded = await store.load(url);
    t.true(loaded.manifest.files.find((f) => f.path === 'tensors.bin')!.sizeBytes > 17_600_000);
    assertSameState(t, loaded.state, state);
  },
);

onBoth(
  'store keeps the newest K checkpoints and deletes each manifest.json before the rest',
  async (t, { storage, dir }) => {
    const rec = recording(storage, dir);
    const { store } = open(t, rec.storage, dir, 2);
    const urls = await writeSteps(store, [10, 20, 30, 40]);
    t.deepEqual(
      (await store.list()).map((c) => c.url),
      [urls[3], urls[2]],
    );
    const left = await objectsUnder(storage, dir);
    t.deepEqual(
      new Set(left.map((u) => u.split('/')[0])),
      new Set(['ckpt-000000000030', 'ckpt-000000000040']),
    );
    for (const name of ['ckpt-000000000010', 'ckpt-000000000020']) {
      const after = rec.events.slice(rec.events.indexOf(`write ${name}/manifest.json`));
      const manifestGone = after.indexOf(`deleted ${name}/manifest.json`);
      const others = [`delete ${name}/state.json`, `delete ${name}/tensors.bin`].map((e) => after.indexOf(e));
      t.true(manifestGone >= 0, `${name}: manifest deleted`);
      t.true(
        others.every((i) => i > manifestGone),
        `${name}: the other files are deleted only once manifest.json is gone`,
      );
    }
    assertSameState(t, (await store.load(urls[2]!)).state, makeState({ globalStep: 30 }));
    if (!dir.startsWith('s3://')) {
      t.deepEqual(
        (await fs.readdir(dir)).sort(),
        ['ckpt-000000000030', 'ckpt-000000000040'],
        'no empty folders left',
      );
    }
  },
);

onBoth(
  'loadNewestValid skips a checkpoint without manifest, one with a flipped byte in tensors.bin and one with a truncated state.json, naming each',
  async (t, { storage, dir }) => {
    const { store, logger } = open(t, storage, dir);
    const [u10, u20, u30, u40] = await writeSteps(store, [10, 20, 30, 40]);
    await storage.delete(`${u40}/manifest.json`); // a crash before the manifest
    await editObject(storage, `${u30}/state.json`, (b) => b.subarray(0, b.length >> 1));
    await editObject(storage, `${u20}/tensors.bin`, (b) => {
      b[b.length >> 1]! ^= 0x10;
      return b;
    });
    const loaded = await store.loadNewestValid();
    t.is(loaded?.url, u10);
    assertSameState(t, loaded!.state, makeState({ globalStep: 10 }));
    const warnings = logger.entries.filter((e) => e.level === 'warn');
    t.deepEqual(
      warnings.map((w) => [w.msg, w.fields.url]),
      [
        ['skipping checkpoint', u40],
        ['skipping checkpoint', u30],
        ['skipping checkpoint', u20],
      ],
    );
    const reasons = warnings.map((w) => String(w.fields.reason));
    t.regex(reasons[0]!, /no manifest\.json/);
    t.regex(reasons[1]!, /state\.json: is \d+ bytes, the manifest says \d+/);
    t.regex(reasons[2]!, /tensors\.bin: sha256 [0-9a-f]+ does not match/);
  },
);

onBoth(
  'load of a corrupt or partial checkpoint fails with CHECKPOINT_CORRUPT naming it',
  async (t, { storage, dir }) => {
    const { store } = open(t, storage, dir);
    const [u10, u20] = await writeSteps(store, [10, 20]);
    await editObject(storage, `${u10}/tensors.bin`, (b) => b.subarray(0, b.length - 64));
    await storage.delete(`${u20}/manifest.json`);
    const truncated = await t.throwsAsync(store.load(u10!));
    t.true(isClusterError(truncated, 'CHECKPOINT_CORRUPT'));
    t.regex(truncated!.message, new RegExp(`^checkpoint ${u10}: tensors\\.bin: is \\d+ bytes`));
    const partial = await t.throwsAsync(store.load(u20!));
    t.true(isClusterError(partial, 'CHECKPOINT_CORRUPT'));
    t.is(partial!.message, `checkpoint ${u20}: manifest.json: missing`);
    const nowhere = await t.throwsAsync(store.load(`${dir}/ckpt-000000000099`));
    t.true(isClusterError(nowhere, 'CHECKPOINT_CORRUPT'));
  },
);

onBoth(
  'loadNewestValid returns undefined when the directory holds no checkpoint',
  async (t, { storage, dir }) => {
    const { store, logger } = open(t, storage, dir);
    t.is(await store.loadNewestValid(), undefined);
    await storage.write(`${dir}/README.txt`, Buffer.from('not a checkpoint'));
    t.is(await store.loadNewestValid(), undefined);
    t.deepEqual(logger.entries, []);
  },
);

onBoth(
  'an abort after tensors.bin leaves no manifest, and resume falls back to the previous checkpoint',
  async (t, { storage, dir }) => {
    const controller = new AbortController();
    const reason = new ClusterError('ABORTED', 'spot instance reclaimed');
    const rec = recording(storage, dir, (name) => {
      if (name === 'ckpt-000000000020/tensors.bin') controller.abort(reason);
    });
    const { store, logger } = open(t, rec.storage, dir);
    const [u10] = await writeSteps(store, [10]);
    const err = await t.throwsAsync(
      store.write(makeState({ globalStep: 20 }), makeMeta(), controller.signal),
    );
    t.is(err, reason);
    t.deepEqual(
      (await objectsUnder(storage, dir)).filter((u) => u.startsWith('ckpt-000000000020/')),
      ['ckpt-000000000020/tensors.bin'],
    );
    t.is((await store.loadNewestValid())?.url, u10);
    t.deepEqual(
      logger.entries.filter((e) => e.level === 'warn').map((e) => e.fields.url),
      [`${dir}/ckpt-000000000020`],
    );
  },
);

onBoth('a write with an already aborted signal touches nothing', async (t, { storage, dir }) => {
  const rec = recording(storage, dir);
  const { store } = open(t, rec.storage, dir);
  const reason = new ClusterError('ABORTED', 'shutting down');
  const err = await t.throwsAsync(store.write(makeState(), makeMeta(), AbortSignal.abort(reason)));
  t.is(err, reason);
  t.deepEqual(rec.events, []);
  const listErr = await t.throwsAsync(store.loadNewestValid(AbortSignal.abort(reason)));
  t.is(listErr, reason);
});

onBoth(
  'rewriting a step replaces its checkpoint, so the epoch-end state wins over the mid-epoch one',
  async (t, { storage, dir }) => {
    const { store } = open(t, storage, dir, 1);
    const midEpoch = makeState({ globalStep: 50 });
    const epochEnd: TrainerState = {
      ...midEpoch,
      progress: Object.freeze({ ...midEpoch.progress, epoch: midEpoch.progress.epoch + 1, position: 0 }),
    };
    const first = await store.write(midEpoch, makeMeta('2025-03-01T12:00:00.000Z'));
    const second = await store.write(epochEnd, makeMeta('2025-03-01T12:00:05.000Z'));
    t.is(first, second);
    const loaded = await store.loadNewestValid();
    t.deepEqual(loaded?.state.progress, epochEnd.progress);
    t.is(loaded?.manifest.createdAt, '2025-03-01T12:00:05.000Z');
    t.is((await store.list()).length, 1);
  },
);

onBoth(
  'writes issued together run one at a time and pruning never removes a write in progress',
  async (t, { storage, dir }) => {
    const rec = recording(storage, dir);
    const { store } = open(t, rec.storage, dir, 1);
    const urls = await Promise.all(
      [10, 20, 30].map((s) => store.write(makeState({ globalStep: s }), makeMeta())),
    );
    const firstOf = (name: string) => rec.events.findIndex((e) => e.includes(name));
    const lastOf = (name: string) => rec.events.findLastIndex((e) => e.startsWith(`write ${name}`));
    t.true(lastOf('ckpt-000000000010') < firstOf('ckpt-000000000020'));
    t.true(lastOf('ckpt-000000000020') < firstOf('ckpt-000000000030'));
    t.deepEqual(
      (await store.list()).map((c) => c.url),
      [urls[2]],
    );
  },
);

test('createCheckpointStore rejects a keep below 1 and an empty directory, naming the flag', (t) => {
  const storage = createStorage({ env: {} });
  t.teardown(() => storage.close());
  const keep = t.throws(() => createCheckpointStore({ storage, dir: '/tmp/x', keep: 0 }), {
    instanceOf: ConfigError,
  });
  t.regex(keep.message, /^--keep-checkpoints: must be an integer >= 1, got 0/);
  const dir = t.throws(() => createCheckpointStore({ storage, dir: '', keep: 2 }), {
    instanceOf: ConfigError,
  });
  t.regex(dir.message, /^--checkpoint-dir: required/);
});

test('close waits for the write in progress and later writes are refused', async (t) => {
  const root = await tempDir(t, 'ckpt-close-');
  const storage = createStorage({ env: {} });
  t.teardown(() => storage.close());
  const dir = path.join(root, 'checkpoints');
  const store = createCheckpointStore({ storage, dir, keep: 2 });
  const writing = store.write(makeState({ globalStep: 5 }), makeMeta());
  await store.close();
  await store.close();
  t.deepEqual(
    (await objectsUnder(storage, dir)).filter((u) => u.endsWith('manifest.json')),
    ['ckpt-000000000005/manifest.json'],
  );
  t.is(await writing, `${dir}/ckpt-000000000005`);
  await t.throwsAsync(store.write(makeState({ globalStep: 6 }), makeMeta()), { message: /closed/ });
});
