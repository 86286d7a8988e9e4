import test from 'ava';
import { OUTSIDE_TOLERANCE, parseAnnotationFile } from '../../../shared/annotations/annotation.js';
import { compileClassSet, toNormalizedObjects } from '../../../shared/annotations/convert.js';
import { AnnotationError } from '../../../shared/annotations/fields.js';

// biome-ignore lint/suspicious/noExplicitAny: the cases below edit the example into invalid shapes on purpose
type Editable = Record<string, any>;

/** The example of SPEC part 1, section 2. */
function example(): Editable {
  return {
    file: 'your_image_directory/sample_image1.jpg',
    image_size: [{ width: 500, height: 400, depth: 3 }],
    annotations: [
      { class_id: 0, left: 111, top: 134, width: 61, height: 128 },
      { class_id: 1, left: 101, top: 185, width: 42, height: 130 },
    ],
    categories: [
      { class_id: 0, name: 'dog' },
      { class_id: 1, name: 'cat' },
    ],
  };
}

test('parseAnnotationFile reads the SageMaker example', (t) => {
  const a = parseAnnotationFile(JSON.stringify(example()), 'sample_image1.json');
  t.deepEqual(a, {
    file: 'your_image_directory/sample_image1.jpg',
    width: 500,
    height: 400,
    objects: [
      { classId: 0, left: 111, top: 134, width: 61, height: 128 },
      { classId: 1, left: 101, top: 185, width: 42, height: 130 },
    ],
    categories: [
      { classId: 0, name: 'dog' },
      { classId: 1, name: 'cat' },
    ],
  });
});

test('toNormalizedObjects turns pixel boxes into corners divided by the image size', (t) => {
  const a = parseAnnotationFile(JSON.stringify(example()), 'sample_image1.json');
  t.deepEqual(toNormalizedObjects(a), [
    { class: 0, xmin: 111 / 500, ymin: 134 / 400, xmax: 172 / 500, ymax: 262 / 400 },
    { class: 1, xmin: 101 / 500, ymin: 185 / 400, xmax: 143 / 500, ymax: 315 / 400 },
  ]);
});

test('a box overshooting the image by less than the tolerance is accepted and clipped to [0, 1]', (t) => {
  const value = example();
  const overshoot = OUTSIDE_TOLERANCE * 500 - 1;
  value.annotations = [{ class_id: 0, left: -overshoot, top: 390, width: 50, height: 10 + overshoot / 2 }];
  const [o] = toNormalizedObjects(parseAnnotationFile(JSON.stringify(value), 'edge.json'));
  t.deepEqual(o, { class: 0, xmin: 0, ymin: 390 / 400, xmax: (50 - overshoot) / 500, ymax: 1 });
});

/** Each case edits the example; the error must name the file and the field. */
const rejects = test.macro({
  exec(t, edit: (v: Editable) => void, field: string, problem: RegExp) {
    const value = example();
    edit(value);
    const err = t.throws(() => parseAnnotationFile(JSON.stringify(value), 'dir/img7.json'), {
      instanceOf: AnnotationError,
    });
    t.is(err.source, 'dir/img7.json');
    t.is(err.field, field);
    t.true(err.message.startsWith(`dir/img7.json: ${field}: `), err.message);
    t.regex(err.message, problem);
    t.is(err.code, 'ANNOTATION');
  },
  title: (_, __, field: string, problem: RegExp) =>
    `parseAnnotationFile rejects ${field} (${problem.source}) naming the file and field`,
});

