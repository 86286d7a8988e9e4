import test from 'ava';
import {
  createRecordLocator,
  createShardingPlan,
  type EpochPlan,
  epochPermutation,
  validationShard,
  validationShards,
} from '../../../coordinator/sharding/plan.js';
import { ClusterError, ConfigError, RecordIOError } from '../../../shared/errors.js';
import { createRng, permutation, RNG_STREAM } from '../../../shared/random.js';

/** Every sample the plan hands out, step by step and rank by rank. */
function handedOut(plan: EpochPlan): number[] {
  const out: number[] = [];
  for (let step = 0; step < plan.steps; step++) {
    for (let rank = 0; rank < plan.worldSize; rank++) out.push(...plan.rankSamples(step, rank));
  }
  return out;
}

const SHAPES = [
  { numSamples: 50, worldSize: 1, perWorkerBatch: 7 },
  { numSamples: 50, worldSize: 3, perWorkerBatch: 4 },
  { numSamples: 48, worldSize: 4, perWorkerBatch: 3 },
  { numSamples: 10, worldSize: 5, perWorkerBatch: 2 },
  { numSamples: 1001, worldSize: 2, perWorkerBatch: 32 },
];

for (const shape of SHAPES) {
  test(`the plan gives ${shape.worldSize} ranks equal steps of ${shape.perWorkerBatch} over ${shape.numSamples} samples, dropping only the remainder`, (t) => {
    const plan = createShardingPlan({ ...shape, seed: 11 }).epoch(4);
    const globalBatch = shape.worldSize * shape.perWorkerBatch;
    t.is(plan.steps, Math.floor(shape.numSamples / globalBatch));
    t.is(plan.droppedSamples, shape.numSamples % globalBatch);
    for (let step = 0; step < plan.steps; step++) {
      for (let rank = 0; rank < plan.worldSize; rank++)
        t.is(plan.rankSamples(step, rank).length, shape.perWorkerBatch);
    }
    const samples = handedOut(plan);
    t.is(new Set(samples).size, samples.length, 'no sample twice');
    t.is(samples.length + plan.droppedSamples, shape.numSamples, 'nothing lost beyond the remainder');
    t.true(samples.every((s) => Number.isInteger(s) && s >= 0 && s < shape.numSamples));
    const dropped = epochPermutation(shape.numSamples, 11, 4).slice(samples.length);
    t.is(new Set([...samples, ...dropped]).size, shape.numSamples, 'dropped = the tail of the permutation');
  });
}

test('the plan draws each epoch from the shuffle stream of createRng(seed, shuffle, epoch)', (t) => {
  const plan = createShardingPlan({ numSamples: 40, worldSize: 2, perWorkerBatch: 5, seed: 9 });
  for (const epoch of [0, 1, 7]) {
    const expected = permutation(40, createRng(9, RNG_STREAM.shuffle, epoch));
    for (let step = 0; step < plan.stepsPerEpoch; step++) {
      t.deepEqual(plan.stepSamples(epoch, step), expected.slice(step * 10, step * 10 + 10));
    }
  }
  t.notDeepEqual(plan.stepSamples(0, 0), plan.stepSamples(1, 0));
  const otherSeed = createShardingPlan({ numSamples: 40, worldSize: 2, perWorkerBatch: 5, seed: 10 });
  t.notDeepEqual(plan.stepSamples(0, 0), otherSeed.stepSamples(0, 0));
});

test('the plan gives worldSize 1, 2 and 3 the same global batches when the global batch is the same', (t) => {
  const plans = [
    { worldSize: 1, perWorkerBatch: 6 },
    { worldSize: 2, perWorkerBatch: 3 },
    { worldSize: 3, perWorkerBatch: 2 },
  ].map((shape) => createShardingPlan({ ...shape, numSamples: 100, seed: 3 }));
  t.deepEqual(new Set(plans.map((p) => p.stepsPerEpoch)), new Set([16]));
  for (const epoch of [0, 5]) {
    for (let step = 0; step < 16; step++) {
      const batches = plans.map((p) => p.stepSamples(epoch, step));
      t.deepEqual(batches[1], batches[0]);
      t.deepEqual(batches[2], batches[0]);
      for (const p of plans) {
        const joined = Array.from({ length: p.worldSize }, (_, r) => [
          ...p.rankSamples(epoch, step, r),
        ]).flat();
        t.deepEqual(joined, [...batches[0]!], 'ranks in order make up the global batch');
      }
    }
  }
});

