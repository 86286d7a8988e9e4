import test from 'ava';
import sharp from 'sharp';
import { isClusterError } from '../../../shared/errors.js';
import { createMemoryLogger, noopLogger } from '../../../shared/logging.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { detectBatch, loadPredictor, type PredictorOptions } from '../../../worker/inference/predictor.js';
import { createSsdModel } from '../../../worker/model/ssd.js';
import { CLASS_NAMES, createTempDir, makeImage, SIDE, wasmTf, writeTinyModel } from './fixtures.js';

const storage = createLocalStorage();
let modelDir: string;
let removeModel: (() => Promise<void>) | undefined;
let tf: Awaited<ReturnType<typeof wasmTf>>;

test.before(async () => {
  tf = await wasmTf();
  ({ dir: modelDir, remove: removeModel } = await createTempDir('predictor-'));
  await writeTinyModel(storage, modelDir);
});
test.after.always(async () => {
  await storage.close();
  await removeModel?.();
});

async function open(t: { teardown(fn: () => unknown): void }, options: Partial<PredictorOptions> = {}) {
  const predictor = await loadPredictor(modelDir, {
    storage,
    backend: 'wasm',
    logger: noopLogger,
    ...options,
  });
  t.teardown(() => predictor.close());
  return predictor;
}

test.serial(
  'predict returns SageMaker rows: class ids of the model, scores in descending order, boxes in [0, 1]',
  async (t) => {
    const predictor = await open(t);
    t.is(predictor.backend, 'wasm');
    t.deepEqual(predictor.classes, CLASS_NAMES);
    const rows = await predictor.predict(await makeImage('jpeg', 90, 60));
    t.true(rows.length > 0);
    for (const [i, row] of rows.entries()) {
      t.is(row.length, 6);
      const [cls, score, x1, y1, x2, y2] = row as [number, number, number, number, number, number];
      t.true(Number.isInteger(cls) && cls >= 0 && cls < CLASS_NAMES.length, `class ${cls}`);
      t.true(score > 0 && score <= 1 && (i === 0 || score <= rows[i - 1]![1]!), `score ${score}`);
      t.true(0 <= x1 && x1 <= x2 && x2 <= 1 && 0 <= y1 && y1 <= y2 && y2 <= 1, `box ${row.slice(2)}`);
    }
  },
);

test.serial(
  'predict makes RGB of grey, grey+alpha and RGBA PNGs (the same rows as the RGB image) and reads 16-bit PNGs',
  async (t) => {
    const predictor = await open(t);
    const grey = Buffer.alloc(40 * 30);
    for (let i = 0; i < grey.length; i++) grey[i] = (i * 13) % 256;
    const rgb = Buffer.alloc(grey.length * 3);
    for (let i = 0; i < grey.length; i++) rgb.fill(grey[i]!, 3 * i, 3 * i + 3);
    const png = (data: Buffer, channels: 1 | 3) => sharp(data, { raw: { width: 40, height: 30, channels } });
    const expected = await predictor.predict(await png(rgb, 3).png().toBuffer());
    const variants = {
      grey: await png(grey, 1).toColourspace('b-w').png().toBuffer(),
      'grey+alpha': await png(grey, 1).toColourspace('b-w').ensureAlpha(1).png().toBuffer(),
      rgba: await png(rgb, 3).ensureAlpha(1).png().toBuffer(),
    };
    for (const [name, image] of Object.entries(variants)) {
      t.is((await sharp(image).metadata()).channels, name === 'grey' ? 1 : name === 'rgba' ? 4 : 2);
      t.deepEqual(await predictor.predict(image), expected, name);
    }
    // 16-bit samples come back to 8 bits with rounding, so the rows are only near the 8-bit ones.
    const deep = await predictor.predict(await png(rgb, 3).toColourspace('rgb16').png().toBuffer());
    t.is(deep.length, expected.length);
    t.true(Math.abs(deep[0]![1]! - expected[0]![1]!) < 0.01);
  },
);

test.serial('detectBatch gives each image of a batch the rows it gets alone', async (t) => {
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape: SIDE, numClasses: 2, seed: 5 });
  t.teardown(() => model.dispose());
  const inputs = [0, 1, 2].map((k) =>
    Float32Array.from({ length: SIDE * SIDE * 3 }, (_, i) => Math.sin(i * (k + 1) * 0.01)),
  );
  const before = tf.memory().numTensors;
  const together = await detectBatch(tf, model, inputs, {});
  t.is(tf.memory().numTensors, before);
  for (const [i, input] of inputs.entries()) {
    const [alone] = await detectBatch(tf, model, [input], {});
    t.is(together[i]!.length, alone!.length);
    for (const [r, row] of together[i]!.entries()) {
      const worst = Math.max(...row.map((x, k) => Math.abs(x - alone![r]![k]!)));
      t.true(worst < 1e-5, `image ${i} row ${r} differs by ${worst}`);
    }
  }
  t.notDeepEqual(together[0], together[1]);
});

