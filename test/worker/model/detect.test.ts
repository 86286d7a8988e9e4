import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { anchorConfig, generateAnchors } from '../../../worker/model/anchors.js';
import { detectObjects } from '../../../worker/model/detect.js';
import { computeTargets } from '../../../worker/model/targets.js';

/** Anchors in centre form; probabilities per anchor as [background, class0, class1, ...]; zero offsets. */
function scene(anchors: number[][], probs: number[][], loc?: number[][]) {
  return {
    anchors: Float32Array.from(anchors.flat()),
    clsProb: Float32Array.from(probs.flat()),
    locPred: Float32Array.from((loc ?? anchors.map(() => [0, 0, 0, 0])).flat()),
  };
}

test('detectObjects suppresses an overlapping box of the same class but keeps one of another class', (t) => {
  const s = scene(
    [
      [0.3, 0.3, 0.2, 0.2],
      [0.31, 0.3, 0.2, 0.2],
      [0.3, 0.31, 0.2, 0.2],
    ],
    [
      [0.1, 0.9, 0],
      [0.2, 0.8, 0],
      [0.3, 0, 0.7],
    ],
  );
  const rows = detectObjects(s.anchors, s.clsProb, s.locPred);
  t.deepEqual(
    rows.map((r) => [r[0], Math.round(r[1] * 100) / 100]),
    [
      [0, 0.9],
      [1, 0.7],
    ],
  );
  const [cls, , x1, y1, x2, y2] = rows[0]!;
  t.is(cls, 0);
  for (const [v, e] of [
    [x1, 0.2],
    [y1, 0.2],
    [x2, 0.4],
    [y2, 0.4],
  ] as const) {
    t.true(Math.abs(v - e) < 1e-6);
  }
});

test('detectObjects keeps a box whose IoU equals the NMS threshold and drops it just above', (t) => {
  // Decoded boxes [0, 0, 0.5, 0.5] and [0, 0, 0.5, 0.25]: IoU exactly 0.5.
  const s = scene(
    [
      [0.25, 0.25, 0.5, 0.5],
      [0.25, 0.125, 0.5, 0.25],
    ],
    [
      [0, 1],
      [0.5, 0.5],
    ],
  );
  t.is(detectObjects(s.anchors, s.clsProb, s.locPred, { nmsThreshold: 0.5 }).length, 2);
  t.is(detectObjects(s.anchors, s.clsProb, s.locPred, { nmsThreshold: 0.4999 }).length, 1);
});

test('detectObjects drops scores below 0.01, keeps 0.01, and sorts by score descending', (t) => {
  const far = (x: number) => [x, 0.5, 0.1, 0.1];
  const s = scene(
    [far(0.1), far(0.3), far(0.5), far(0.7)],
    [
      [0.9901, 0.0099],
      [0.99, 0.01],
      [0.5, 0.5],
      [0.2, 0.8],
    ],
  );
  const rows = detectObjects(s.anchors, s.clsProb, s.locPred);
  t.deepEqual(
    rows.map((r) => Math.round(r[1] * 10000) / 10000),
    [0.8, 0.5, 0.01],
  );
});

test('detectObjects clips decoded boxes to the image', (t) => {
  const s = scene([[0.05, 0.95, 0.3, 0.3]], [[0, 1]], [[0, 0, 1, 0]]);
  const [row] = detectObjects(s.anchors, s.clsProb, s.locPred);
  // Width 0.3 * exp(0.2) = 0.366 around x 0.05 and height 0.3 around y 0.95, clipped.
  t.deepEqual(
    row!.slice(2).map((v) => Math.round(v * 1e4) / 1e4),
    [0, 0.8, 0.2332, 1],
  );
});

test('detectObjects applies topK before NMS and keepTopK after it', (t) => {
  const spread = [0.1, 0.3, 0.5, 0.7, 0.9].map((x) => [x, 0.5, 0.1, 0.1]);
  const s = scene(
    spread,
    spread.map((_, k) => [0.5 - k * 0.05, 0.5 + k * 0.05]),
  );
  const scores = (opts: object) => detectObjects(s.anchors, s.clsProb, s.locPred, opts).map((r) => r[1]);
  t.is(scores({}).length, 5);
  t.deepEqual(scores({ topK: 2 }), scores({}).slice(0, 2));
  t.deepEqual(scores({ keepTopK: 3 }), scores({}).slice(0, 3));
  t.is(scores({ topK: -1, keepTopK: -1 }).length, 5);
});

test('detectObjects per-class gives an anchor a row for each confident class, best-class only the top one', (t) => {
  const s = scene([[0.5, 0.5, 0.2, 0.2]], [[0.2, 0.5, 0.3]]);
  t.deepEqual(
    detectObjects(s.anchors, s.clsProb, s.locPred).map((r) => r[0]),
    [0, 1],
  );
  t.deepEqual(
    detectObjects(s.anchors, s.clsProb, s.locPred, { candidates: 'best-class' }).map((r) => r[0]),
    [0],
  );
});

test('detectObjects recovers ground-truth boxes from their own encoded targets', (t) => {
  const anchors = generateAnchors(anchorConfig('tiny', 128));
  const gt = {
    boxes: Float32Array.from([0.1, 0.1, 0.4, 0.5, 0.5, 0.55, 0.95, 0.9]),
    classes: Int32Array.from([2, 0]),
  };
  const { clsTarget, locTarget } = computeTargets(anchors, gt);
  const n = clsTarget.length;
  const clsProb = new Float32Array(n * 4);
  for (let a = 0; a < n; a++) clsProb[a * 4 + clsTarget[a]!] = 1;
  const rows = detectObjects(anchors, clsProb, locTarget);
  t.deepEqual(rows.map((r) => r[0]).sort(), [0, 2]);
  for (const row of rows) {
    const g = row[0] === 2 ? 0 : 1;
    for (let k = 0; k < 4; k++) t.true(Math.abs(row[2 + k]! - gt.boxes[g * 4 + k]!) < 1e-5);
  }
});

test('detectObjects treats options given as undefined as the defaults', (t) => {
  const spread = [0.1, 0.3, 0.5].map((x) => [x, 0.5, 0.1, 0.1]);
  const s = scene(
    spread,
    spread.map(() => [0.4, 0.6]),
  );
  const undefinedOptions = {
    nmsThreshold: undefined,
    scoreThreshold: undefined,
    topK: undefined,
    keepTopK: undefined,
  };
  t.deepEqual(
    detectObjects(s.anchors, s.clsProb, s.locPred, undefinedOptions),
    detectObjects(s.anchors, s.clsProb, s.locPred),
  );
  t.is(detectObjects(s.anchors, s.clsProb, s.locPred, undefinedOptions).length, 3);
});

test('detectObjects rejects probabilities and offsets that do not fit the anchors', (t) => {
  const anchors = new Float32Array(8);
  const err = t.throws(() => detectObjects(anchors, new Float32Array(5), new Float32Array(8)));
  t.true(isClusterError(err, 'MODEL'));
  t.throws(() => detectObjects(anchors, new Float32Array(6), new Float32Array(4)), {
    message: /box offsets/,
  });
});
