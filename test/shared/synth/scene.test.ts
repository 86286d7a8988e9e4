import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import {
  DEFAULT_SCENE_OPTIONS,
  generateScene,
  intersectionArea,
  type Scene,
} from '../../../shared/synth/scene.js';

const options = { ...DEFAULT_SCENE_OPTIONS, imageSize: 100 };
const scenes: Scene[] = Array.from({ length: 300 }, (_, i) =>
  generateScene(createRng(9, RNG_STREAM.test, i), options),
);

test('generateScene keeps every object box inside the image with the configured size and aspect', (t) => {
  for (const scene of scenes) {
    for (const { box } of scene.objects) {
      t.true(box.left >= 0 && box.top >= 0);
      t.true(box.left + box.width <= 100 + 1e-9 && box.top + box.height <= 100 + 1e-9);
      const side = Math.sqrt(box.width * box.height) / 100;
      t.true(
        side >= options.minSizeFraction - 1e-9 && side <= options.maxSizeFraction + 1e-9,
        `side ${side}`,
      );
      const aspect = box.width / box.height;
      t.true(
        aspect <= options.maxAspect + 1e-9 && aspect >= 1 / options.maxAspect - 1e-9,
        `aspect ${aspect}`,
      );
    }
  }
});

test('generateScene places between minObjects and maxObjects objects and uses every class', (t) => {
  const counts = new Set(scenes.map((s) => s.objects.length));
  t.true(Math.min(...counts) >= options.minObjects);
  t.true(Math.max(...counts) <= options.maxObjects);
  t.is(counts.size, options.maxObjects - options.minObjects + 1);
  const classes = new Set(scenes.flatMap((s) => s.objects.map((o) => o.classId)));
  t.deepEqual(
    [...classes].sort(),
    Array.from({ length: options.classCount }, (_, i) => i),
  );
});

test('generateScene never lets a new object cover more than maxCoverFraction of an earlier box', (t) => {
  let overlapping = 0;
  for (const { objects } of scenes) {
    objects.forEach((later, j) => {
      for (const earlier of objects.slice(0, j)) {
        const covered = intersectionArea(later.box, earlier.box) / (earlier.box.width * earlier.box.height);
        t.true(covered <= options.maxCoverFraction + 1e-9);
        if (covered > 0) overlapping++;
      }
    });
  }
  t.true(overlapping > 20, `only ${overlapping} overlapping pairs: occlusion should occur`);
});

test('generateScene draws object colours independently of the class', (t) => {
  for (let classId = 0; classId < options.classCount; classId++) {
    const reds = scenes.flatMap((s) =>
      s.objects.filter((o) => o.classId === classId).map((o) => o.colour[0]),
    );
    t.true(
      Math.min(...reds) < 64 && Math.max(...reds) > 192,
      `class ${classId} reds span ${Math.min(...reds)}..${Math.max(...reds)}`,
    );
  }
});

test('generateScene adds background clutter to every scene', (t) => {
  t.true(scenes.every((s) => s.distractors.some((d) => d.type === 'blob')));
  t.true(scenes.some((s) => s.distractors.some((d) => d.type === 'line')));
});
