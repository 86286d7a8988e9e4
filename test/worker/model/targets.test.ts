import { performance } from 'node:perf_hooks';
import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { anchorConfig, generateAnchors } from '../../../worker/model/anchors.js';
import { centerToCorner, DEFAULT_VARIANCES, decodeBox } from '../../../worker/model/box.js';
import {
  computeTargets,
  encodeTargets,
  type GroundTruth,
  iou,
  matchAnchors,
} from '../../../worker/model/targets.js';

function truth(boxes: number[][], classes: number[]): GroundTruth {
  return { boxes: Float32Array.from(boxes.flat()), classes: Int32Array.from(classes) };
}

/**
 * A direct transcription of the reference: MXNet bipartite_matching (stable sort of all pairs by IoU
 * descending, greedy, stop at the first free pair <= 1e-12), then GluonCV MaximumMatcher (argmax, first on ties).
 */
function referenceMatch(anchorsCorner: Float32Array, gt: GroundTruth, threshold: number): Int32Array {
  const n = anchorsCorner.length / 4;
  const m = gt.classes.length;
  const pairs: { flat: number; v: number }[] = [];
  for (let a = 0; a < n; a++) {
    for (let g = 0; g < m; g++) {
      const v = iou(anchorsCorner.subarray(a * 4, a * 4 + 4), gt.boxes.subarray(g * 4, g * 4 + 4));
      pairs.push({ flat: a * m + g, v });
    }
  }
  pairs.sort((p, q) => q.v - p.v || p.flat - q.flat);
  const row = new Int32Array(n).fill(-1);
  const col = new Int32Array(m).fill(-1);
  for (const { flat, v } of pairs) {
    const a = Math.floor(flat / m);
    const g = flat % m;
    if (row[a] !== -1 || col[g] !== -1) continue;
    if (!(v > 1e-12)) break;
    row[a] = g;
    col[g] = a;
  }
  for (let a = 0; a < n; a++) {
    if (row[a] !== -1) continue;
    let best = -1;
    let bestG = -1;
    for (let g = 0; g < m; g++) {
      const v = pairs.find((p) => p.flat === a * m + g)!.v;
      if (v > best) [best, bestG] = [v, g];
    }
    if (best >= threshold) row[a] = bestG;
  }
  return row;
}

test('iou of corner boxes is intersection over union and 0 for disjoint boxes', (t) => {
  t.is(iou([0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]), 0.0625 / (0.25 + 0.25 - 0.0625));
  t.is(iou([0, 0, 0.2, 0.2], [0.2, 0, 0.4, 0.2]), 0);
  t.is(iou([0.1, 0.1, 0.1, 0.3], [0.1, 0.1, 0.1, 0.3]), 0);
});

test('encodeTargets writes class + 1 and the variance-scaled offsets computed by hand', (t) => {
  const anchors = Float32Array.from([0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1]);
  const gt = truth([[0.45, 0.4, 0.65, 0.8]], [4]);
  const out = encodeTargets(anchors, gt, Int32Array.from([0, -1]));
  t.deepEqual(Array.from(out.clsTarget), [5, 0]);
  t.is(out.numPositives, 1);
  // gt centre (0.55, 0.6), size (0.2, 0.4): tx = 0.05/0.2/0.1, ty = 0.1/0.2/0.1, tw = ln(1)/0.2, th = ln(2)/0.2.
  const expected = [2.5, 5, 0, Math.log(2) / 0.2, 0, 0, 0, 0];
  for (const [k, e] of expected.entries()) t.true(Math.abs(out.locTarget[k]! - e) < 1e-5, `loc[${k}]`);
});

test('decodeBox inverts the encoding of a matched ground-truth box', (t) => {
  const config = anchorConfig('tiny', 64);
  const anchors = generateAnchors(config);
  const gt = truth([[0.2, 0.3, 0.55, 0.9]], [0]);
  const { clsTarget, locTarget } = computeTargets(anchors, gt);
  const decoded = new Float32Array(4);
  let checked = 0;
  for (let a = 0; a < clsTarget.length; a++) {
    if (clsTarget[a] === 0) continue;
    decodeBox(anchors, a * 4, locTarget, a * 4, DEFAULT_VARIANCES, decoded, 0);
    for (let k = 0; k < 4; k++) t.true(Math.abs(decoded[k]! - gt.boxes[k]!) < 1e-5);
    checked++;
  }
  t.true(checked > 0);
});

test('matchAnchors gives a ground truth its best anchor even below the overlap threshold', (t) => {
  const anchorsCorner = Float32Array.from([0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1]);
  // IoU with anchor 0 is 0.04 / 0.25 = 0.16; no overlap with anchor 1.
  const { matchedGt } = matchAnchors(anchorsCorner, truth([[0, 0, 0.2, 0.2]], [3]), 0.5);
  t.deepEqual(Array.from(matchedGt), [0, -1]);
});

