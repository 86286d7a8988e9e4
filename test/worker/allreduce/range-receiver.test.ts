import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { encodeF16 } from '../../../worker/allreduce/fp16.js';
import { addInto, RangeReceiver } from '../../../worker/allreduce/range-receiver.js';
import type { ChunkDtype, ChunkHeader } from '../../../worker/allreduce/transport.js';

/** `bytes` in pieces of the given sizes, each at an odd offset of its own buffer. */
function pieces(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const size of sizes) {
    const n = Math.min(size, bytes.byteLength - at);
    const host = new Uint8Array(n + 3);
    host.set(bytes.subarray(at, at + n), 1);
    out.push(host.subarray(1, 1 + n));
    at += n;
  }
  out.push(bytes.subarray(at));
  return out;
}

function receive(
  buffer: Float32Array,
  start: number,
  payload: Uint8Array,
  dtype: ChunkDtype,
  isReduce: boolean,
) {
  const width = dtype === 'f16' ? 2 : 4;
  const range = { start, end: start + payload.byteLength / width };
  let done = -1;
  const r = new RangeReceiver({
    buffer,
    range,
    dtype,
    isReduce,
    sender: 'rank 1',
    onDone: (n) => (done = n),
  });
  const header: ChunkHeader = {
    generation: 1,
    round: 0,
    step: 0,
    bucket: 0,
    chunk: 0,
    offset: start,
    dtype,
    byteLength: payload.byteLength,
  };
  r.begin(header);
  for (const p of pieces(payload, [3, 1, 3001, 6])) r.data(p);
  r.end();
  return done;
}

const base = () => Float32Array.from({ length: 3000 }, (_, i) => i);
const values = Float32Array.from({ length: 2000 }, (_, i) => 0.5 * i - 100);

test('RangeReceiver adds float32 pieces of any alignment into its range and nowhere else', (t) => {
  const buffer = base();
  t.is(receive(buffer, 500, new Uint8Array(values.buffer), 'f32', true), 8000);
  const expected = base();
  for (let i = 0; i < values.length; i++) expected[500 + i]! += values[i]!;
  t.deepEqual(buffer, expected);
});

test('RangeReceiver copies float32 pieces into its range', (t) => {
  const buffer = base();
  receive(buffer, 7, new Uint8Array(values.buffer), 'f32', false);
  const expected = base();
  expected.set(values, 7);
  t.deepEqual(buffer, expected);
});

test('RangeReceiver adds and copies binary16 pieces as float32', (t) => {
  const half = encodeF16(values);
  const bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
  const added = base();
  receive(added, 100, bytes, 'f16', true);
  const copied = base();
  receive(copied, 100, bytes, 'f16', false);
  for (let i = 0; i < values.length; i++) {
    t.is(copied[100 + i], values[i], `copy ${i}`); // k/2 - 100 is exact in binary16
    t.is(added[100 + i], 100 + i + values[i]!, `sum ${i}`);
  }
});

/** A float32 receiver of `range` that must not finish. */
const unfinished = (
  t: import('ava').ExecutionContext,
  range: { start: number; end: number },
  sender: string,
) =>
  new RangeReceiver({ buffer: base(), range, dtype: 'f32', isReduce: true, sender, onDone: () => t.fail() });

test('RangeReceiver refuses a header that does not fit its range, naming the likely flag', (t) => {
  const r = unfinished(t, { start: 10, end: 20 }, 'rank 3');
  const header: ChunkHeader = {
    generation: 1,
    round: 0,
    step: 2,
    bucket: 0,
    chunk: 4,
    offset: 10,
    dtype: 'f16',
    byteLength: 20,
  };
  const err = t.throws(() => r.begin(header));
  t.true(isClusterError(err, 'PROTOCOL'));
  t.regex(
    err!.message,
    /step 2 chunk 4 from rank 3 has f16 offset 10 and 20 bytes; expected f32 offset 10 and 40 bytes/,
  );
  t.regex(err!.message, /--gradient-compression/);
});

test('RangeReceiver rejects a payload that ends short', (t) => {
  const r = unfinished(t, { start: 0, end: 4 }, 'rank 1');
  r.begin({ generation: 1, round: 0, step: 0, bucket: 0, chunk: 0, offset: 0, dtype: 'f32', byteLength: 16 });
  r.data(new Uint8Array(12));
  t.throws(() => r.end(), { message: /rank 1 sent 12 of 16 bytes/ });
});

test('addInto adds element-wise for every length around its unrolling', (t) => {
  for (let n = 0; n <= 19; n++) {
    const dst = Float32Array.from({ length: n }, (_, i) => i);
    const src = Float32Array.from({ length: n }, (_, i) => 100 * i + 0.5);
    addInto(dst, src);
    t.deepEqual(
      [...dst],
      Array.from({ length: n }, (_, i) => 101 * i + 0.5),
      `length ${n}`,
    );
  }
});
