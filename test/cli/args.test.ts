import test from 'ava';
import { intFlag, numberFlag, parseCommandArgs } from '../../cli/args.js';
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

test('parseCommandArgs suggests the nearest flag for a misspelt one, and nothing for a stranger', (t) => {
  const options = { 'mini-batch-size': { type: 'string' }, workers: { type: 'string' } } as const;
  const typo = t.throws(() => parseCommandArgs('train', ['--mini-bach-size', '8'], options), {
    instanceOf: UsageError,
  });
  t.is(
    typo.message,
    "Unknown option '--mini-bach-size' (did you mean --mini-batch-size?) (see ssd-cluster train --help)",
  );
  t.regex(
    t.throws(() => parseCommandArgs('local', ['--wokers=2'], options)).message,
    /did you mean --workers\?/,
  );
  t.regex(
    t.throws(() => parseCommandArgs('local', ['--log-levle', 'warn'], options)).message,
    /did you mean --log-level\?/,
  );
  const stranger = t.throws(() => parseCommandArgs('train', ['--frobnicate'], options));
  t.is(stranger.message, "Unknown option '--frobnicate' (see ssd-cluster train --help)");
});
