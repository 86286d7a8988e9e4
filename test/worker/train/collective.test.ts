import test from 'ava';
import { deferred } from '../../../shared/abort.js';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { LaggingAcks } from '../../../worker/train/collective.js';

/** Resolves once `promise` has settled, with whether it had; never waits for it. */
async function hasSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

test('LaggingAcks judges each step by the ack of the step before, not waiting for its own', async (t) => {
  const acks = new LaggingAcks();
  const first = deferred<boolean>();
  const second = deferred<boolean>();
  t.true(await acks.settle(first.promise, false), 'the first step of a generation has nothing to read');
  const afterSecond = acks.settle(second.promise, false);
  t.false(await hasSettled(afterSecond), 'waits for the first ack');
  first.resolve(false);
  t.false(await afterSecond, "the first step's ack stops training after the second step");
  second.resolve(true);
  t.true(await acks.settle(Promise.resolve(false), false), "the third step goes by the second's ack");
});

test('LaggingAcks waits for both acks at the last step of an epoch, then has nothing in flight', async (t) => {
  const acks = new LaggingAcks();
  const first = deferred<boolean>();
  const last = deferred<boolean>();
  await acks.settle(first.promise, false);
  const atLast = acks.settle(last.promise, true);
  first.resolve(true);
  t.false(await hasSettled(atLast), 'waits for its own ack too');
  last.resolve(false);
  t.false(await atLast);
  const next = deferred<boolean>();
  t.true(await acks.settle(next.promise, false), 'the next epoch starts with nothing to read');
});

test('LaggingAcks throws a rejected ack at the step that reads it', async (t) => {
  const acks = new LaggingAcks();
  const stale = new ClusterError('STALE_GENERATION', 'ReportStep: generation 3 is not the current 4');
  t.true(await acks.settle(Promise.reject(stale), false));
  const err = await t.throwsAsync(acks.settle(Promise.resolve(true), false));
  t.true(isClusterError(err, 'STALE_GENERATION'));
});

test('LaggingAcks drops an ack still pending when training stops, rejection included', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => process.off('unhandledRejection', onUnhandled));
  const acks = new LaggingAcks();
  const pending = deferred<boolean>();
  t.true(await acks.settle(pending.promise, false));
  pending.reject(new ClusterError('STALE_GENERATION', 'ReportStep: generation 3 is not the current 4'));
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(unhandled, []);
});