test.serial(
  'predict runs concurrent calls in shared passes of at most maxBatch, each with the rows it gets alone',
  async (t) => {
    const logger = createMemoryLogger();
    const predictor = await open(t, { maxBatch: 3, logger });
    const sizes = [
      [90, 60],
      [64, 64],
      [30, 100],
      [128, 40],
      [50, 50],
    ] as const;
    const images = await Promise.all(sizes.map(([w, h]) => makeImage('png', w, h)));
    const alone: number[][][] = [];
    for (const image of images) alone.push(await predictor.predict(image));
    const passesOf = () => logger.entries.filter((e) => e.msg === 'forward pass').map((e) => e.fields.images);
    t.deepEqual(passesOf(), [1, 1, 1, 1, 1, 1], 'the warm-up and five lone calls');
    t.deepEqual(await Promise.all(images.map((image) => predictor.predict(image))), alone);
    t.deepEqual(passesOf().slice(6), [3, 2]);
  },
);

test.serial(
  'predict refuses non-images, other formats and broken data with an IMAGE error naming the source',
  async (t) => {
    const predictor = await open(t);
    const jpeg = await makeImage('jpeg', 64, 64);
    const cases: [Uint8Array, RegExp][] = [
      [Buffer.from('hello, not an image'), /upload\.bin: not a JPEG or PNG image \(starts with 68656c6c/],
      [new Uint8Array(0), /upload\.bin: not a JPEG or PNG image \(starts with nothing, 0 bytes\)/],
      [await makeImage('webp', 20, 20), /upload\.bin: not a JPEG or PNG image/],
      [jpeg.subarray(0, jpeg.length >> 1), /upload\.bin: cannot decode the jpeg image/],
    ];
    for (const [image, message] of cases) {
      const err = await t.throwsAsync(predictor.predict(image, { source: 'upload.bin' }), { message });
      t.true(isClusterError(err, 'IMAGE'));
    }
  },
);

test.serial('predict with --threshold leaves out exactly the rows scoring below it', async (t) => {
  const image = await makeImage('jpeg', 80, 80);
  const all = await (await open(t)).predict(image);
  const cut = (all[0]![1]! + all.at(-1)![1]!) / 2;
  const kept = await (await open(t, { scoreThreshold: cut })).predict(image);
  t.deepEqual(
    kept,
    all.filter((row) => row[1]! >= cut),
  );
  t.true(kept.length > 0 && kept.length < all.length);
});

test.serial('predictor leaks no tensors, frees its model on close, and refuses work after it', async (t) => {
  const baseline = tf.memory().numTensors;
  const predictor = await loadPredictor(modelDir, { storage, backend: 'wasm', logger: noopLogger });
  const loaded = tf.memory().numTensors;
  const image = await makeImage('png', 70, 50);
  await Promise.all([predictor.predict(image), predictor.predict(image), predictor.predict(image)]);
  await t.throwsAsync(predictor.predict(Buffer.from('nope')));
  t.is(tf.memory().numTensors, loaded);
  await predictor.close();
  await predictor.close();
  t.is(tf.memory().numTensors, baseline);
  await t.throwsAsync(predictor.predict(image), { message: /predictor: closed/ });
});

test.serial('predict rejects with the reason when its signal is already aborted', async (t) => {
  const predictor = await open(t);
  const reason = new Error('client gone');
  await t.throwsAsync(
    predictor.predict(await makeImage('png', 20, 20), { signal: AbortSignal.abort(reason) }),
    { is: reason },
  );
});

test.serial('loadPredictor refuses a batch size below 1 and a threshold outside [0, 1]', async (t) => {
  const options = { storage, backend: 'wasm' as const, logger: noopLogger };
  await t.throwsAsync(loadPredictor(modelDir, { ...options, maxBatch: 0 }), {
    message: /maxBatch: must be an integer >= 1/,
  });
  await t.throwsAsync(loadPredictor(modelDir, { ...options, scoreThreshold: 1.5 }), {
    message: /scoreThreshold: must be in \[0, 1\]/,
  });
});
