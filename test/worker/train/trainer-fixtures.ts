import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import type { Hyperparameters } from '../../../shared/config/hyperparameters.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { openDataset } from '../../../worker/data/open-dataset.js';
import { createSsdModel } from '../../../worker/model/ssd.js';
import { createTrainer, type Trainer, type TrainerOptions } from '../../../worker/train/trainer.js';
import { fixtureSynthOptions, writeDataset } from '../../helpers/synth-fixture.js';
import { wasmTf } from './step-fixtures.js';

/** A small synthetic data set on disk (64 px images, 5 classes) for trainer and CLI tests. */
export interface SynthFixture {
  dir: string;
  train: string;
  validation: string;
  classes: string;
  /** Deletes the directory. */
  remove(): Promise<void>;
}

/** The data set `ssd-cluster synth` writes with these sizes at 64 px, in a temp directory of its own. */
export async function writeSynthFixture(sizes: { train: number; validation: number }): Promise<SynthFixture> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'train-test-'));
  const remove = () => fs.rm(dir, { recursive: true, force: true });
  try {
    return { dir, remove, ...(await writeDataset(dir, fixtureSynthOptions(sizes))) };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** tiny at 64 px, 5 classes, batch 8: two steps per epoch of 16 images. */
export function tinyHyperparameters(overrides: Record<string, unknown> = {}): Readonly<Hyperparameters> {
  return compileHyperparameters({
    num_classes: 5,
    num_training_samples: 16,
    base_network: 'tiny',
    image_shape: 64,
    mini_batch_size: 8,
    epochs: 1,
    learning_rate: 0.01,
    ...overrides,
  });
}

/**
 * A trainer of the tiny SSD (wasm, model seeded with `seed`) over a fresh 16-image data set (no
 * validation channel); the data set, model and trainer are released when the test ends. The tfjs
 * engine is global: a file that calls this runs such tests one at a time.
 */
export async function tinyTrainer(
  t: { teardown(fn: () => unknown): void },
  options: { hp: Readonly<Hyperparameters>; seed: number } & Partial<TrainerOptions>,
): Promise<Trainer> {
  const tf = await wasmTf();
  const fixture = await writeSynthFixture({ train: 16, validation: 0 });
  t.teardown(() => fixture.remove());
  const storage = createStorage({ env: {} });
  t.teardown(() => storage.close());
  const train = await openDataset(fixture.train, { storage, numClasses: 5 });
  t.teardown(() => train.close());
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape: 64, numClasses: 5, seed: options.seed });
  t.teardown(() => model.dispose());
  const trainer = createTrainer({ tf, model, train, host: 'algo-1', ...options });
  t.teardown(() => trainer.close());
  return trainer;
}
