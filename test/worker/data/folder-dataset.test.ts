import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import type { Dataset, OpenDatasetOptions } from '../../../worker/data/dataset.js';
import { openDataset } from '../../../worker/data/open-dataset.js';
import { prepareSample } from '../../../worker/data/prepare.js';
import { tempDir } from '../../helpers/recordio-fixtures.js';
import { encodeRgb, rectangleRgb } from './fixtures.js';

type T = { teardown(fn: () => Promise<void>): void };

interface Box {
  class_id: number;
  left: number;
  top: number;
  width: number;
  height: number;
}

function annotation(file: string, width: number, height: number, boxes: Box[]): string {
  return JSON.stringify({
    file,
    image_size: [{ width, height, depth: 3 }],
    annotations: boxes,
    categories: [{ class_id: 0, name: 'box' }],
  });
}

/** Writes files (path relative to root -> content) and returns root. */
async function tree(t: T, files: Record<string, string | Buffer>): Promise<string> {
  const root = await tempDir(t);
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await fs.writeFile(path.join(root, name), content);
  }
  return root;
}

async function open(t: T, url: string, options: Partial<OpenDatasetOptions> = {}): Promise<Dataset> {
  const dataset = await openDataset(url, { storage: createLocalStorage(), ...options });
  t.teardown(() => dataset.close());
  return dataset;
}

const png = (w: number, h: number) => encodeRgb(rectangleRgb(w, h, [], [0, 0, 0], [60, 90, 120]), w, h);
const box = (left: number, top: number, width: number, height: number, class_id = 0) => ({
  class_id,
  left,
  top,
  width,
  height,
});

test('an image folder with a separate annotation folder pairs each image with its .json', async (t) => {
  const root = await tree(t, {
    'train/b.png': await png(40, 20),
    'train/a.png': await png(50, 25),
    'train/notes.txt': 'not an image',
    'train_annotation/a.json': annotation('a.png', 50, 25, [box(5, 5, 20, 10)]),
    'train_annotation/b.json': annotation('b.png', 40, 20, [box(0, 2, 10, 8), box(30, 10, 12, 10, 1)]),
  });
  const dataset = await open(t, path.join(root, 'train'), {
    annotations: path.join(root, 'train_annotation'),
  });
  t.is(dataset.size, 2);
  t.is(dataset.sourceOf(0), path.join(root, 'train/a.png'));
  const b = await dataset.read(1);
  t.is(b.source, path.join(root, 'train/b.png'));
  t.deepEqual(Array.from(b.gt.classes), [0, 1]);
  // SageMaker's conversion: left / W, top / H, (left + width) / W, (top + height) / H; clipped to 1
  t.deepEqual(Array.from(b.gt.boxes), [0, 0.1, 0.25, 0.5, 0.75, 0.5, 1, 1].map(Math.fround));
  const prepared = await prepareSample(b, { imageShape: 16, train: true, seed: 1, epoch: 0 });
  t.deepEqual([prepared.originalWidth, prepared.originalHeight], [40, 20]);
});

test('an image folder reads the .json beside each image when no annotation folder is given', async (t) => {
  const root = await tree(t, {
    'val/x.jpg': await encodeRgb(rectangleRgb(30, 30, [], [0, 0, 0], [1, 2, 3]), 30, 30, 'jpeg'),
    'val/x.json': annotation('val/x.jpg', 30, 30, [box(3, 3, 9, 9)]),
  });
  const dataset = await open(t, path.join(root, 'val'));
  t.is(dataset.size, 1);
  t.deepEqual(Array.from((await dataset.read(0)).gt.boxes), [0.1, 0.1, 0.4, 0.4].map(Math.fround));
});

test('nested images pair with the annotation at the same relative path before a same-name one', async (t) => {
  const root = await tree(t, {
    'img/cats/p.png': await png(10, 10),
    'ann/cats/p.json': annotation('cats/p.png', 10, 10, [box(0, 0, 5, 5)]),
    'ann/dogs/p.json': annotation('dogs/p.png', 10, 10, [box(5, 5, 5, 5)]),
  });
  const dataset = await open(t, path.join(root, 'img'), { annotations: path.join(root, 'ann') });
  t.deepEqual(Array.from((await dataset.read(0)).gt.boxes), [0, 0, 0.5, 0.5]);
});

test('opening an image folder fails naming the images that have no annotation', async (t) => {
  const root = await tree(t, {
    'train/a.png': await png(8, 8),
    'train/b.png': await png(8, 8),
    'ann/a.json': annotation('a.png', 8, 8, [box(1, 1, 2, 2)]),
  });
  const err = await t.throwsAsync(
    openDataset(path.join(root, 'train'), {
      storage: createLocalStorage(),
      annotations: path.join(root, 'ann'),
    }),
  );
  t.true(isClusterError(err, 'ANNOTATION'));
  t.regex(err!.message, /no annotation \.json for 1 of 2 images \(.*train\/b\.png\)/);
});

test('an annotation naming another image is an ANNOTATION error naming the .json and field', async (t) => {
  const root = await tree(t, {
    'train/a.png': await png(8, 8),
    'train/a.json': annotation('zebra.png', 8, 8, [box(1, 1, 2, 2)]),
  });
  const dataset = await open(t, path.join(root, 'train'));
  const err = await t.throwsAsync(dataset.read(0));
  t.true(isClusterError(err, 'ANNOTATION'));
  t.true(
    err!.message.startsWith(`${path.join(root, 'train/a.json')}: file: names "zebra.png"`),
    err!.message,
  );
});

test('a class id at or above num_classes is an ANNOTATION error naming the .json', async (t) => {
  const root = await tree(t, {
    'train/a.png': await png(8, 8),
    'train/a.json': annotation('a.png', 8, 8, [box(1, 1, 2, 2, 3)]),
  });
  const dataset = await open(t, path.join(root, 'train'), { numClasses: 3 });
  const err = await t.throwsAsync(dataset.read(0));
  t.true(isClusterError(err, 'ANNOTATION'));
  t.regex(err!.message, /a\.json: annotations: object 0 has class 3, but num_classes is 3/);
});

test('a folder without images or a .rec is a NOT_FOUND error', async (t) => {
  const root = await tree(t, { 'empty/readme.txt': 'nothing here' });
  const err = await t.throwsAsync(openDataset(path.join(root, 'empty'), { storage: createLocalStorage() }));
  t.true(isClusterError(err, 'NOT_FOUND'));
});
