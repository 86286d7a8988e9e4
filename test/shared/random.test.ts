import test from 'ava';
import { createRng, permutation } from '../../shared/random.js';

test('createRng gives the same sequence for the same keys and a different one for other keys', (t) => {
  const a = createRng(7, 3, 1, 42);
  const b = createRng(7, 3, 1, 42);
  const c = createRng(7, 3, 1, 43);
  const sa = Array.from({ length: 8 }, () => a.nextUint32());
  t.deepEqual(
    sa,
    Array.from({ length: 8 }, () => b.nextUint32()),
  );
  t.notDeepEqual(
    sa,
    Array.from({ length: 8 }, () => c.nextUint32()),
  );
});

test('createRng keys above 2^32 do not alias their low 32 bits', (t) => {
  t.not(createRng(1, 2 ** 32 + 5).nextUint32(), createRng(1, 5).nextUint32());
});

test('createRng is roughly uniform and its normal has mean 0 and variance 1', (t) => {
  const rng = createRng(1);
  const n = 100_000;
  let sum = 0;
  let sumN = 0;
  let sumN2 = 0;
  for (let i = 0; i < n; i++) {
    sum += rng.next();
    const z = rng.normal();
    sumN += z;
    sumN2 += z * z;
  }
  t.true(Math.abs(sum / n - 0.5) < 0.01);
  t.true(Math.abs(sumN / n) < 0.02);
  t.true(Math.abs(sumN2 / n - 1) < 0.03);
});

test('permutation holds every index exactly once', (t) => {
  const p = permutation(1000, createRng(3));
  t.deepEqual(
    [...p].sort((x, y) => x - y),
    Array.from({ length: 1000 }, (_, i) => i),
  );
  t.notDeepEqual([...p.slice(0, 10)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('createRng rejects negative or fractional keys', (t) => {
  t.throws(() => createRng(1, -1), { instanceOf: RangeError });
  t.throws(() => createRng(1.5), { instanceOf: RangeError });
});
