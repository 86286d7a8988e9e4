import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import {
  forEachAlignedBlock,
  joinPayload,
  payloadByteLength,
  payloadParts,
} from '../../../worker/allreduce/payload.js';

/** `bytes` cut into pieces of the given sizes, each copied to a random offset of its own buffer. */
function scatter(bytes: Uint8Array, sizes: readonly number[], seed: number): Uint8Array[] {
  const rng = createRng(seed, RNG_STREAM.test);
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const size of sizes) {
    const offset = rng.int(8);
    const host = new Uint8Array(offset + size + 3);
    host.set(bytes.subarray(at, at + size), offset);
    parts.push(host.subarray(offset, offset + size));
    at += size;
  }
  if (at !== bytes.byteLength) throw new Error('sizes do not cover the bytes');
  return parts;
}

/** Collects what forEachAlignedBlock visits, checking every block's alignment and position. */
function visitAll(t: import('ava').ExecutionContext, parts: Uint8Array[], width: number): number[] {
  const values: number[] = [];
  forEachAlignedBlock(parts, width, (block, index) => {
    t.is(block.byteOffset % width, 0, 'block aligned');
    t.is(index, values.length, 'blocks come in order');
    const view =
      width === 4
        ? new Float32Array(block.buffer, block.byteOffset, block.byteLength / 4)
        : new Uint16Array(block.buffer, block.byteOffset, block.byteLength / 2);
    values.push(...view);
  });
  return values;
}

test('forEachAlignedBlock visits every float32 in order across misaligned pieces and split values', (t) => {
  const values = Float32Array.from({ length: 40_000 }, (_, i) => i * 0.5 - 7);
  const bytes = new Uint8Array(values.buffer);
  const sizes = [3, 1, 16_384, 5, 70_000, 2, bytes.byteLength - 86_395];
  for (const seed of [1, 2, 3]) {
    t.deepEqual(visitAll(t, scatter(bytes, sizes, seed), 4), [...values]);
  }
});

test('forEachAlignedBlock visits binary16 values across pieces of odd lengths', (t) => {
  const halves = Uint16Array.from({ length: 9001 }, (_, i) => (i * 7919) & 0xffff);
  const bytes = new Uint8Array(halves.buffer);
  t.deepEqual(visitAll(t, scatter(bytes, [1, 1, 4097, 13_903], 4), 2), [...halves]);
});

test('forEachAlignedBlock visits an aligned single view in place without copying', (t) => {
  const values = new Float32Array([1, 2, 3]);
  const seen: Uint8Array[] = [];
  forEachAlignedBlock(new Uint8Array(values.buffer), 4, (block) => seen.push(block));
  t.is(seen.length, 1);
  t.is(seen[0]!.buffer, values.buffer);
});

test('forEachAlignedBlock rejects a payload whose length is not a multiple of the width', (t) => {
  t.throws(() => forEachAlignedBlock([Uint8Array.of(1, 2), Uint8Array.of(3)], 4, () => {}), {
    message: /not a multiple of 4 bytes/,
  });
});

test('payload helpers join, measure and list pieces', (t) => {
  const pieces = [Uint8Array.of(1, 2), Uint8Array.of(), Uint8Array.of(3)];
  t.deepEqual([...joinPayload(pieces)], [1, 2, 3]);
  t.is(payloadByteLength(pieces), 3);
  const one = Uint8Array.of(9);
  t.is(joinPayload(one), one);
  t.is(joinPayload([one]), one);
  t.deepEqual(payloadParts(one), [one]);
});