test('planFromPosition continues the same epoch with another worldSize and no sample twice', (t) => {
  const sharding = createShardingPlan({ numSamples: 50, worldSize: 3, perWorkerBatch: 2, seed: 5 });
  const before = sharding.epoch(2);
  const stepsDone = 4;
  const position = before.positionAfter(stepsDone);
  t.is(position, 24);
  const after = sharding.planFromPosition(2, position, 2);
  t.is(after.startPosition, 24);
  t.is(after.globalBatch, 4);
  t.is(after.steps, Math.floor(26 / 4));
  t.is(after.droppedSamples, 26 % 4);
  const first = handedOut(before).slice(0, stepsDone * before.globalBatch);
  const rest = handedOut(after);
  const order = epochPermutation(50, 5, 2);
  t.deepEqual([...first, ...rest], [...order.slice(0, first.length + rest.length)]);
  t.is(new Set([...first, ...rest]).size, first.length + rest.length);
});

test('planFromPosition with the same worldSize repeats the remaining steps of the epoch', (t) => {
  const sharding = createShardingPlan({ numSamples: 64, worldSize: 2, perWorkerBatch: 4, seed: 1 });
  const whole = sharding.epoch(3);
  const resumed = sharding.planFromPosition(3, whole.positionAfter(5));
  t.is(resumed.steps, whole.steps - 5);
  for (let step = 0; step < resumed.steps; step++) {
    t.deepEqual(resumed.stepSamples(step), whole.stepSamples(step + 5));
    t.deepEqual(resumed.rankSamples(step, 1), whole.rankSamples(step + 5, 1));
  }
});

test('planFromPosition at the end of the epoch has no step left', (t) => {
  const sharding = createShardingPlan({ numSamples: 30, worldSize: 2, perWorkerBatch: 4, seed: 1 });
  const end = sharding.planFromPosition(0, sharding.epoch(0).positionAfter(3));
  t.is(end.steps, 0);
  t.is(end.droppedSamples, 6);
  t.is(sharding.planFromPosition(0, 30, 1).steps, 0);
});

test('the plan refuses a global batch larger than the train set, naming mini_batch_size', (t) => {
  const err = t.throws(
    () => createShardingPlan({ numSamples: 50, worldSize: 3, perWorkerBatch: 20, seed: 0 }),
    {
      instanceOf: ConfigError,
    },
  );
  t.regex(err.message, /mini_batch_size: 20 x 3 workers = 60 is more than the 50 training samples/);
  const sharding = createShardingPlan({ numSamples: 50, worldSize: 1, perWorkerBatch: 20, seed: 0 });
  t.throws(() => sharding.planFromPosition(0, 0, 3), { instanceOf: ConfigError });
});

test('the plan rejects steps, ranks and positions outside the epoch', (t) => {
  const sharding = createShardingPlan({ numSamples: 20, worldSize: 2, perWorkerBatch: 3, seed: 0 });
  const plan = sharding.epoch(0);
  t.is(plan.steps, 3);
  t.throws(() => plan.stepSamples(3), {
    instanceOf: ClusterError,
    message: /step of epoch 0 must be an integer in \[0, 2\], got 3/,
  });
  t.throws(() => plan.rankSamples(0, 2), { instanceOf: ClusterError, message: /rank/ });
  t.throws(() => plan.positionAfter(4), { instanceOf: ClusterError });
  t.throws(() => sharding.planFromPosition(0, 21), { instanceOf: ClusterError, message: /samplesConsumed/ });
  t.throws(() => sharding.epoch(-1), { instanceOf: ClusterError, message: /epoch/ });
});

test('stepSamples returns a copy that cannot change the plan', (t) => {
  const plan = createShardingPlan({ numSamples: 20, worldSize: 2, perWorkerBatch: 3, seed: 0 }).epoch(0);
  const first = plan.stepSamples(0);
  const saved = [...first];
  first.fill(0);
  t.deepEqual([...plan.stepSamples(0)], saved);
});