test('matchAnchors resolves two ground truths wanting one anchor by the higher IoU, the other taking its next best', (t) => {
  const anchorsCorner = Float32Array.from([0, 0, 0.4, 0.4, 0.05, 0.05, 0.45, 0.45, 0.6, 0.6, 1, 1]);
  const gt = truth(
    [
      [0.02, 0.02, 0.42, 0.42], // best anchor 0 (IoU ~0.82), then anchor 1 (~0.75)
      [0, 0, 0.4, 0.41], // best anchor 0 (IoU ~0.98)
    ],
    [0, 1],
  );
  const { matchedGt } = matchAnchors(anchorsCorner, gt, 0.99);
  t.is(matchedGt[0], 1);
  t.is(matchedGt[1], 0);
  t.is(matchedGt[2], -1);
});

test('matchAnchors matches an extra anchor at IoU exactly the threshold but not just below it', (t) => {
  // Anchor 0 matches the gt exactly (bipartite). Anchor 1 overlaps it with IoU 0.5, anchor 2 with IoU 0.25.
  const anchorsCorner = Float32Array.from([0, 0, 0.5, 0.5, 0, 0, 0.5, 0.25, 0, 0, 0.5, 0.125]);
  const gt = truth([[0, 0, 0.5, 0.5]], [0]);
  t.is(iou(anchorsCorner.subarray(4, 8), gt.boxes), 0.5);
  const { matchedGt } = matchAnchors(anchorsCorner, gt, 0.5);
  t.deepEqual(Array.from(matchedGt), [0, 0, -1]);
});

test('matchAnchors with no ground truth leaves every anchor as background', (t) => {
  const anchors = generateAnchors(anchorConfig('tiny', 64));
  const out = computeTargets(anchors, truth([], []));
  t.is(out.numPositives, 0);
  t.true(out.clsTarget.every((c) => c === 0));
});

test('matchAnchors agrees with the reference bipartite + maximum matcher on random scenes with ties', (t) => {
  for (let scene = 0; scene < 40; scene++) {
    const rng = createRng(7, RNG_STREAM.test, scene);
    // Coarse coordinates and duplicated anchors make equal IoUs common.
    const q = () => Math.round(rng.uniform(0, 1) * 8) / 8;
    const box = () => {
      const [x1, x2] = [q(), q()].sort((a, b) => a - b);
      const [y1, y2] = [q(), q()].sort((a, b) => a - b);
      return [x1!, y1!, x2! + 0.125, y2! + 0.125];
    };
    const anchorBoxes = Array.from({ length: 30 }, box);
    anchorBoxes.push(...anchorBoxes.slice(0, 5));
    // A repeated ground-truth box makes two boxes want the same anchor with the same IoU.
    const gtBoxes = Array.from({ length: 1 + rng.int(7) }, box);
    gtBoxes.push(gtBoxes[0]!);
    const gt = truth(
      gtBoxes,
      gtBoxes.map(() => rng.int(3)),
    );
    const anchorsCorner = Float32Array.from(anchorBoxes.flat());
    const expected = referenceMatch(anchorsCorner, gt, 0.5);
    t.deepEqual(
      Array.from(matchAnchors(anchorsCorner, gt, 0.5).matchedGt),
      Array.from(expected),
      `scene ${scene}`,
    );
  }
});

test('matchAnchors rejects ground truth whose boxes and classes disagree in length', (t) => {
  const gt = { boxes: new Float32Array(8), classes: Int32Array.from([1]) };
  t.throws(() => matchAnchors(new Float32Array(4), gt, 0.5), { message: /8 box values for 1 classes/ });
});

test('computeTargets matches 8732 anchors to 20 objects within a loose time budget', (t) => {
  const anchors = generateAnchors(anchorConfig('vgg-16', 300));
  const anchorsCorner = centerToCorner(anchors);
  const rng = createRng(3, RNG_STREAM.test, 99);
  const boxes: number[][] = [];
  for (let k = 0; k < 20; k++) {
    const [x, y] = [rng.uniform(0, 0.8), rng.uniform(0, 0.8)];
    boxes.push([x, y, x + rng.uniform(0.03, 0.2), y + rng.uniform(0.03, 0.2)]);
  }
  const gt = truth(
    boxes,
    Array.from({ length: 20 }, (_, k) => k % 5),
  );
  const times: number[] = [];
  let positives = 0;
  for (let run = 0; run < 7; run++) {
    const start = performance.now();
    positives = computeTargets(anchors, gt, { anchorsCorner }).numPositives;
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  t.log(`median ${times[3]!.toFixed(2)} ms, ${positives} positives`);
  t.true(positives >= 20);
  // About 1 ms on an idle core; the bound is loose because the 2 cores are shared by many test processes
  // (20 ms was seen at load average 17). The log line carries the measured median.
  t.true(times[3]! < 200, `median ${times[3]} ms`);
});
