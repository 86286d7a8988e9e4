import test from 'ava';
import {
  addF16Into,
  copyF16Into,
  encodeF16,
  F16_MAX,
  floatBitsToHalf,
  halfToFloat,
  roundToF16InPlace,
} from '../../../worker/allreduce/fp16.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toHalf(x: number): number {
  f32[0] = x;
  return floatBitsToHalf(u32[0]!);
}

test('every finite half converts to float32 and back to the same bits', (t) => {
  let checked = 0;
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00) continue; // infinities and NaNs
    if (toHalf(halfToFloat(h)) !== h) t.fail(`half 0x${h.toString(16)} did not survive a round trip`);
    checked++;
  }
  t.is(checked, 0x10000 - 2 * 1024);
});

test('floatBitsToHalf rounds midpoints between adjacent halves to the even one', (t) => {
  for (const h of [0x0001, 0x0200, 0x03ff, 0x0400, 0x3c00, 0x3c01, 0x5000, 0x7bfe]) {
    const lo = halfToFloat(h);
    const hi = halfToFloat(h + 1);
    const even = h % 2 === 0 ? h : h + 1;
    t.is(toHalf((lo + hi) / 2), even, `midpoint above 0x${h.toString(16)}`);
    t.is(toHalf(lo + (hi - lo) * 0.49), h);
    t.is(toHalf(lo + (hi - lo) * 0.51), h + 1);
    t.is(toHalf(-(lo + hi) / 2), even | 0x8000, 'negative midpoint');
  }
});

test('floatBitsToHalf saturates to infinity past 65504, flushes below 2^-25 and keeps NaN', (t) => {
  t.is(halfToFloat(toHalf(F16_MAX)), F16_MAX);
  t.is(halfToFloat(toHalf(65519)), F16_MAX);
  t.is(halfToFloat(toHalf(65520)), Infinity);
  t.is(halfToFloat(toHalf(-1e9)), -Infinity);
  t.is(toHalf(2 ** -24), 0x0001);
  t.is(toHalf(2 ** -25), 0x0000, 'tie between 0 and the smallest subnormal goes to 0');
  t.is(toHalf(1.5 * 2 ** -25), 0x0001);
  t.is(toHalf(-1e-10), 0x8000);
  t.true(Number.isNaN(halfToFloat(toHalf(Number.NaN))));
});

test('encode, add and copy agree with rounding in place', (t) => {
  const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
  const half = encodeF16(values);
  const rounded = values.slice();
  roundToF16InPlace(rounded);
  const copied = new Float32Array(values.length);
  copyF16Into(copied, half);
  t.deepEqual(copied, rounded);
  const acc = Float32Array.from(values);
  addF16Into(acc, half);
  for (let i = 0; i < values.length; i++) t.is(acc[i], Math.fround(values[i]! + rounded[i]!));
  const relative = rounded.map((r, i) =>
    values[i] === 0 ? 0 : Math.abs(r - values[i]!) / Math.abs(values[i]!),
  );
  t.true(
    relative.every((e, i) => Math.abs(values[i]!) < 2 ** -14 || e <= 2 ** -11),
    'normal halves are within 2^-11 relative',
  );
});
