import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import {
  DIFFICULT_VISIBLE_FRACTION,
  DROPPED_VISIBLE_FRACTION,
  renderScene,
} from '../../../shared/synth/rasterise.js';
import type { PixelBox, Rgb, Scene, SceneObject } from '../../../shared/synth/scene.js';

const SIZE = 64;
const GREY: Rgb = [128, 128, 128];

function square(classId: number, box: PixelBox, colour: Rgb): SceneObject {
  return { classId, kind: 'square', box, colour, shading: { du: 0, dv: 0 } };
}

/** A flat grey scene without noise or clutter, so every pixel is predictable. */
function plainScene(objects: SceneObject[]): Scene {
  return {
    size: SIZE,
    background: { from: GREY, to: GREY, angle: 0, noiseAmplitude: 0 },
    distractors: [],
    objects,
  };
}

const rng = () => createRng(1, RNG_STREAM.test);

function pixel(pixels: Uint8Array, x: number, y: number): number[] {
  const p = 3 * (y * SIZE + x);
  return [pixels[p]!, pixels[p + 1]!, pixels[p + 2]!];
}

test('renderScene labels an unoccluded square with the box of the pixel centres it covers', (t) => {
  // Pixel centres x + 0.5 inside [10.2, 40.2] are x = 10..39; y + 0.5 inside [20.7, 50.7] are y = 21..50.
  const out = renderScene(
    plainScene([square(2, { left: 10.2, top: 20.7, width: 30, height: 30 }, [250, 0, 0])]),
    rng(),
  );
  t.deepEqual(out.objects, [
    {
      classId: 2,
      xmin: 10 / SIZE,
      ymin: 21 / SIZE,
      xmax: 40 / SIZE,
      ymax: 51 / SIZE,
      difficult: false,
      visibleFraction: 1,
    },
  ]);
  t.deepEqual(pixel(out.pixels, 10, 21), [250, 0, 0]);
  t.deepEqual(pixel(out.pixels, 9, 21), [...GREY]);
  t.deepEqual(pixel(out.pixels, 10, 20), [...GREY]);
  t.deepEqual(pixel(out.pixels, 39, 50), [250, 0, 0]);
  t.deepEqual(pixel(out.pixels, 40, 50), [...GREY]);
  t.deepEqual(pixel(out.pixels, 39, 51), [...GREY]);
  t.is(out.pixels.length, SIZE * SIZE * 3);
});

test('renderScene shrinks an occluded object to its visible pixels and marks it difficult when mostly hidden', (t) => {
  const under = square(0, { left: 0, top: 0, width: 20, height: 20 }, [0, 0, 250]);
  // Covers columns 6..19 of the 20: 70% hidden, so 30% visible (< 40%).
  const over = square(1, { left: 6, top: 0, width: 30, height: 30 }, [0, 250, 0]);
  const out = renderScene(plainScene([under, over]), rng());
  t.true(0.3 < DIFFICULT_VISIBLE_FRACTION);
  t.deepEqual(out.objects[0], {
    classId: 0,
    xmin: 0,
    ymin: 0,
    xmax: 6 / SIZE,
    ymax: 20 / SIZE,
    difficult: true,
    visibleFraction: 0.3,
  });
  t.is(out.objects[1]!.difficult, false);
});

test('renderScene keeps a half-hidden object as a normal label', (t) => {
  const under = square(0, { left: 0, top: 0, width: 20, height: 20 }, [0, 0, 250]);
  const over = square(1, { left: 10, top: 0, width: 20, height: 20 }, [0, 250, 0]);
  const [first] = renderScene(plainScene([under, over]), rng()).objects;
  t.is(first!.visibleFraction, 0.5);
  t.false(first!.difficult);
});

test('renderScene drops an object that is almost entirely hidden', (t) => {
  const under = square(0, { left: 0, top: 0, width: 20, height: 20 }, [0, 0, 250]);
  const over = square(1, { left: 1, top: 0, width: 30, height: 30 }, [0, 250, 0]);
  const out = renderScene(plainScene([under, over]), rng());
  t.true(1 / 20 < DROPPED_VISIBLE_FRACTION);
  t.deepEqual(
    out.objects.map((o) => o.classId),
    [1],
  );
});

test('renderScene adds noise within the amplitude and draws it from the rng', (t) => {
  const noisy = { ...plainScene([]), background: { from: GREY, to: GREY, angle: 0, noiseAmplitude: 10 } };
  const a = renderScene(noisy, createRng(1, RNG_STREAM.test));
  const b = renderScene(noisy, createRng(2, RNG_STREAM.test));
  const deviations = Array.from(a.pixels, (v) => Math.abs(v - 128));
  t.true(Math.max(...deviations) <= 10);
  t.true(deviations.filter((d) => d > 0).length > 0.8 * deviations.length);
  t.notDeepEqual(a.pixels, b.pixels);
  t.deepEqual(a.pixels, renderScene(noisy, createRng(1, RNG_STREAM.test)).pixels);
});

test('renderScene paints the background gradient from one colour to the other along its angle', (t) => {
  const scene = plainScene([]);
  scene.background = { from: [0, 0, 0], to: [255, 255, 255], angle: 0, noiseAmplitude: 0 };
  const { pixels } = renderScene(scene, rng());
  const row = Array.from({ length: SIZE }, (_, x) => pixel(pixels, x, 5)[0]!);
  t.true(row[0]! < 5 && row[SIZE - 1]! > 250);
  t.true(row.every((v, x) => x === 0 || v >= row[x - 1]!));
  t.deepEqual(pixel(pixels, 7, 0), pixel(pixels, 7, SIZE - 1));
});
