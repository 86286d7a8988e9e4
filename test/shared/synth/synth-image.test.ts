import test from 'ava';
import { ConfigError } from '../../../shared/errors.js';
import { backgroundColourAt, intersectionArea, type Rgb } from '../../../shared/synth/scene.js';
import {
  compileSynthOptions,
  SYNTH_DEFAULTS,
  synthClassNames,
  synthesizeImage,
} from '../../../shared/synth/synth-image.js';

const options = compileSynthOptions({ imageSize: 96 });
const images = Array.from({ length: 60 }, (_, i) => synthesizeImage(options, 'validation', i));

test('synthesizeImage gives the same pixels and labels for the same seed, split and index', (t) => {
  const again = synthesizeImage(options, 'validation', 7);
  t.deepEqual(again.pixels, images[7]!.pixels);
  t.deepEqual(again.objects, images[7]!.objects);
});

test('synthesizeImage differs between indices, splits and seeds', (t) => {
  const base = images[3]!.pixels;
  t.notDeepEqual(images[4]!.pixels, base);
  t.notDeepEqual(synthesizeImage(options, 'train', 3).pixels, base);
  t.notDeepEqual(synthesizeImage({ ...options, seed: 1 }, 'validation', 3).pixels, base);
});

test('synthesizeImage labels at least one object per image with corners inside [0, 1]', (t) => {
  for (const image of images) {
    t.true(image.objects.length >= 1);
    for (const o of image.objects) {
      t.true(o.xmin >= 0 && o.ymin >= 0 && o.xmax <= 1 && o.ymax <= 1);
      t.true(o.xmin < o.xmax && o.ymin < o.ymax);
      t.true(Number.isInteger(o.classId) && o.classId >= 0 && o.classId < options.classCount);
    }
  }
});

function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);
}

test('an unoccluded object shows its own colour at its centre and its label box matches the drawn box', (t) => {
  let checked = 0;
  for (const { scene, objects, pixels } of images) {
    // Later objects are drawn on top: an object no later box touches is fully visible.
    const fullyVisible = scene.objects.filter((o, i) =>
      scene.objects.slice(i + 1).every((later) => intersectionArea(later.box, o.box) === 0),
    );
    for (const o of fullyVisible) {
      // The centre of every kind lies inside it except the ring's hole: use a point on the ring there.
      const u = o.kind === 'ring' ? 0.775 : 0;
      const x = Math.floor(o.box.left + (o.box.width / 2) * (1 + u));
      const y = Math.floor(o.box.top + o.box.height / 2);
      const p = 3 * (y * scene.size + x);
      const shown = [pixels[p]!, pixels[p + 1]!, pixels[p + 2]!];
      const scale = 1 + o.shading.du * u;
      const own: Rgb = [o.colour[0] * scale, o.colour[1] * scale, o.colour[2] * scale];
      const background = backgroundColourAt(scene.background, scene.size, x, y);
      t.true(distance(shown, own) < distance(shown, background), `object ${o.kind} at (${x}, ${y})`);
      const label = objects.find(
        (l) => l.classId === o.classId && Math.abs(l.xmin * scene.size - o.box.left) < 1.5,
      );
      t.truthy(label, `label for ${o.kind} at left ${o.box.left}`);
      t.true(Math.abs(label!.xmax * scene.size - (o.box.left + o.box.width)) < 1.5);
      t.true(Math.abs(label!.ymin * scene.size - o.box.top) < 1.5);
      t.true(Math.abs(label!.ymax * scene.size - (o.box.top + o.box.height)) < 1.5);
      checked++;
    }
  }
  t.true(checked > 50, `checked ${checked} objects`);
});

test('compileSynthOptions fills defaults and names every bad flag at once', (t) => {
  t.deepEqual({ ...compileSynthOptions() }, { ...SYNTH_DEFAULTS });
  const err = t.throws(() => compileSynthOptions({ train: -1, imageSize: 8, classCount: 9, seed: 1.5 }), {
    instanceOf: ConfigError,
  });
  t.deepEqual(
    err.problems.map((p) => p.split(':')[0]),
    ['--train', '--image-size', '--classes', '--seed'],
  );
});

test('synthClassNames names the first K shape kinds', (t) => {
  t.deepEqual(synthClassNames(3), ['circle', 'square', 'triangle']);
  t.is(synthClassNames(SYNTH_DEFAULTS.classCount).length, SYNTH_DEFAULTS.classCount);
});
