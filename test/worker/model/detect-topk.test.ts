import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { topKIndices } from '../../../worker/model/box.js';

/** Reference: a full sort by value descending, then index ascending, NaN last. */
function referenceTopK(values: number[], k: number, accept: (i: number) => boolean): number[] {
  const key = (i: number) => (Number.isNaN(values[i]!) ? Number.NEGATIVE_INFINITY : values[i]!);
  return values
    .map((_, i) => i)
    .filter(accept)
    .sort((a, b) => key(b) - key(a) || a - b)
    .slice(0, k);
}

test('topKIndices matches a full sort with index tie-breaks on values with many ties and NaNs', (t) => {
  for (let trial = 0; trial < 30; trial++) {
    const rng = createRng(21, RNG_STREAM.test, trial);
    const values = Array.from({ length: 1 + rng.int(300) }, () =>
      rng.chance(0.05) ? Number.NaN : rng.int(12) / 4,
    );
    const k = rng.int(values.length + 5);
    const accept = (i: number) => i % 7 !== 3;
    t.deepEqual(
      Array.from(topKIndices(values, k, accept)),
      referenceTopK(values, k, accept),
      `trial ${trial}`,
    );
  }
});

test('topKIndices returns nothing for k <= 0 and everything accepted for an infinite k', (t) => {
  const values = [3, 1, 2];
  t.is(topKIndices(values, 0).length, 0);
  t.deepEqual(Array.from(topKIndices(values, Number.POSITIVE_INFINITY)), [0, 2, 1]);
  t.deepEqual(Array.from(topKIndices(values, 5, (i) => i !== 0)), [2, 1]);
});
