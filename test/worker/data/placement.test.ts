import test from 'ava';
import { packGroundTruth } from '../../../worker/data/ground-truth.js';
import {
  composeInput,
  foldNormalisation,
  IMAGENET_MEAN,
  IMAGENET_NORMALISATION,
  IMAGENET_STD,
} from '../../../worker/data/normalise.js';
import { mapBoxes, placeWholeImage, placeWindow } from '../../../worker/data/placement.js';

test('placeWholeImage resizes the whole image onto the whole output', (t) => {
  const p = placeWholeImage(768, 576, 300);
  t.like(p, { scaledWidth: 300, scaledHeight: 300, left: 0, top: 0, originX: 0, originY: 0 });
  t.deepEqual(p.region, { x: 0, y: 0, width: 300, height: 300 });
});

test('placeWindow of an inner window scales the image up and extracts the window', (t) => {
  // window = the middle half of a 400x200 image -> output 100x100
  const p = placeWindow({ x: 100, y: 50, width: 200, height: 100 }, 400, 200, 100);
  t.like(p, { scaledWidth: 200, scaledHeight: 200, originX: -50, originY: -50, left: 0, top: 0 });
  t.deepEqual(p.region, { x: 50, y: 50, width: 100, height: 100 });
});

test('placeWindow of a window reaching past the image leaves the rest of the output to the fill', (t) => {
  // window twice the image, image in its bottom-right quarter (expansion)
  const p = placeWindow({ x: -100, y: -50, width: 200, height: 100 }, 100, 50, 64);
  t.like(p, { scaledWidth: 32, scaledHeight: 32, left: 32, top: 32 });
  t.deepEqual(p.region, { x: 0, y: 0, width: 32, height: 32 });
});

test('placeWindow of a window holding only fill has no region', (t) => {
  const p = placeWindow({ x: -500, y: 0, width: 200, height: 100 }, 100, 100, 64);
  t.is(p.region, null);
});

test('mapBoxes maps window boxes through the placement, clips and mirrors them', (t) => {
  const gt = packGroundTruth([
    { class: 3, xmin: 0.25, ymin: 0.25, xmax: 0.5, ymax: 0.75 },
    { class: 5, xmin: 0, ymin: 0, xmax: 0.1, ymax: 0.1 },
  ]);
  const window = { x: 100, y: 50, width: 200, height: 100 };
  const p = placeWindow(window, 400, 200, 100);
  // box 0 in window pixels: image (100..200, 50..150) -> window (0..100, 0..100) -> output (0..50, 0..100)
  const plain = mapBoxes(gt, [0], [0, 0, 100, 100], window, p, false);
  t.deepEqual(Array.from(plain.boxes), [0, 0, 0.5, 1]);
  t.deepEqual(Array.from(plain.classes), [3]);
  const flipped = mapBoxes(gt, [0], [0, 0, 100, 100], window, p, true);
  t.deepEqual(Array.from(flipped.boxes), [0.5, 0, 1, 1]);
});

test('mapBoxes drops a box left without area after clipping to the output', (t) => {
  const gt = packGroundTruth([{ class: 1, xmin: 0, ymin: 0, xmax: 1, ymax: 1 }]);
  const window = { x: 0, y: 0, width: 100, height: 100 };
  const p = placeWindow(window, 100, 100, 50);
  const out = mapBoxes(gt, [0], [120, 10, 150, 20], window, p, false);
  t.is(out.classes.length, 0);
});

test('composeInput fills outside the region with zeros (the mean) and mirrors when flipped', (t) => {
  const p = placeWindow({ x: -2, y: 0, width: 4, height: 2 }, 2, 2, 4);
  t.deepEqual(p.region, { x: 0, y: 0, width: 2, height: 4 });
  t.is(p.left, 2);
  const pixels = new Uint8Array(2 * 4 * 3);
  for (let i = 0; i < 8; i++) pixels.set([i * 30, 255 - i * 30, 7], 3 * i);
  const out = new Float32Array(4 * 4 * 3).fill(9);
  const transform = foldNormalisation(null, IMAGENET_NORMALISATION);
  composeInput(pixels, p, transform, false, out);
  const at = (x: number, y: number, c: number) => out[(y * 4 + x) * 3 + c]!;
  t.is(at(0, 0, 0), 0);
  t.is(at(1, 3, 2), 0);
  t.true(Math.abs(at(2, 0, 0) - (0 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]) < 1e-5);
  t.true(Math.abs(at(3, 1, 1) - ((255 - 3 * 30) / 255 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]) < 1e-5);
  const mirrored = new Float32Array(4 * 4 * 3);
  composeInput(pixels, p, transform, true, mirrored);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 4; x++) {
      for (let c = 0; c < 3; c++) t.is(mirrored[(y * 4 + (3 - x)) * 3 + c], out[(y * 4 + x) * 3 + c]);
    }
  }
});

test('the mean pixel normalises to zero', (t) => {
  const transform = foldNormalisation(null, IMAGENET_NORMALISATION);
  const p = placeWholeImage(1, 1, 1);
  const out = new Float32Array(3);
  const mean = Uint8Array.from(IMAGENET_MEAN.map((m) => Math.round(m * 255)));
  composeInput(mean, p, transform, false, out);
  for (const v of out) t.true(Math.abs(v) < 0.01, `${out}`);
});
