import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import {
  computeVocMap,
  type DetectionEntry,
  type GroundTruthEntry,
  VocMapAccumulator,
} from '../../../shared/eval/voc-map.js';
import { createRng, permutation, RNG_STREAM } from '../../../shared/random.js';

const near = (t: { true(v: boolean, m?: string): void }, actual: number, expected: number) =>
  t.true(Math.abs(actual - expected) < 1e-12, `expected ${expected}, got ${actual}`);

/** A 10x10-pixel box at column `k` of a grid (VOC pixel boxes, inclusive corners). */
const cell = (k: number) => [k * 20, 0, k * 20 + 9, 9];
const FAR = [500, 500, 520, 520];

function gt(imageId: string, box: number[], difficult = false, classId = 0): GroundTruthEntry {
  return { imageId, classId, box, difficult };
}

function det(imageId: string, score: number, box: number[], classId = 0): DetectionEntry {
  return { imageId, classId, score, box };
}

test('voc07 counts TP,TP,TP,FP,FP with 10 positives as 3/11: recall 0.3 misses the arange threshold 0.30000000000000004', (t) => {
  const truth = Array.from({ length: 10 }, (_, k) => gt(`img${k}`, cell(0)));
  const dets = [
    det('img0', 0.9, cell(0)),
    det('img1', 0.8, cell(0)),
    det('img2', 0.7, cell(0)),
    det('img3', 0.6, FAR),
    det('img4', 0.5, FAR),
  ];
  near(t, computeVocMap(truth, dets).map, 3 / 11);
  near(t, computeVocMap(truth, dets, { metric: 'area' }).map, 0.3);
});

test('a detection of a difficult box ranked first is ignored and gives 28/33, not NaN', (t) => {
  const truth = [gt('a', cell(0), true), gt('a', cell(2)), gt('b', cell(0))];
  const dets = [det('a', 0.95, cell(0)), det('a', 0.9, cell(2)), det('b', 0.8, FAR), det('b', 0.7, cell(0))];
  const result = computeVocMap(truth, dets);
  near(t, result.map, 28 / 33);
  t.like(result.classes[0], { numPositives: 2, truePositives: 2, falsePositives: 1, ignored: 1 });
  near(t, computeVocMap(truth, dets, { metric: 'area' }).map, 0.5 + 0.5 * (2 / 3));
});

test('a second detection of the same box is a false positive', (t) => {
  const truth = [gt('a', cell(0)), gt('b', cell(0))];
  const dets = [det('a', 0.9, cell(0)), det('a', 0.8, [1, 0, 10, 9]), det('b', 0.7, cell(0))];
  const result = computeVocMap(truth, dets);
  t.like(result.classes[0], { truePositives: 2, falsePositives: 1 });
  near(t, result.map, 28 / 33);
});

test('missed objects lower recall: 1 of 4 found gives 3/11 (thresholds 0, 0.1, 0.2) and area 0.25', (t) => {
  const truth = [gt('a', cell(0)), gt('a', cell(1)), gt('a', cell(2)), gt('b', cell(0))];
  const dets = [det('a', 0.5, cell(1))];
  near(t, computeVocMap(truth, dets).map, 3 / 11);
  near(t, computeVocMap(truth, dets, { metric: 'area' }).map, 0.25);
});

test('an IoU of exactly 0.5 is a match with the +1 pixel convention, and not with offset 0 or a higher threshold', (t) => {
  // (10 x 5) / (10 x 10) = 0.5 with +1; without it 9x4 / 9x9 = 0.444.
  const truth = [gt('a', [0, 0, 9, 9])];
  const dets = [det('a', 0.9, [0, 0, 9, 4])];
  t.is(computeVocMap(truth, dets).map, 1);
  t.is(computeVocMap(truth, dets, { iouThreshold: 0.51 }).map, 0);
  t.is(computeVocMap(truth, dets, { pixelOffset: 0 }).map, 0);
});

test('options given as undefined fall back to the defaults', (t) => {
  const truth = [gt('a', [0, 0, 9, 9])];
  const dets = [det('a', 0.9, [0, 0, 9, 4])];
  const options = { metric: undefined, iouThreshold: undefined, pixelOffset: undefined };
  t.deepEqual(computeVocMap(truth, dets, options), computeVocMap(truth, dets));
  t.is(computeVocMap(truth, dets, options).map, 1);
});

test('a detection whose best box is already used is a false positive even if another free box overlaps', (t) => {
  const truth = [gt('a', [0, 0, 10, 10]), gt('a', [0, 0, 10, 8])];
  const dets = [det('a', 0.9, [0, 0, 10, 10]), det('a', 0.8, [0, 0, 10, 9.5])];
  const result = computeVocMap(truth, dets);
  t.like(result.classes[0], { truePositives: 1, falsePositives: 1 });
  near(t, result.map, 6 / 11);
});

