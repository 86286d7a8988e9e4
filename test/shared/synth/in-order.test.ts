import test from 'ava';
import { type Deferred, deferred } from '../../../shared/abort.js';
import { produceInOrder } from '../../../shared/synth/in-order.js';

test('produceInOrder consumes in index order even when productions finish in reverse', async (t) => {
  const pending: Deferred<string>[] = [];
  const consumed: [string, number][] = [];
  let maxInFlight = 0;
  let settled = 0;
  const run = produceInOrder(
    6,
    3,
    (i) => {
      const d = deferred<string>();
      pending[i] = d;
      maxInFlight = Math.max(maxInFlight, i + 1 - settled);
      return d.promise;
    },
    async (value, i) => {
      consumed.push([value, i]);
      settled++;
      // Finish the ones in flight newest first.
      for (let j = pending.length - 1; j >= settled; j--) pending[j]!.resolve(`v${j}`);
    },
  );
  for (let j = pending.length - 1; j >= 0; j--) pending[j]!.resolve(`v${j}`);
  await run;
  t.deepEqual(
    consumed,
    Array.from({ length: 6 }, (_, i) => [`v${i}`, i]),
  );
  t.is(maxInFlight, 3);
});

test('produceInOrder stops at an aborted signal and reports a failed production', async (t) => {
  const controller = new AbortController();
  const started: number[] = [];
  const aborted = produceInOrder(
    10,
    2,
    async (i) => {
      started.push(i);
      return i;
    },
    async (_, i) => {
      if (i === 1) controller.abort(new Error('enough'));
    },
    controller.signal,
  );
  await t.throwsAsync(aborted, { message: 'enough' });
  t.true(started.length <= 4, `started ${started.join(',')}`);

  const failing = produceInOrder(
    5,
    2,
    async (i) => {
      if (i === 2) throw new Error('image 2 is broken');
      return i;
    },
    async () => {},
  );
  await t.throwsAsync(failing, { message: 'image 2 is broken' });
});
