import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import type { ChunkHead } from '../../../worker/allreduce/chunk-codec.js';
import { InboundChunks } from '../../../worker/allreduce/inbound-chunks.js';
import { Mailbox } from '../../../worker/allreduce/mailbox.js';
import { joinPayload } from '../../../worker/allreduce/payload.js';
import type { PayloadReceiver } from '../../../worker/allreduce/transport.js';

const head = (over: Partial<ChunkHead> = {}): ChunkHead => ({
  generation: 4,
  round: 1,
  step: 0,
  bucket: 0,
  chunk: 0,
  offset: 0,
  dtype: 'DTYPE_F32',
  ...over,
});
const key = (chunk: number) => ({ generation: 4, round: 1, step: 0, bucket: 0, chunk });
const never = () => new AbortController().signal;

function route(box: Mailbox) {
  const accepted: number[] = [];
  const inbound = new InboundChunks(box, 4, 'left neighbour rank 0', (n) => accepted.push(n));
  return { inbound, accepted };
}

test('InboundChunks streams into a receiver that waits and delivers any other message whole', async (t) => {
  const box = new Mailbox(4);
  const { inbound, accepted } = route(box);
  const got: number[] = [];
  const receiver: PayloadReceiver = { begin() {}, data: (b) => got.push(...b), end() {} };
  const streamed = box.takeInto(key(0), receiver, never());
  inbound.begin(head({ chunk: 0 }), 8);
  inbound.data(Uint8Array.of(1, 2, 3));
  t.deepEqual(got, [1, 2, 3], 'streamed before the message ends');
  inbound.data(Uint8Array.of(4, 5, 6, 7, 8));
  inbound.end();
  await streamed;
  inbound.begin(head({ chunk: 1 }), 4);
  inbound.data(Uint8Array.of(9, 9));
  inbound.data(Uint8Array.of(8, 8));
  inbound.end();
  const whole = await box.take(key(1), never());
  t.deepEqual([...joinPayload(whole.bytes)], [9, 9, 8, 8]);
  t.deepEqual(accepted, [8, 4]);
});

test('InboundChunks drops and counts a chunk of an older generation', (t) => {
  const box = new Mailbox(5);
  const { inbound, accepted } = route(box);
  inbound.begin(head(), 4);
  inbound.data(new Uint8Array(4));
  inbound.end();
  t.is(box.staleRejected, 1);
  t.is(box.size, 0);
  t.deepEqual(accepted, []);
});

test('InboundChunks refuses a chunk of a newer generation, or with a bad field, as PROTOCOL', (t) => {
  const { inbound } = route(new Mailbox(4));
  const newer = t.throws(() => inbound.begin(head({ generation: 5 }), 4));
  t.true(isClusterError(newer, 'PROTOCOL'));
  t.regex(newer!.message, /generation 5 arrived on the stream of generation 4/);
  t.throws(() => inbound.begin(head({ dtype: 'DTYPE_7' as ChunkHead['dtype'] }), 4), {
    message: /chunk from left neighbour rank 0: dtype DTYPE_7 is not valid/,
  });
  t.throws(() => inbound.begin(head(), 6), { message: /f32 data length 6 is not valid/ });
});