test(rejects, (v) => delete v.file, 'file', /missing/);
test(rejects, (v) => (v.image_size = { width: 1 }), 'image_size', /expected an array/);
test(rejects, (v) => v.image_size.push({ width: 1, height: 1, depth: 3 }), 'image_size', /exactly one/);
test(rejects, (v) => (v.image_size[0].depth = 1), 'image_size[0].depth', /3-channel/);
test(rejects, (v) => delete v.image_size[0].depth, 'image_size[0].depth', /missing/);
test(rejects, (v) => (v.image_size[0].width = 0), 'image_size[0].width', />= 1/);
test(rejects, (v) => (v.image_size[0].height = 12.5), 'image_size[0].height', /integer/);
test(rejects, (v) => delete v.annotations, 'annotations', /expected an array/);
test(rejects, (v) => (v.annotations[1] = 7), 'annotations[1]', /expected an object/);
test(rejects, (v) => (v.annotations[1].class_id = -1), 'annotations[1].class_id', />= 0/);
test(rejects, (v) => (v.annotations[0].class_id = 0.5), 'annotations[0].class_id', /integer/);
test(rejects, (v) => (v.annotations[0].class_id = '0'), 'annotations[0].class_id', /the string "0"/);
test(rejects, (v) => (v.annotations[1].left = '101'), 'annotations[1].left', /finite number/);
test(rejects, (v) => (v.annotations[1].top = null), 'annotations[1].top', /null/);
test(rejects, (v) => (v.annotations[0].width = 0), 'annotations[0].width', /> 0/);
test(rejects, (v) => (v.annotations[0].height = -4), 'annotations[0].height', /> 0/);
test(rejects, (v) => (v.annotations[0].left = 500), 'annotations[0].left', /outside the image's width 500/);
test(rejects, (v) => (v.annotations[0].top = -60), 'annotations[0].top', /outside the image/);
test(rejects, (v) => (v.annotations[0].width = 450), 'annotations[0].width', /exceeds the image's width 500/);
test(
  rejects,
  (v) => (v.annotations[0].height = 300),
  'annotations[0].height',
  /exceeds the image's height 400/,
);
test(rejects, (v) => (v.annotations[0].left = -200), 'annotations[0].left', /before the image starts/);
test(rejects, (v) => (v.categories[1].name = ''), 'categories[1].name', /non-empty string/);
test(
  rejects,
  (v) => v.categories.push({ class_id: 0, name: 'wolf' }),
  'categories[2].name',
  /"dog" and "wolf"/,
);

test('parseAnnotationFile rejects text that is not JSON, naming the file', (t) => {
  const err = t.throws(() => parseAnnotationFile('{"file": ', 'broken.json'), {
    instanceOf: AnnotationError,
  });
  t.regex(err.message, /^broken\.json: \(root\): not valid JSON/);
});

function annotation(classIds: number[], categories?: [number, string][]) {
  const value = example();
  value.annotations = classIds.map((c) => ({ class_id: c, left: 1, top: 1, width: 5, height: 5 }));
  if (categories) value.categories = categories.map(([class_id, name]) => ({ class_id, name }));
  else delete value.categories;
  return parseAnnotationFile(JSON.stringify(value), 'x.json');
}

test('compileClassSet counts consecutive class ids and takes names from categories, else class_<id>', (t) => {
  const set = compileClassSet([
    { source: 'a.json', annotation: annotation([0, 2]) },
    { source: 'b.json', annotation: annotation([1], [[1, 'cat']]) },
  ]);
  t.deepEqual(set, { classCount: 3, names: ['class_0', 'cat', 'class_2'] });
});

test('compileClassSet counts a class named in categories even when no object uses it', (t) => {
  const set = compileClassSet([
    {
      source: 'a.json',
      annotation: annotation(
        [0],
        [
          [0, 'dog'],
          [1, 'cat'],
        ],
      ),
    },
  ]);
  t.deepEqual(set, { classCount: 2, names: ['dog', 'cat'] });
});

test('compileClassSet rejects class ids with a gap, naming where the largest id is used', (t) => {
  const err = t.throws(
    () =>
      compileClassSet([
        { source: 'a.json', annotation: annotation([0]) },
        { source: 'b.json', annotation: annotation([0, 3]) },
      ]),
    { instanceOf: AnnotationError },
  );
  t.is(
    err.message,
    'b.json: annotations[1].class_id: class ids must be consecutive from 0, but 1, 2 never occur(s) while 3 does',
  );
});

test('compileClassSet rejects one class id named differently in two files, naming both', (t) => {
  const err = t.throws(
    () =>
      compileClassSet([
        { source: 'a.json', annotation: annotation([0], [[0, 'dog']]) },
        { source: 'b.json', annotation: annotation([0], [[0, 'wolf']]) },
      ]),
    { instanceOf: AnnotationError },
  );
  t.regex(err.message, /^b\.json: categories\[0\]\.name: .*"wolf" here but "dog" in a\.json/);
});
