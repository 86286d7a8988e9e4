import test from 'ava';
import { formatPrediction } from '../../../worker/inference/prediction-json.js';

test('formatPrediction writes every number of a row as a float, class ids as 4.0', (t) => {
  const rows = [
    [4, 0.93, 0.1, 0.25, 0.5, 1],
    [0, 1, 0, 0.333, 1, 0.5],
  ];
  const text = formatPrediction(rows);
  t.is(text, '{"prediction": [[4.0, 0.93, 0.1, 0.25, 0.5, 1.0], [0.0, 1.0, 0.0, 0.333, 1.0, 0.5]]}');
  t.deepEqual(JSON.parse(text), { prediction: rows });
});

test('formatPrediction writes an empty prediction list and keeps exponents valid JSON', (t) => {
  t.is(formatPrediction([]), '{"prediction": []}');
  const tiny = [[1, 1.5e-7, 0, 0, 1e21, 1]];
  t.deepEqual(JSON.parse(formatPrediction(tiny)), { prediction: tiny });
});

test('formatPrediction refuses a value JSON cannot hold', (t) => {
  t.throws(() => formatPrediction([[1, Number.NaN, 0, 0, 1, 1]]), { message: /NaN is not finite/ });
});
