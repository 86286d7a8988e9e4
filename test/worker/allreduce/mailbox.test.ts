import test from 'ava';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { Mailbox } from '../../../worker/allreduce/mailbox.js';
import type {
  ChunkHeader,
  ChunkKey,
  ChunkMsg,
  PayloadReceiver,
} from '../../../worker/allreduce/transport.js';

const key = (over: Partial<ChunkKey> = {}): ChunkKey => ({
  generation: 2,
  round: 0,
  step: 0,
  bucket: 0,
  chunk: 0,
  ...over,
});
const msg = (over: Partial<ChunkKey> = {}): ChunkMsg => ({
  ...key(over),
  offset: 0,
  dtype: 'f32',
  bytes: new Uint8Array(4),
});
const never = () => new AbortController().signal;

test('mailbox keeps an early arrival until it is taken', async (t) => {
  const box = new Mailbox(2);
  const early = msg({ step: 1 });
  t.is(box.deliver(early), 'accepted');
  t.is(box.size, 1);
  t.is(await box.take(key({ step: 1 }), never()), early);
  t.is(box.size, 0);
});

test('mailbox hands a late arrival to the waiter of exactly its key', async (t) => {
  const box = new Mailbox(2);
  const a = box.take(key({ chunk: 1 }), never());
  const b = box.take(key({ chunk: 0 }), never());
  const m0 = msg({ chunk: 0 });
  const m1 = msg({ chunk: 1 });
  box.deliver(m0);
  box.deliver(m1);
  t.is(await a, m1);
  t.is(await b, m0);
});

test('mailbox drops and counts a message of an older generation', async (t) => {
  const box = new Mailbox(2);
  const waiting = box.take(key(), AbortSignal.timeout(2000));
  t.is(box.deliver(msg({ generation: 1 })), 'stale');
  t.is(box.staleRejected, 1);
  box.deliver(msg());
  t.is((await waiting).generation, 2);
});

test('mailbox rejects a key delivered twice as a PROTOCOL error', (t) => {
  const box = new Mailbox(2);
  box.deliver(msg());
  const err = t.throws(() => box.deliver(msg()));
  t.true(isClusterError(err, 'PROTOCOL'));
  t.regex(err!.message, /2\/0\/0\/0\/0 arrived twice/);
});

test('mailbox advance rejects waiters of the old generation and keeps newer messages', async (t) => {
  const box = new Mailbox(2);
  const old = box.take(key(), never());
  box.deliver(msg({ generation: 3 }));
  box.advance(3);
  const err = await t.throwsAsync(old);
  t.true(isClusterError(err, 'STALE_GENERATION'));
  t.is((await box.take(key({ generation: 3 }), never())).generation, 3);
  await t.throwsAsync(box.take(key(), never()), { message: /generation 2 is over/ });
});

test('mailbox fail rejects present and future waiters of that generation only', async (t) => {
  const box = new Mailbox(2);
  const waiting = box.take(key(), never());
  box.fail(2, new ClusterError('PEER_LOST', 'left neighbour gone'));
  await t.throwsAsync(waiting, { message: 'left neighbour gone' });
  await t.throwsAsync(box.take(key({ step: 3 }), never()), { message: 'left neighbour gone' });
  box.advance(3);
  box.deliver(msg({ generation: 3 }));
  t.is((await box.take(key({ generation: 3 }), never())).generation, 3);
});

test('mailbox take rejects with the abort reason and forgets the waiter', async (t) => {
  const box = new Mailbox(2);
  const controller = new AbortController();
  const waiting = box.take(key(), controller.signal);
  controller.abort(new ClusterError('ABORTED', 'round cancelled'));
  await t.throwsAsync(waiting, { message: 'round cancelled' });
  // The key can be awaited again and a later delivery reaches the new waiter.
  const again = box.take(key(), never());
  box.deliver(msg());
  t.is((await again).step, 0);
});

const header = (over: Partial<ChunkHeader> = {}): ChunkHeader => ({
  ...key(over),
  offset: 0,
  dtype: 'f32',
  byteLength: 4,
  ...over,
});

/** A receiver that records what it is given (and can refuse every header). */
function recorder(refuse?: Error): { receiver: PayloadReceiver; events: string[] } {
  const events: string[] = [];
  const receiver: PayloadReceiver = {
    begin(h) {
      if (refuse) throw refuse;
      events.push(`begin ${h.byteLength}`);
    },
    data: (bytes) => events.push(`data ${[...bytes].join(',')}`),
    end: () => events.push('end'),
  };
  return { receiver, events };
}

test('mailbox streams a payload piece by piece into the receiver that waited for it', async (t) => {
  const box = new Mailbox(2);
  const { receiver, events } = recorder();
  let done = false;
  const taken = box.takeInto(key(), receiver, never()).then(() => {
    done = true;
  });
  const arrival = box.arrive(header());
  if (arrival.kind !== 'stream') return t.fail(`expected stream, got ${arrival.kind}`);
  arrival.receiver.data(Uint8Array.of(1, 2));
  t.deepEqual(events, ['begin 4', 'data 1,2'], 'bytes reach the receiver before the message ends');
  arrival.receiver.data(Uint8Array.of(3, 4));
  await Promise.resolve();
  t.false(done);
  arrival.receiver.end();
  await taken;
  t.deepEqual(events, ['begin 4', 'data 1,2', 'data 3,4', 'end']);
});

test('mailbox feeds a message that arrived earlier to a receiver at once', async (t) => {
  const box = new Mailbox(2);
  t.is(box.arrive(header()).kind, 'collect', 'nobody waits yet');
  box.deliver({ ...msg(), bytes: [Uint8Array.of(1), Uint8Array.of(2, 3, 4)] });
  const { receiver, events } = recorder();
  await box.takeInto(key(), receiver, never());
  t.deepEqual(events, ['begin 4', 'data 1', 'data 2,3,4', 'end']);
});

test('mailbox rejects the wait of a receiver that refuses the header and drops the message', async (t) => {
  const box = new Mailbox(2);
  const refusal = new ClusterError('PROTOCOL', 'wrong offset');
  const taken = box.takeInto(key(), recorder(refusal).receiver, never());
  t.is(box.arrive(header()).kind, 'drop');
  t.is(await t.throwsAsync(taken), refusal);
  t.is(box.size, 0);
});

test('mailbox stops streaming into a receiver whose wait was aborted', async (t) => {
  const box = new Mailbox(2);
  const { receiver, events } = recorder();
  const controller = new AbortController();
  const taken = box.takeInto(key(), receiver, controller.signal);
  const arrival = box.arrive(header());
  if (arrival.kind !== 'stream') return t.fail(`expected stream, got ${arrival.kind}`);
  arrival.receiver.data(Uint8Array.of(1, 2));
  controller.abort(new ClusterError('ABORTED', 'round cancelled'));
  arrival.receiver.data(Uint8Array.of(3, 4));
  arrival.receiver.end();
  await t.throwsAsync(taken, { message: 'round cancelled' });
  t.deepEqual(events, ['begin 4', 'data 1,2'], 'no byte after the abort');
});

test('mailbox drops and counts an arriving payload of an older generation', (t) => {
  const box = new Mailbox(2);
  t.is(box.arrive(header({ generation: 1 })).kind, 'drop');
  t.is(box.staleRejected, 1);
});

test('mailbox refuses a whole delivery of a key that is streaming as arriving twice', (t) => {
  const box = new Mailbox(2);
  void box.takeInto(key(), recorder().receiver, never());
  t.is(box.arrive(header()).kind, 'stream');
  t.throws(() => box.deliver(msg()), { message: /arrived twice/ });
});