test('a detection is judged by its highest-IoU box even when that box is difficult', (t) => {
  // The difficult box overlaps the detection more than the normal one (both >= 0.5): ignored, not a TP.
  const truth = [gt('a', [0, 0, 10, 10], true), gt('a', [0, 0, 10, 7])];
  const result = computeVocMap(truth, [det('a', 0.9, [0, 0, 10, 9])]);
  t.like(result.classes[0], { truePositives: 0, falsePositives: 0, ignored: 1, ap: 0 });
});

test('classes without non-difficult ground truth are skipped from the mean', (t) => {
  const truth = [gt('a', cell(0)), gt('a', cell(3), true, 2)];
  const dets = [det('a', 0.9, cell(0)), det('a', 0.8, cell(1), 1), det('a', 0.7, cell(3), 2)];
  const result = computeVocMap(truth, dets);
  t.is(result.map, 1);
  t.deepEqual(
    result.classes.map((c) => c.classId),
    [0],
  );
  t.deepEqual(result.skippedClasses, [1, 2]);
  t.true(Number.isNaN(computeVocMap([], dets).map));
});

test('the mean is over classes: one perfect class and one empty-handed class give 0.5', (t) => {
  const truth = [gt('a', cell(0)), gt('a', cell(1), false, 1)];
  const result = computeVocMap(truth, [det('a', 0.9, cell(0))]);
  t.is(result.map, 0.5);
});

function randomData(seed: number) {
  const rng = createRng(seed, RNG_STREAM.test);
  const truth: GroundTruthEntry[] = [];
  const dets: DetectionEntry[] = [];
  for (let i = 0; i < 30; i++) {
    const id = `img${String(i).padStart(2, '0')}`;
    for (let k = 0; k < 1 + rng.int(3); k++) {
      const classId = rng.int(3);
      const box = cell(rng.int(4));
      truth.push(gt(id, box, rng.chance(0.15), classId));
      // Coarse scores make ties across images common; jittered boxes make some misses.
      for (let d = 0; d < rng.int(3); d++) {
        const j = rng.int(8);
        dets.push(det(id, rng.int(5) / 4, [box[0]! + j, box[1]!, box[2]! + j, box[3]!], classId));
      }
    }
  }
  return { truth, dets };
}

test('accumulating from several sources in any order gives exactly the one-shot result', (t) => {
  for (let seed = 0; seed < 5; seed++) {
    const { truth, dets } = randomData(seed);
    const expected = computeVocMap(truth, dets);
    const images = [...new Set(truth.map((o) => o.imageId))];
    const order = permutation(images.length, createRng(seed, RNG_STREAM.test, 1));
    const workers = [0, 1, 2].map(() => new VocMapAccumulator());
    // Each image lands on one worker; workers see their images in shuffled order, ground truth after detections.
    for (const [k, index] of [...order].entries()) {
      const id = images[index]!;
      const w = workers[k % 3]!;
      w.addDetections(
        id,
        dets.filter((d) => d.imageId === id),
      );
      w.addGroundTruth(
        id,
        truth.filter((o) => o.imageId === id),
      );
    }
    const merged = new VocMapAccumulator();
    for (const w of [workers[2]!, workers[0]!, workers[1]!]) merged.merge(w);
    t.deepEqual(merged.compute(), expected, `seed ${seed}`);
  }
});

test('packed float32 rows from a worker report give the same mAP as objects', (t) => {
  const { truth, dets } = randomData(9);
  const index = (id: string | number) => Number(String(id).slice(3));
  const gtRows = Float32Array.from(
    truth.flatMap((o) => [index(o.imageId), o.classId, ...Array.from(o.box), o.difficult ? 1 : 0]),
  );
  const detRows = Float32Array.from(
    dets.flatMap((d) => [index(d.imageId), d.classId, d.score, ...Array.from(d.box)]),
  );
  const acc = new VocMapAccumulator();
  acc.addGroundTruthRows(gtRows);
  acc.addDetectionRows(detRows);
  t.is(acc.compute().map, computeVocMap(truth, dets).map);
  const err = t.throws(() => acc.addDetectionRows(new Float32Array(8)));
  t.true(isClusterError(err, 'PROTOCOL'));
});

test('bad boxes, classes and scores are rejected naming the image and the entry', (t) => {
  const acc = new VocMapAccumulator();
  t.throws(() => acc.addGroundTruth('x', [{ classId: 0, box: [0, 0, 1] }]), {
    message: /image "x" ground truth 0: box must be 4 finite numbers/,
  });
  t.throws(() => acc.addDetections('x', [{ classId: -1, score: 1, box: [0, 0, 1, 1] }]), {
    message: /image "x" detection 0: class must be an integer >= 0/,
  });
  t.throws(() => acc.addDetections(7, [{ classId: 0, score: Number.NaN, box: [0, 0, 1, 1] }]), {
    message: /image 7 detection 0: score must be finite/,
  });
});
