import test from 'ava';
import {
  areaAp,
  elevenPointAp,
  precisionRecall,
  VOC07_RECALL_THRESHOLDS,
} from '../../../shared/eval/average-precision.js';

test('the 11 recall thresholds are numpy arange values, a hair above 0.3, 0.6 and 0.7', (t) => {
  t.is(VOC07_RECALL_THRESHOLDS.length, 11);
  t.is(VOC07_RECALL_THRESHOLDS[3], 0.30000000000000004);
  t.is(VOC07_RECALL_THRESHOLDS[6], 0.6000000000000001);
  t.is(VOC07_RECALL_THRESHOLDS[7], 0.7000000000000001);
  t.is(VOC07_RECALL_THRESHOLDS[10], 1);
});

test('average precision of no detections is 0 for both metrics', (t) => {
  const curve = precisionRecall([], 3);
  t.is(elevenPointAp(curve), 0);
  t.is(areaAp(curve), 0);
});

test('both metrics use the precision envelope: FP,TP,TP with 2 positives gives 2/3', (t) => {
  const curve = precisionRecall([false, true, true], 2);
  t.deepEqual(Array.from(curve.recall), [0, 0.5, 1]);
  t.true(Math.abs(areaAp(curve) - 2 / 3) < 1e-15);
  t.true(Math.abs(elevenPointAp(curve) - 2 / 3) < 1e-15);
});

test('area AP integrates recall steps: TP,FP,TP,FP,TP with 4 positives', (t) => {
  // Recall 0.25 at precision 1, 0.5 at 2/3, 0.75 at 3/5; the last quarter is never reached.
  const curve = precisionRecall([true, false, true, false, true], 4);
  t.true(Math.abs(areaAp(curve) - (0.25 * 1 + 0.25 * (2 / 3) + 0.25 * 0.6)) < 1e-15);
  // 11-point: t = 0..0.2 -> 1, 0.3..0.5 -> 2/3, 0.6 and 0.7 -> 0.6, 0.8..1 -> 0.
  t.true(Math.abs(elevenPointAp(curve) - (3 + 2 + 1.2) / 11) < 1e-15);
});
