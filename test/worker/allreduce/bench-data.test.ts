import test from 'ava';
import { benchValues, checkSum, expectedSum } from '../../../worker/allreduce/bench-data.js';

test('benchValues are multiples of 1/1024 in [-2, 2), the same for a rank and different across ranks', (t) => {
  const a = benchValues(1, 0, 10_000);
  t.true(a.every((v) => v >= -2 && v < 2 && Number.isInteger(v * 1024)));
  t.deepEqual(benchValues(1, 0, 100), a.subarray(0, 100));
  t.notDeepEqual(benchValues(1, 1, 100), a.subarray(0, 100));
});

test('checkSum accepts the exact sum and names the first element that differs', (t) => {
  const expected = expectedSum(3, 4, 1000, false);
  const result = expected.sum.slice();
  t.deepEqual(checkSum(result, expected, 4, 'none'), { ok: true, firstBad: -1, maxAbsError: 0 });
  result[321]! += 2 ** -10;
  result[500] = Number.NaN;
  const check = checkSum(result, expected, 4, 'none');
  t.false(check.ok);
  t.is(check.firstBad, 321);
  t.true(Number.isNaN(check.maxAbsError));
});

test('checkSum with fp16 allows the documented bound and no more', (t) => {
  const expected = expectedSum(3, 2, 50, true);
  const result = expected.sum.slice();
  const sumAbs = expected.sumAbs![7]!;
  result[7]! += 2 * (2 ** -11 + 2 ** -24) * sumAbs * 0.99;
  t.true(checkSum(result, expected, 2, 'fp16').ok);
  result[7]! += sumAbs * 2 ** -9;
  t.is(checkSum(result, expected, 2, 'fp16').firstBad, 7);
});
