import test from 'ava';
import { isClusterError } from '../../shared/errors.js';
import { createMemoryRing } from '../../worker/allreduce/memory-transport.js';
import type { RingTransport } from '../../worker/allreduce/transport.js';
import { RingReducer } from '../../worker/ring-reducer.js';
import { createLayout, type GradientLayout } from '../../worker/train/tensor-pack.js';
import { joinAll, startNodes } from './allreduce/grpc-fixtures.js';
import { exactSum, firstMismatch, rankInputs } from './allreduce/ring-fixtures.js';

const layout = createLayout(
  [
    { name: 'conv/kernel', shape: [3, 3, 3, 4] },
    { name: 'conv/bias', shape: [4] },
  ],
  ['clsLossSum', 'locLossSum', 'numPositives'],
);

function reducer(transport: RingTransport, bucketBytes = 64) {
  return new RingReducer(transport, { compression: 'none', bucketBytes });
}

test('RingReducer agrees on a hash that changes with the tensor layout and with the bucket size', (t) => {
  const ring = createMemoryRing(1);
  const transport = ring.transports[0]!;
  const renamed = createLayout(
    [
      { name: 'conv/kernel', shape: [3, 3, 3, 4] },
      { name: 'conv/beta', shape: [4] },
    ],
    ['clsLossSum', 'locLossSum', 'numPositives'],
  );
  t.is(renamed.totalSize, layout.totalSize, 'same length, so only the hash can tell them apart');
  const hash = reducer(transport).agreeLayout(layout);
  t.is(reducer(transport).agreeLayout(layout), hash, 'the same layout and buckets agree');
  t.not(reducer(transport, 128).agreeLayout(layout), hash, 'other bucket cuts');
  t.not(reducer(transport).agreeLayout(renamed), hash, 'other tensor names');
  t.not(hash, layout.hash, 'the tensor layout hash alone does not cover the buckets');
});

test('RingReducer sums packed buffers across 3 ranks over several buckets and rounds', async (t) => {
  const size = 3;
  const ring = createMemoryRing(size);
  const reducers = ring.transports.map((transport, rank) => {
    const r = reducer(transport);
    r.agreeLayout(layout);
    r.setRing({ generation: 0, rank, size });
    return r;
  });
  const signal = new AbortController().signal;
  for (const seed of [1, 2]) {
    // 64-byte buckets: 16 elements each, so the 115-element buffer travels as 8 buckets.
    const inputs = rankInputs(size, layout.totalSize, seed);
    const buffers = inputs.map((x) => x.slice());
    await Promise.all(reducers.map((r, rank) => r.reduce(buffers[rank]!, signal)));
    const expected = exactSum(inputs);
    for (const buffer of buffers) t.is(firstMismatch(buffer, expected), -1, `round of seed ${seed}`);
  }
  t.is(reducers[0]!.last.bufferBytes, layout.totalSize * 4);
  t.true(reducers[0]!.last.bytesSent > 0);
});

test('RingReducer refuses a buffer whose length differs from the layout agreed at join', async (t) => {
  const ring = createMemoryRing(2);
  const r = reducer(ring.transports[0]!);
  const hash = r.agreeLayout(layout);
  r.setRing({ generation: 0, rank: 0, size: 2 });
  const err = await t.throwsAsync(
    r.reduce(new Float32Array(layout.totalSize - 1), new AbortController().signal),
  );
  t.true(isClusterError(err, 'PROTOCOL'), String(err));
  t.true(err!.message.includes(`plan hash ${hash}`));
  t.regex(err!.message, new RegExp(`has ${layout.totalSize - 1} elements .* has ${layout.totalSize}$`));
  t.is(ring.transports[0]!.sent, 0, 'nothing was sent');
});

test('ranks whose bucket sizes differ are refused at the ring handshake, equal ones join', async (t) => {
  const nodes = await startNodes(t, 2);
  const hashes = (bucketBytes: readonly number[], l: GradientLayout = layout) =>
    nodes.map((node, rank) => reducer(node.transport, bucketBytes[rank]).agreeLayout(l));
  const mismatched = hashes([64, 128]);
  const refused = await joinAll(nodes, 1, { layoutHash: (rank) => mismatched[rank]! });
  const reasons = refused.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  t.true(reasons.length > 0, 'some rank failed to join');
  t.true(
    reasons.some((e) => isClusterError(e, 'PROTOCOL') && /layout hash .* differs/.test(e.message)),
    reasons.map((e) => e.message).join('; '),
  );
  const matching = hashes([64, 64]);
  const joined = await joinAll(nodes, 2, { layoutHash: (rank) => matching[rank]! });
  t.deepEqual(
    joined.map((r) => r.status),
    ['fulfilled', 'fulfilled'],
  );
});
