import test from 'ava';
import { cornerIou } from '../../../shared/eval/box-iou.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import {
  CROP_DEFAULTS,
  cropBoxes,
  type PixelRect,
  sampleCrop,
  sampleTrialCrop,
} from '../../../worker/data/crop.js';

const rngFor = (i: number) => createRng(11, RNG_STREAM.augment, 3, i);
const rectCorners = (r: PixelRect) => [r.x, r.y, r.x + r.width, r.y + r.height];

test('cropBoxes keeps a box whose centre is inside the crop and clips it to the crop', (t) => {
  const crop = { x: 50, y: 50, width: 100, height: 100 };
  const { boxes, kept } = cropBoxes([20, 60, 120, 100], crop); // centre (70, 80)
  t.deepEqual(kept, [0]);
  t.deepEqual(Array.from(boxes), [0, 10, 70, 50]);
});

test('cropBoxes drops a box whose centre is outside the crop even when they overlap', (t) => {
  const crop = { x: 50, y: 50, width: 100, height: 100 };
  // centre (45, 100): 60% of the box lies inside the crop
  const { boxes, kept } = cropBoxes([0, 80, 90, 120], crop);
  t.deepEqual(kept, []);
  t.is(boxes.length, 0);
});

test('cropBoxes treats the crop as half-open: a centre on the right or bottom edge is outside', (t) => {
  const crop = { x: 0, y: 0, width: 100, height: 100 };
  const onLeft = [-10, 40, 10, 60]; // centre x 0
  const onRight = [90, 40, 110, 60]; // centre x 100
  const onBottom = [40, 90, 60, 110]; // centre y 100
  t.deepEqual(cropBoxes([...onLeft, ...onRight, ...onBottom], crop).kept, [0]);
});

test('sampleTrialCrop stays inside the image with scale and aspect ratio in the SSD ranges', (t) => {
  const [w, h] = [640, 480];
  for (let i = 0; i < 500; i++) {
    const c = sampleTrialCrop(rngFor(i), w, h, CROP_DEFAULTS);
    t.true(c.x >= 0 && c.y >= 0 && c.x + c.width <= w && c.y + c.height <= h, JSON.stringify(c));
    t.true(Number.isInteger(c.x) && Number.isInteger(c.width));
    // area fraction = scale^2 with scale in [0.3, 1] (floors lose at most a pixel per side)
    const area = (c.width * c.height) / (w * h);
    t.true(area >= 0.09 * 0.99 && area <= 1, `area ${area}`);
    const ar = c.width / w / (c.height / h);
    t.true(ar >= 0.5 * 0.98 && ar <= 2 * 1.02, `aspect ${ar}`);
  }
});

test('sampleCrop honours a min-IoU constraint: every box overlaps the chosen crop by at least 0.5', (t) => {
  const boxes = [100, 100, 300, 260, 140, 120, 320, 290];
  const options = { ...CROP_DEFAULTS, constraints: [{ minIou: 0.5, maxIou: Number.POSITIVE_INFINITY }] };
  let constrained = 0;
  for (let i = 0; i < 300; i++) {
    const { crop, kept } = sampleCrop(rngFor(i), boxes, 400, 400, options);
    t.true(kept.length > 0);
    const whole = crop.width === 400 && crop.height === 400;
    if (whole) continue;
    constrained++;
    for (let b = 0; b < 2; b++) t.true(cornerIou(boxes, 4 * b, rectCorners(crop), 0) >= 0.5, `seed ${i}`);
  }
  // two candidates (whole image, the constrained crop when found), drawn at random
  t.true(constrained > 50, `constrained crops chosen ${constrained} times`);
});

test('sampleCrop with the default constraints always keeps at least one box by the centre rule', (t) => {
  const boxes = [10, 10, 60, 40, 500, 300, 630, 470];
  for (let i = 0; i < 300; i++) {
    const { crop, boxes: out, kept } = sampleCrop(rngFor(i), boxes, 640, 480);
    t.true(kept.length >= 1);
    for (let k = 0; k < kept.length; k++) {
      const src = kept[k]!;
      const cx = (boxes[4 * src]! + boxes[4 * src + 2]!) / 2;
      const cy = (boxes[4 * src + 1]! + boxes[4 * src + 3]!) / 2;
      t.true(cx >= crop.x && cx < crop.x + crop.width && cy >= crop.y && cy < crop.y + crop.height);
      t.true(out[4 * k]! >= 0 && out[4 * k + 2]! <= crop.width && out[4 * k + 3]! <= crop.height);
    }
  }
});

test('sampleCrop of an image without boxes returns the first trial crop', (t) => {
  const { crop, kept } = sampleCrop(rngFor(1), [], 300, 200);
  t.deepEqual(kept, []);
  t.deepEqual(crop, sampleTrialCrop(rngFor(1), 300, 200, CROP_DEFAULTS));
});
