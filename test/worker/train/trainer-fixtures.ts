import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import type { Hyperparameters } from '../../../shared/config/hyperparameters.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { compileSynthOptions } from '../../../shared/synth/synth-image.js';
import { writeSynthDataset } from '../../../shared/synth/write-synth.js';

/** A small synthetic data set on disk (64 px images, 5 classes) for trainer and CLI tests. */
export interface SynthFixture {
  dir: string;
  train: string;
  validation: string;
  classes: string;
  /** Deletes the directory. */
  remove(): Promise<void>;
}

export async function writeSynthFixture(sizes: { train: number; validation: number }): Promise<SynthFixture> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'train-test-'));
  const remove = () => fs.rm(dir, { recursive: true, force: true });
  const storage = createStorage({ env: {} });
  try {
    const options = compileSynthOptions({ ...sizes, imageSize: 64 });
    return { dir, remove, ...(await writeSynthDataset(dir, options, { storage })) };
  } catch (err) {
    await remove();
    throw err;
  } finally {
    await storage.close();
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
