import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { INTERPOLATIONS, type Interpolation } from '../../../worker/data/augment.js';
import {
  axisTaps,
  type RgbImage,
  resampleImage,
  resampleRegion,
  resampleWork,
} from '../../../worker/data/resample.js';

function randomImage(width: number, height: number, key: number): RgbImage {
  const rng = createRng(7, RNG_STREAM.test, key);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  return { width, height, data };
}

function constantImage(width: number, height: number, rgb: readonly number[]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rgb[i % 3]!;
  return { width, height, data };
}

// The reference: the textbook kernels, and each output pixel as one direct 2-D weighted sum over
// the source, with nothing precomputed or shared between pixels.
const cubicBc = (b: number, c: number) => (t: number) => {
  const x = Math.abs(t);
  if (x < 1) return ((12 - 9 * b - 6 * c) * x ** 3 + (-18 + 12 * b + 6 * c) * x ** 2 + (6 - 2 * b)) / 6;
  if (x < 2)
    return (
      ((-b - 6 * c) * x ** 3 + (6 * b + 30 * c) * x ** 2 + (-12 * b - 48 * c) * x + (8 * b + 24 * c)) / 6
    );
  return 0;
};
const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
const REFERENCE: Record<Exclude<Interpolation, 'nearest'>, [number, (t: number) => number]> = {
  linear: [1, (t) => Math.max(0, 1 - Math.abs(t))],
  cubic: [2, cubicBc(0, 0.5)],
  mitchell: [2, cubicBc(1 / 3, 1 / 3)],
  lanczos3: [3, (t) => (Math.abs(t) < 3 ? sinc(t) * sinc(t / 3) : 0)],
};

/** Weight of every source index 0..size-1 for output pixel u (edge taps clamped, normalised). */
function referenceWeights(size: number, scaled: number, u: number, kind: Interpolation): number[] {
  const w = new Array<number>(size).fill(0);
  const clamp = (i: number) => Math.min(size - 1, Math.max(0, i));
  if (scaled === size) w[u] = 1;
  else if (kind === 'nearest') w[clamp(Math.floor(((u + 0.5) * size) / scaled))] = 1;
  else {
    const [support, f] = REFERENCE[kind];
    const factor = Math.max(1, size / scaled);
    const centre = ((u + 0.5) * size) / scaled;
    for (let i = Math.floor(centre - support * factor) - 2; i <= centre + support * factor + 2; i++)
      w[clamp(i)]! += f((i + 0.5 - centre) / factor);
  }
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / total);
}

function referenceResize(src: RgbImage, width: number, height: number, kind: Interpolation): Uint8Array {
  const out = new Uint8ClampedArray(width * height * 3);
  const wx = Array.from({ length: width }, (_, u) => referenceWeights(src.width, width, u, kind));
  const wy = Array.from({ length: height }, (_, v) => referenceWeights(src.height, height, v, kind));
  for (let v = 0; v < height; v++)
    for (let u = 0; u < width; u++)
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let j = 0; j < src.height; j++)
          for (let i = 0; i < src.width; i++)
            sum += wy[v]![j]! * wx[u]![i]! * src.data[(j * src.width + i) * 3 + c]!;
        out[(v * width + u) * 3 + c] = sum;
      }
  return new Uint8Array(out.buffer);
}

function crop(data: Uint8Array, width: number, r: { x: number; y: number; width: number; height: number }) {
  const out = new Uint8Array(r.width * r.height * 3);
  for (let y = 0; y < r.height; y++)
    out.set(
      data.subarray(((r.y + y) * width + r.x) * 3, ((r.y + y) * width + r.x + r.width) * 3),
      y * r.width * 3,
    );
  return out;
}

const SIZES: [number, number, number, number][] = [
  [11, 7, 23, 16], // up on both axes
  [19, 13, 7, 5], // down (by 2.7 and 2.6: the kernel widens)
  [16, 9, 9, 14], // down across, up down
  [12, 10, 12, 17], // one axis unchanged
];

