import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { allReduceBuckets, layoutHash, planBuckets } from '../../../worker/allreduce/buckets.js';
import { createMemoryRing } from '../../../worker/allreduce/memory-transport.js';
import { exactSum, firstMismatch, rankInputs } from './ring-fixtures.js';

test('planBuckets covers the buffer with fixed-size buckets and a shorter last one', (t) => {
  const plan = planBuckets(10, { bucketBytes: 16 });
  t.is(plan.bucketElements, 4);
  t.deepEqual(plan.buckets, [
    { index: 0, offset: 0, length: 4 },
    { index: 1, offset: 4, length: 4 },
    { index: 2, offset: 8, length: 2 },
  ]);
  t.deepEqual(planBuckets(0).buckets, []);
  t.throws(() => planBuckets(-1), { message: /totalElements: expected an integer >= 0, got -1/ });
});

test('layoutHash and the plan hash change with any name, shape, dtype or bucket size', (t) => {
  const layout = [
    { name: 'conv1/kernel', shape: [3, 3, 3, 16], dtype: 'float32' },
    { name: 'conv1/bias', shape: [16], dtype: 'float32' },
  ];
  const h = layoutHash(layout);
  t.regex(h, /^[0-9a-f]{32}$/);
  t.is(layoutHash(structuredClone(layout)), h);
  t.not(layoutHash([layout[1]!, layout[0]!]), h);
  t.not(layoutHash([{ ...layout[0]!, shape: [3, 3, 16, 3] }, layout[1]!]), h);
  t.not(layoutHash([{ ...layout[0]!, dtype: 'float16' }, layout[1]!]), h);
  const plan = planBuckets(448, { layoutHash: h });
  t.is(planBuckets(448, { layoutHash: h }).hash, plan.hash);
  t.not(planBuckets(448, { layoutHash: h, bucketBytes: 1024 }).hash, plan.hash);
  t.not(planBuckets(448, { layoutHash: layoutHash([]) }).hash, plan.hash);
});

test('allReduceBuckets sums many buckets across 3 ranks', async (t) => {
  const size = 3;
  const ring = createMemoryRing(size, { shuffleSeed: 5 });
  const inputs = rankInputs(size, 2501);
  const plan = planBuckets(2501, { bucketBytes: 400 });
  t.true(plan.buckets.length > 20);
  const buffers = inputs.map((x) => x.slice());
  const stats = await Promise.all(
    buffers.map((b, rank) =>
      allReduceBuckets(b, plan, {
        rank,
        size,
        generation: 0,
        round: 9,
        transport: ring.transports[rank]!,
        signal: new AbortController().signal,
        chunkBytes: 64,
        maxBucketsInFlight: 3,
      }),
    ),
  );
  for (const b of buffers) t.is(firstMismatch(b, exactSum(inputs)), -1);
  const total = (k: 'bytesSent' | 'bytesReceived') => stats.reduce((acc, s) => acc + s[k], 0);
  // Over all ranks, every float crosses 2(N-1) links (N-1 in each phase).
  t.is(total('bytesSent'), total('bytesReceived'));
  t.is(total('bytesSent'), 2 * (size - 1) * 2501 * 4);
});

test('allReduceBuckets refuses a buffer that does not match the plan', async (t) => {
  const ring = createMemoryRing(1);
  const err = await t.throwsAsync(
    allReduceBuckets(new Float32Array(5), planBuckets(6), {
      rank: 0,
      size: 1,
      generation: 0,
      round: 0,
      transport: ring.transports[0]!,
      signal: new AbortController().signal,
    }),
  );
  t.true(isClusterError(err, 'CONFIG'));
  t.regex(err!.message, /5 elements but the bucket plan expects 6/);
});
