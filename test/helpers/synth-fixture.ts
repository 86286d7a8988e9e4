import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestFn } from 'ava';
import { createLocalStorage } from '../../shared/storage/local.js';
import { compileSynthOptions, type SynthOptions } from '../../shared/synth/synth-image.js';
import { type SynthDatasetUrls, writeSynthDataset } from '../../shared/synth/write-synth.js';

export interface SynthFixtureOptions {
  train: number;
  validation: number;
  /** Width and height of the images (default 64). */
  imageSize?: number;
  /** Shape classes (default: synth's, 5). */
  classes?: number;
}

/**
 * One synthetic data set per test file, in a temp directory that also holds the file's model, run and
 * checkpoint directories. The data set is exactly what `ssd-cluster synth --out DIR/data` writes with
 * the same options (seed 0): image i depends only on (seed, split, i).
 */
export interface SynthFixture {
  /** The temp directory (removed after the file's tests unless KEEP_TEST_DIR is set). */
  readonly dir: string;
  readonly train: string;
  readonly validation: string;
  /** The synth options the data set was written with (train and validation counts, classCount, ...). */
  readonly options: Readonly<SynthOptions>;
  /** A path in the data set's directory: data('train.idx'). */
  data(name: string): string;
  /** A path in the temp directory, beside the data set: path('model'), path('run', 'logs'). */
  path(...parts: string[]): string;
}

/**
 * Registers a serial before hook that writes the data set and an after.always hook that removes the
 * directory. Serial: hooks declared after this one (a reference run, say) start once the data exists.
 * Read the fixture's fields only inside hooks and tests.
 */
export function synthFixture(test: TestFn, options: SynthFixtureOptions): SynthFixture {
  const synthOptions = fixtureSynthOptions(options);
  let root: string | undefined;
  const dir = () => {
    if (root === undefined) throw new Error('synthFixture: read before its before hook ran');
    return root;
  };
  test.serial.before('write the synthetic data set', async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ssd-integration-'));
    await writeDataset(path.join(root, 'data'), synthOptions);
  });
  test.after.always('remove the temp directory', async (t) => {
    if (root === undefined) return;
    if (process.env.KEEP_TEST_DIR) t.log(`kept ${root}`);
    // Retries: a child process killed just before may still be closing files in it.
    else await fs.rm(root, { recursive: true, force: true, maxRetries: 5 });
  });
  return {
    get dir() {
      return dir();
    },
    get train() {
      return path.join(dir(), 'data', 'train.rec');
    },
    get validation() {
      return path.join(dir(), 'data', 'validation.rec');
    },
    options: synthOptions,
    data: (name) => path.join(dir(), 'data', name),
    path: (...parts) => path.join(dir(), ...parts),
  };
}

/** The synth options of a fixture: 64 px images and synth's 5 classes unless told, seed 0. */
export function fixtureSynthOptions(options: SynthFixtureOptions): Readonly<SynthOptions> {
  return compileSynthOptions({
    train: options.train,
    validation: options.validation,
    imageSize: options.imageSize ?? 64,
    classCount: options.classes,
  });
}

/** Writes what `ssd-cluster synth --out OUT` writes with `options`, in process, to the local disk. */
export async function writeDataset(out: string, options: Readonly<SynthOptions>): Promise<SynthDatasetUrls> {
  const storage = createLocalStorage();
  try {
    return await writeSynthDataset(out, options, { storage });
  } finally {
    await storage.close();
  }
}

/**
 * The hyperparameters that tie a tiny SSD to the fixture's data set: its class count, its number of
 * training samples and its image size.
 */
export function tinySsdFlags(fixture: SynthFixture): string[] {
  const { classCount, train, imageSize } = fixture.options;
  return [
    ...['--num-classes', String(classCount), '--num-training-samples', String(train)],
    ...['--base-network', 'tiny', '--image-shape', String(imageSize)],
  ];
}
