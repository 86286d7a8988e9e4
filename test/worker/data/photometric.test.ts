import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import {
  applyColourTransform,
  brightnessStep,
  type ColourTransform,
  contrastStep,
  hueStep,
  identityColourTransform,
  samplePhotometric,
  saturationStep,
  thenAffine,
} from '../../../worker/data/photometric.js';

const luma = ([r, g, b]: readonly number[]) => 0.299 * r! + 0.587 * g! + 0.114 * b!;
const rngFor = (i: number) => createRng(7, RNG_STREAM.augment, 0, i);

/** Applies a step to one pixel directly from its definition (no matrix composition). */
function stepByHand(kind: string, value: number, [r, g, b]: number[]): number[] {
  if (kind === 'brightness') return [r! + value, g! + value, b! + value];
  if (kind === 'contrast') return [r! * value, g! * value, b! * value];
  const y = luma([r!, g!, b!]);
  return [value * r! + (1 - value) * y, value * g! + (1 - value) * y, value * b! + (1 - value) * y];
}

test('composed colour transform equals applying brightness, contrast and saturation one after another', (t) => {
  const steps: [string, number][] = [
    ['brightness', -20],
    ['saturation', 1.4],
    ['contrast', 0.7],
  ];
  let composed: ColourTransform = identityColourTransform();
  for (const [kind, v] of steps) {
    const step =
      kind === 'brightness' ? brightnessStep(v) : kind === 'contrast' ? contrastStep(v) : saturationStep(v);
    composed = thenAffine(composed, step.a, step.c);
  }
  for (const pixel of [
    [10, 200, 30],
    [255, 255, 255],
    [0, 0, 0],
    [120, 60, 240],
  ]) {
    let expected = pixel;
    for (const [kind, v] of steps) expected = stepByHand(kind, v, expected);
    const got = applyColourTransform(composed, pixel);
    for (const [k, g] of got.entries()) t.true(Math.abs(g - expected[k]!) < 1e-9, `${pixel} channel ${k}`);
  }
});

test('hue rotation keeps grey pixels grey and keeps the luma of coloured ones', (t) => {
  const hue = thenAffine(identityColourTransform(), hueStep(17).a);
  const grey = applyColourTransform(hue, [90, 90, 90]);
  for (const v of grey) t.true(Math.abs(v - 90) < 0.5, `grey -> ${grey}`);
  const colour = [200, 40, 90];
  const rotated = applyColourTransform(hue, colour);
  t.true(Math.abs(luma(rotated) - luma(colour)) < 0.5);
  const moved = Math.max(...rotated.map((v, k) => Math.abs(v - colour[k]!)));
  t.true(moved > 20, `the colour itself changed: ${rotated}`);
});

test('a 180 degree hue rotation maps a colour towards its complement around grey', (t) => {
  const half = thenAffine(identityColourTransform(), hueStep(180).a);
  const [r, g, b] = applyColourTransform(half, [200, 100, 100]);
  t.true(r < g && r < b, `reddish became cyan-ish: ${[r, g, b]}`);
});

test('samplePhotometric is a pure function of its rng keys', (t) => {
  for (let i = 0; i < 20; i++) {
    t.deepEqual(samplePhotometric(rngFor(i)), samplePhotometric(rngFor(i)));
  }
});

test('samplePhotometric keeps grey pixels grey within the brightness and contrast bounds', (t) => {
  let changed = 0;
  for (let i = 0; i < 300; i++) {
    const transform = samplePhotometric(rngFor(i));
    if (transform === null) continue;
    const [r, g, b] = applyColourTransform(transform, [100, 100, 100]);
    // GluonCV's YIQ matrices are rounded to 3 decimals, so a hue step moves grey by up to ~0.4%
    t.true(Math.abs(r - g) < 1 && Math.abs(g - b) < 1, `seed ${i}: ${[r, g, b]}`);
    // worst cases: (100 - 32) * 0.5 and (100 + 32) * 1.5
    t.true(r >= 33 && r <= 199, `seed ${i}: ${r}`);
    if (Math.abs(r - 100) > 1) changed++;
  }
  t.true(changed > 150, `only ${changed} of 300 moved`);
});

test('samplePhotometric leaves about one image in sixteen untouched', (t) => {
  let untouched = 0;
  const n = 1600;
  for (let i = 0; i < n; i++) if (samplePhotometric(rngFor(i)) === null) untouched++;
  // 4 independent p = 0.5 steps: expected 100, sd ~9.7
  t.true(untouched > 60 && untouched < 140, `untouched ${untouched}`);
});