for (const kind of INTERPOLATIONS) {
  test(`resampleImage with ${kind} matches a direct 2-D weighted sum, up and down`, (t) => {
    SIZES.forEach(([w, h, sw, sh], key) => {
      const src = randomImage(w, h, key);
      const got = resampleImage(src, sw, sh, kind);
      const want = referenceResize(src, sw, sh, kind);
      let off = 0;
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got[i]! - want[i]!);
        if (d > 0) off++;
        worst = Math.max(worst, d);
      }
      // Float rounding differs (float32 rows, another summation order): a .5 may round the other way.
      t.true(worst <= 1, `${w}x${h} -> ${sw}x${sh}: largest difference ${worst}`);
      t.true(off <= want.length * 0.01, `${w}x${h} -> ${sw}x${sh}: ${off} of ${want.length} differ`);
    });
  });

  test(`resampleRegion with ${kind} at scale 1 copies the region exactly`, (t) => {
    const src = randomImage(21, 14, 9);
    const region = { x: 3, y: 2, width: 15, height: 10 };
    t.deepEqual(resampleRegion(src, 21, 14, region, kind), crop(src.data, 21, region));
  });

  test(`resampleRegion with ${kind} keeps a constant image constant, up and down`, (t) => {
    const rgb = [201, 7, 96];
    for (const [w, h, sw, sh] of SIZES) {
      const out = resampleImage(constantImage(w, h, rgb), sw, sh, kind);
      t.true(
        out.every((v, i) => v === rgb[i % 3]),
        `${w}x${h} -> ${sw}x${sh}`,
      );
    }
  });

  test(`resampleRegion with ${kind} gives exactly the same crop of the full scaled image`, (t) => {
    for (const [w, h, sw, sh, region] of [
      [40, 30, 97, 71, { x: 31, y: 17, width: 40, height: 33 }],
      [90, 60, 33, 29, { x: 5, y: 7, width: 20, height: 11 }],
      [30, 30, 64, 64, { x: 40, y: 50, width: 24, height: 14 }], // at the far edges
    ] as const) {
      const src = randomImage(w, h, w);
      const full = resampleImage(src, sw, sh, kind);
      t.deepEqual(
        resampleRegion(src, sw, sh, region, kind),
        crop(full, sw, region),
        `${w}x${h} -> ${sw}x${sh}`,
      );
    }
  });
}

/** Every run of whole rows (across: columns) of a width x height scaled image, as regions. */
function everyBand(width: number, height: number, across: boolean) {
  const length = across ? width : height;
  const bands = [];
  for (let from = 0; from < length; from++)
    for (let size = 1; from + size <= length; size++)
      bands.push(across ? { x: from, y: 0, width: size, height } : { x: 0, y: from, width, height: size });
  return bands;
}

test('resampleRegion gives the crop of the full image for every band when output pixels land on source pixels', (t) => {
  // At 3x (an odd ratio) output rows 1, 4, 7, ... sit on source rows' centres, where cubic's taps at
  // +-1 and +-2 weigh exactly 0: such a row reads one source row, and the next row starts one earlier.
  const src = randomImage(10, 7, 3);
  for (const kind of INTERPOLATIONS) {
    const full = resampleImage(src, 30, 21, kind);
    for (const region of [...everyBand(30, 21, false), ...everyBand(30, 21, true)]) {
      const want = crop(full, 30, region);
      const got = resampleRegion(src, 30, 21, region, kind);
      if (!got.every((v, i) => v === want[i])) {
        t.fail(`${kind}: region ${JSON.stringify(region)} differs from the full image's crop`);
        return;
      }
    }
  }
  t.pass();
});

test('resampleRegion writes into the given buffer and rejects one of the wrong length', (t) => {
  const src = randomImage(8, 8, 1);
  const region = { x: 1, y: 1, width: 4, height: 3 };
  const out = new Uint8Array(4 * 3 * 3);
  t.is(resampleRegion(src, 12, 12, region, 'cubic', out), out);
  t.deepEqual(out, crop(resampleImage(src, 12, 12, 'cubic'), 12, region));
  t.throws(() => resampleRegion(src, 12, 12, region, 'cubic', new Uint8Array(5)), { instanceOf: RangeError });
});

test('axisTaps widens the kernel by the shrink factor and not when enlarging', (t) => {
  const reach = (taps: ReturnType<typeof axisTaps>) => {
    let most = 0;
    for (let k = 0; k < taps.starts.length; k++) {
      let n = 0;
      for (let i = 0; i < taps.taps; i++) if (taps.weights[k * taps.taps + i] !== 0) n++;
      most = Math.max(most, n);
    }
    return most;
  };
  t.is(reach(axisTaps(100, 200, 50, 100, 'cubic')), 4);
  t.is(reach(axisTaps(100, 25, 0, 25, 'cubic')), 16);
  t.is(reach(axisTaps(100, 25, 0, 25, 'lanczos3')), 24);
  t.is(reach(axisTaps(100, 37, 0, 37, 'nearest')), 1);
});

test('resampleWork grows with the shrink factor and the kernel', (t) => {
  const region = { x: 0, y: 0, width: 64, height: 64 };
  const src = { width: 256, height: 256 };
  t.true(resampleWork(src, 64, 64, region, 'cubic') > resampleWork(src, 128, 128, region, 'cubic'));
  t.true(resampleWork(src, 128, 128, region, 'lanczos3') > resampleWork(src, 128, 128, region, 'linear'));
  t.true(resampleWork(src, 128, 128, region, 'linear') > resampleWork(src, 128, 128, region, 'nearest'));
});
