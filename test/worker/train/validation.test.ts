import test from 'ava';
import {
  detectionRowsOf,
  groundTruthRowsOf,
  mapFromRows,
  ROW_WIDTH,
} from '../../../worker/train/validation.js';

const gtOf = (boxes: number[], classes: number[], difficult: number[] = classes.map(() => 0)) => ({
  boxes: Float32Array.from(boxes),
  classes: Int32Array.from(classes),
  difficult: Uint8Array.from(difficult),
});

test('detection rows are in pixels of the original image: x by its width, y by its height', (t) => {
  const rows = detectionRowsOf(7, [[2, 0.9, 0.1, 0.2, 0.5, 1]], [200, 100]);
  t.is(rows.length, ROW_WIDTH);
  const [image, cls, score, ...box] = rows;
  t.deepEqual([image, cls, score], [7, 2, 0.9]);
  t.deepEqual(
    box.map((v) => Math.round(v * 1e6) / 1e6),
    [20, 20, 100, 100],
  );
});

test('ground-truth rows carry the class, the pixel box and the difficult flag', (t) => {
  const rows = groundTruthRowsOf(3, gtOf([0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1], [0, 4], [0, 1]), [10, 20]);
  t.deepEqual(rows, [3, 0, 0, 0, 5, 10, 0, 3, 4, 5, 10, 10, 20, 1]);
});

const rowsOf = (image: number, det: number[][], gt: ReturnType<typeof gtOf>, size: [number, number]) => ({
  detections: Float32Array.from(detectionRowsOf(image, det as never, size)),
  groundTruth: Float32Array.from(groundTruthRowsOf(image, gt, size)),
});

test('mapFromRows scores in pixels with the VOC +1 convention', (t) => {
  // At 100 px: [0,0,2,2] vs [0,0,3,3], IoU 9/16 with +1 (a hit); at 1000 px: [0,0,20,20] vs [0,0,30,30], 441/961 (a miss).
  const gt = gtOf([0, 0, 0.02, 0.02], [1]);
  const det = [[1, 0.8, 0, 0, 0.03, 0.03]];
  t.is(mapFromRows([rowsOf(0, det, gt, [100, 100])], { iouThreshold: 0.5 }).map, 1);
  t.is(mapFromRows([rowsOf(0, det, gt, [1000, 1000])], { iouThreshold: 0.5 }).map, 0);
});

test('mapFromRows ignores detections of difficult boxes and merges row sets from several workers', (t) => {
  const size: [number, number] = [100, 50];
  const a = rowsOf(
    0,
    [
      [0, 0.9, 0.1, 0.1, 0.4, 0.4],
      [1, 0.8, 0.5, 0.5, 0.9, 0.9],
    ],
    gtOf([0.1, 0.1, 0.4, 0.4, 0.5, 0.5, 0.9, 0.9], [0, 1], [0, 1]),
    size,
  );
  const b = rowsOf(1, [[0, 0.7, 0, 0, 0.2, 0.2]], gtOf([0.6, 0.6, 0.9, 0.9], [0]), size);
  const merged = mapFromRows([a, b], { iouThreshold: 0.5 });
  // Class 0: a TP at 0.9, a FP at 0.7, 2 positives: 11-point AP = (6 x 1) / 11. Class 1: only difficult, skipped.
  t.is(merged.classes.length, 1);
  t.true(Math.abs(merged.map - 6 / 11) < 1e-12);
  t.deepEqual(merged.skippedClasses, [1]);
  t.deepEqual(mapFromRows([b, a], { iouThreshold: 0.5 }), merged);
});
