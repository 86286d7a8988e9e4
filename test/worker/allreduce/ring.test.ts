import test from 'ava';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { fp16ErrorBound } from '../../../worker/allreduce/fp16.js';
import { createMemoryRing, type MemoryTransport } from '../../../worker/allreduce/memory-transport.js';
import { ringAllReduce } from '../../../worker/allreduce/ring.js';
import type { ChunkKey, ChunkMsg, RingTransport } from '../../../worker/allreduce/transport.js';
import { exactSum, firstMismatch, rankInputs, reduceRank, runRing, settleWithin } from './ring-fixtures.js';

const sumsMacro = test.macro({
  async exec(t, size: number, length: number, chunkBytes: number) {
    const ring = createMemoryRing(size, { shuffleSeed: size * 1000 + length });
    const inputs = rankInputs(size, length);
    const { buffers } = await runRing(ring.transports, inputs, { signal: t.context as never, chunkBytes });
    const expected = exactSum(inputs);
    for (const [rank, b] of buffers.entries()) t.is(firstMismatch(b, expected), -1, `rank ${rank}`);
  },
  title: (_, size: number, length: number, chunkBytes: number) =>
    `ringAllReduce sums ${length} values across ${size} rank${size === 1 ? '' : 's'} with ${chunkBytes}-byte chunks delivered out of order`,
});

test.beforeEach((t) => {
  t.context = new AbortController().signal;
});

for (const size of [1, 2, 3, 4, 5]) test(sumsMacro, size, 1037, 64);
test(sumsMacro, 3, 2, 8); // fewer values than ranks: one segment is empty
test(sumsMacro, 5, 4, 4);
test(sumsMacro, 4, 0, 16);
test(sumsMacro, 4, 4099, 4096); // uneven segments whose column counts differ
test(sumsMacro, 2, 200_000, 1 << 20); // one column per segment

test('ringAllReduce with fp16 compression stays within the error bound and leaves all ranks identical', async (t) => {
  const size = 4;
  const ring = createMemoryRing(size, { shuffleSeed: 3 });
  const inputs = rankInputs(size, 5000).map((x) => x.map((v, i) => v * (i % 7 === 0 ? 1000 : 0.01)));
  const { buffers, stats } = await runRing(ring.transports, inputs, {
    signal: new AbortController().signal,
    chunkBytes: 1024,
    compression: 'fp16',
  });
  const exact = exactSum(inputs);
  let worst = 0;
  const outside: number[] = [];
  for (let i = 0; i < exact.length; i++) {
    const sumAbs = inputs.reduce((acc, x) => acc + Math.abs(x[i]!), 0);
    const err = Math.abs(buffers[0]![i]! - exact[i]!);
    if (err > fp16ErrorBound(size, sumAbs)) outside.push(i);
    worst = Math.max(worst, err / Math.max(sumAbs, 1e-30));
  }
  t.deepEqual(outside, [], 'elements outside the fp16 error bound');
  t.true(worst > 0, 'fp16 rounding must show somewhere, else the test proves nothing');
  for (const b of buffers.slice(1)) t.is(firstMismatch(b, buffers[0]!), -1);
  // Half precision halves the bytes on the wire.
  t.is(stats[0]!.bytesSent, (2 * (size - 1) * 5000 * 2) / size);
});

/** Aborts `controller` once `after` messages have gone through `inner`. */
function abortAfter(inner: RingTransport, after: { n: number }, controller: AbortController): RingTransport {
  return {
    sendRight: async (msg, signal) => {
      await inner.sendRight(msg, signal);
      if (--after.n === 0) controller.abort(new ClusterError('ABORTED', 'membership changed'));
    },
    recvLeft: (key, signal) => inner.recvLeft(key, signal),
  };
}

test('an abort in the middle rejects every rank promptly with the abort reason', async (t) => {
  const size = 4;
  const ring = createMemoryRing(size);
  const controller = new AbortController();
  const counter = { n: 10 };
  const transports = ring.transports.map((tr) => abortAfter(tr, counter, controller));
  const inputs = rankInputs(size, 100_000);
  const runs = inputs.map((x, rank) =>
    reduceRank(transports, rank, x.slice(), { signal: controller.signal, chunkBytes: 256 }),
  );
  const results = await settleWithin(runs, 5000, 'ranks after abort');
  for (const r of results) {
    t.is(r.status, 'rejected');
    if (r.status === 'rejected') t.true(isClusterError(r.reason, 'ABORTED'), String(r.reason));
  }
  t.true(counter.n <= 0, 'the abort happened after traffic started');
});

test('a dropped rank makes its neighbours and itself fail with PEER_LOST', async (t) => {
  const size = 3;
  const ring = createMemoryRing(size);
  ring.drop(1);
  const signal = new AbortController().signal;
  const runs = rankInputs(size, 300).map((x, rank) =>
    reduceRank(ring.transports, rank, x, { signal, timeoutMs: 10_000 }),
  );
  const results = await settleWithin(runs, 5000, 'ranks after a drop');
  for (const [rank, r] of results.entries()) {
    t.is(r.status, 'rejected', `rank ${rank}`);
    if (r.status === 'rejected') t.true(isClusterError(r.reason, 'PEER_LOST'), `rank ${rank}: ${r.reason}`);
  }
});

