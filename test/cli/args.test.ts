import test from 'ava';
import { intFlag, numberFlag } from '../../cli/args.js';
import { UsageError } from '../../shared/errors.js';

test('intFlag parses an integer in range and leaves an absent flag undefined', (t) => {
  t.is(intFlag('workers', '3', { min: 1 }), 3);
  t.is(intFlag('workers', undefined, { min: 1 }), undefined);
});

test('intFlag names the flag for an empty, blank, fractional or out-of-range value', (t) => {
  for (const value of ['', ' ', '1.5', 'abc', '0', '17']) {
    const err = t.throws(() => intFlag('workers', value, { min: 1, max: 16 }), { instanceOf: UsageError });
    t.true(err.message.startsWith('--workers: expected an integer >= 1 and <= 16'), err.message);
  }
});

test('numberFlag refuses an empty value and accepts a fraction', (t) => {
  t.is(numberFlag('learning-rate', '0.5'), 0.5);
  t.throws(() => numberFlag('learning-rate', ''), { instanceOf: UsageError, message: /--learning-rate/ });
});