test('validationShards splits contiguously and near-equally, every sample exactly once', (t) => {
  for (const numSamples of [0, 1, 4, 7, 100, 101]) {
    for (const worldSize of [1, 2, 3, 5, 8]) {
      const shards = validationShards(numSamples, worldSize);
      t.is(shards.length, worldSize);
      t.is(shards[0]!.start, 0);
      t.is(shards.at(-1)!.end, numSamples);
      shards.forEach((s, r) => {
        if (r > 0) t.is(s.start, shards[r - 1]!.end, 'contiguous');
        t.deepEqual(validationShard(numSamples, worldSize, r), s);
      });
      const sizes = shards.map((s) => s.end - s.start);
      t.true(Math.max(...sizes) - Math.min(...sizes) <= 1, `${numSamples}/${worldSize}: ${sizes}`);
    }
  }
});

// The four records of the saved GluonCV dog file (SPEC 3.6): offsets from its .idx, and its size.
const DOG_INDEX = [0, 163868, 327736, 491604].map((offset, key) => ({ key, offset }));
const DOG_BYTES = 655472;

test('createRecordLocator maps samples to record offsets and byte ranges', (t) => {
  const locator = createRecordLocator(DOG_INDEX, DOG_BYTES, 'dog.idx');
  t.is(locator.numRecords, 4);
  t.deepEqual(locator.offsetsOf([3, 0]), [491604, 0]);
  t.deepEqual(locator.byteRangesOf(Uint32Array.of(1, 3)), [
    { start: 163868, end: 327736 },
    { start: 491604, end: DOG_BYTES },
  ]);
  t.throws(() => locator.offsetsOf([4]), { message: /dog\.idx: sample 4 is outside the 4 indexed records/ });
});

test('createRecordLocator turns validation shards into byte ranges that partition the file', (t) => {
  const locator = createRecordLocator(DOG_INDEX, DOG_BYTES);
  for (const worldSize of [1, 2, 3, 4, 6]) {
    const ranges = validationShards(4, worldSize).map((s) => locator.byteRangeOf(s));
    t.is(ranges[0]!.start, 0);
    t.is(ranges.at(-1)!.end, DOG_BYTES);
    ranges.forEach((r, i) => {
      if (i > 0) t.is(r.start, ranges[i - 1]!.end);
    });
  }
  t.deepEqual(locator.byteRangeOf({ start: 1, end: 3 }), { start: 163868, end: 491604 });
});

test('createRecordLocator sizes records of an index out of file order by the next larger offset', (t) => {
  const shuffled = [DOG_INDEX[2]!, DOG_INDEX[0]!, DOG_INDEX[3]!, DOG_INDEX[1]!];
  const locator = createRecordLocator(shuffled, DOG_BYTES, 'shuffled.idx');
  t.deepEqual(locator.byteRangesOf([0, 3]), [
    { start: 327736, end: 491604 },
    { start: 163868, end: 327736 },
  ]);
  t.throws(() => locator.byteRangeOf({ start: 0, end: 2 }), {
    message: /shuffled\.idx: offsets are not in file order/,
  });
});

test('createRecordLocator rejects duplicate offsets and offsets past the end, naming the index', (t) => {
  const duplicate = [...DOG_INDEX, { key: 9, offset: 163868 }];
  const err = t.throws(() => createRecordLocator(duplicate, DOG_BYTES, 'dup.idx'), {
    instanceOf: RecordIOError,
  });
  t.regex(err.message, /^dup\.idx at byte 163868: entries \d and \d share an offset/);
  t.throws(() => createRecordLocator(DOG_INDEX, 491604, 'short.idx'), {
    instanceOf: RecordIOError,
    message: /short\.idx at byte 491604: entry 3 points outside the 491604-byte file/,
  });
});

test('validationShards rejects a world of no ranks', (t) => {
  t.throws(() => validationShards(10, 0), { instanceOf: ClusterError, message: /worldSize/ });
  t.throws(() => validationShard(10, 2, 2), { instanceOf: ClusterError, message: /rank/ });
});