test('a missing rank makes the others fail with a TIMEOUT that names the left neighbour', async (t) => {
  const size = 3;
  const ring = createMemoryRing(size);
  const signal = new AbortController().signal;
  const runs = [0, 1].map((rank) =>
    reduceRank(ring.transports, rank, new Float32Array(30), { signal, timeoutMs: 150 }),
  );
  const results = await settleWithin(runs, 5000, 'ranks waiting for rank 2');
  const rank0 = results[0]!;
  t.is(rank0.status, 'rejected');
  if (rank0.status === 'rejected') {
    t.true(isClusterError(rank0.reason, 'TIMEOUT'));
    t.regex(
      (rank0.reason as Error).message,
      /rank 0 exceeded its 150 ms deadline on bucket 0 waiting for step 0 chunk 0 \(left neighbour rank 2/,
    );
  }
});

test('stale-generation messages are counted and never summed', async (t) => {
  const size = 3;
  const ring = createMemoryRing(size, { generation: 5 });
  // Garbage from generation 4 with the keys of generation 5's messages.
  for (const tr of ring.transports) {
    for (let step = 0; step < 4; step++) {
      const garbage = new Uint8Array(new Float32Array(1000).fill(1e6).buffer);
      const key: ChunkKey = { generation: 4, round: 0, step, bucket: 0, chunk: 0 };
      t.is(tr.mailbox.deliver({ ...key, offset: 0, dtype: 'f32', bytes: garbage }), 'stale');
    }
  }
  const inputs = rankInputs(size, 90);
  const { buffers } = await runRing(ring.transports, inputs, {
    signal: new AbortController().signal,
    generation: 5,
  });
  for (const b of buffers) t.is(firstMismatch(b, exactSum(inputs)), -1);
  t.deepEqual(
    ring.transports.map((tr) => tr.mailbox.staleRejected),
    [4, 4, 4],
  );
});

test('a membership change rejects a round of the old generation with STALE_GENERATION', async (t) => {
  const size = 2;
  const ring = createMemoryRing(size);
  // Only rank 0 runs, so it waits for rank 1 until the generation moves on.
  const waiting = reduceRank(ring.transports, 0, new Float32Array(8), {
    signal: new AbortController().signal,
  });
  ring.advance(1);
  const err = await t.throwsAsync(waiting);
  t.true(isClusterError(err, 'STALE_GENERATION'), String(err));
});

test('ranks that disagree on compression fail with a PROTOCOL error naming the flag', async (t) => {
  const ring = createMemoryRing(2);
  const signal = new AbortController().signal;
  const results = await settleWithin(
    [
      reduceRank(ring.transports, 0, new Float32Array(16), { signal, compression: 'fp16' }),
      reduceRank(ring.transports, 1, new Float32Array(16), { signal }),
    ],
    5000,
    'ranks with different compression',
  );
  const protocol = results.filter((r) => r.status === 'rejected' && isClusterError(r.reason, 'PROTOCOL'));
  t.true(protocol.length >= 1);
  t.regex(String((protocol[0] as PromiseRejectedResult).reason.message), /--gradient-compression/);
});

test('consecutive rounds on the same transports do not mix their messages', async (t) => {
  const size = 3;
  const ring = createMemoryRing(size, { shuffleSeed: 11 });
  const signal = new AbortController().signal;
  const a = rankInputs(size, 500, 1);
  const b = rankInputs(size, 500, 2);
  const [ra, rb] = await Promise.all([
    runRing(ring.transports, a, { signal, round: 0, chunkBytes: 128 }),
    runRing(ring.transports, b, { signal, round: 1, chunkBytes: 128 }),
  ]);
  t.is(firstMismatch(ra.buffers[2]!, exactSum(a)), -1);
  t.is(firstMismatch(rb.buffers[2]!, exactSum(b)), -1);
  t.true(ring.transports.every((tr: MemoryTransport) => tr.mailbox.size === 0));
});

test('ringAllReduce rejects bad options with a ConfigError naming each one', async (t) => {
  const ring = createMemoryRing(2);
  const err = await t.throwsAsync(
    ringAllReduce(new Float32Array(4), {
      rank: 2,
      size: 2,
      generation: 0,
      round: 0,
      transport: ring.transports[0]!,
      signal: new AbortController().signal,
      chunkBytes: 2,
    }),
  );
  t.regex(err!.message, /rank: expected an integer in \[0, 2\), got 2/);
  t.regex(err!.message, /chunkBytes/);
});

test('a message with the wrong offset is a PROTOCOL error, not a silent sum', async (t) => {
  const ring = createMemoryRing(2);
  const signal = new AbortController().signal;
  const liar: RingTransport = {
    sendRight: (msg: ChunkMsg, s) => ring.transports[0]!.sendRight({ ...msg, offset: msg.offset + 1 }, s),
    recvLeft: (key, s) => ring.transports[0]!.recvLeft(key, s),
  };
  const transports = [liar, ring.transports[1]!];
  const results = await settleWithin(
    [
      reduceRank(transports, 0, new Float32Array(10), { signal, timeoutMs: 200 }),
      reduceRank(transports, 1, new Float32Array(10), { signal }),
    ],
    5000,
    'ranks with a lying neighbour',
  );
  const r1 = results[1]!;
  t.is(r1.status, 'rejected');
  if (r1.status === 'rejected') t.true(isClusterError(r1.reason, 'PROTOCOL'), String(r1.reason));
});
