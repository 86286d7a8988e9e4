import test from 'ava';
import { AnnotationError } from '../../../shared/annotations/fields.js';
import { parseManifest, parseManifestLine } from '../../../shared/annotations/manifest.js';

const body = {
  image_size: [{ width: 640, height: 480, depth: 3 }],
  annotations: [{ class_id: 1, left: 10, top: 20, width: 30, height: 40 }],
};

/** A Ground Truth style line (SPEC part 1, section 2). */
const groundTruthLine = JSON.stringify({
  'source-ref': 's3://bucket/images/a.jpg',
  'bounding-box': body,
  'bounding-box-metadata': { 'class-map': { '0': 'dog', '1': 'cat' }, type: 'groundtruth/object_detection' },
});

test('parseManifestLine reads source-ref, the label attribute and the class-map of its metadata', (t) => {
  t.deepEqual(parseManifestLine(groundTruthLine, 'train.manifest', 1), {
    file: 's3://bucket/images/a.jpg',
    width: 640,
    height: 480,
    objects: [{ classId: 1, left: 10, top: 20, width: 30, height: 40 }],
    categories: [
      { classId: 0, name: 'dog' },
      { classId: 1, name: 'cat' },
    ],
  });
});

test('parseManifestLine takes the first key that is neither source-ref nor metadata as the label attribute', (t) => {
  const line = JSON.stringify({ 'job-7-metadata': { type: 'x' }, 'source-ref': 'a.jpg', 'job-7': body });
  const a = parseManifestLine(line, 'm', 1);
  t.is(a.file, 'a.jpg');
  t.is(a.objects.length, 1);
  t.is(a.categories, undefined);
});

test('parseManifestLine uses the label attribute it is given, even when another comes first', (t) => {
  const line = JSON.stringify({ 'source-ref': 'a.jpg', other: { note: 1 }, boxes: body });
  t.is(parseManifestLine(line, 'm', 1, { labelAttribute: 'boxes' }).width, 640);
  const err = t.throws(() => parseManifestLine(line, 'm', 4), { instanceOf: AnnotationError });
  t.is(err.message, 'm:4: other.image_size: expected an array, got missing');
});

const rejects = test.macro({
  exec(t, line: string, field: string, problem: RegExp) {
    const err = t.throws(() => parseManifestLine(line, 'data/train.manifest', 12), {
      instanceOf: AnnotationError,
    });
    t.is(err.source, 'data/train.manifest:12');
    t.is(err.field, field);
    t.regex(err.message, problem);
  },
  title: (_, __, field: string, problem: RegExp) =>
    `parseManifestLine rejects a bad ${field} (${problem.source}) naming the manifest line and field`,
});

test(rejects, '{"source-ref": "a.jpg",', '(line)', /not valid JSON/);
test(rejects, '[1, 2]', '(root)', /expected an object/);
test(rejects, JSON.stringify({ 'bounding-box': body }), 'source-ref', /missing/);
test(rejects, JSON.stringify({ 'source-ref': 'a.jpg', 'x-metadata': {} }), '(root)', /--label-attribute/);
test(
  rejects,
  JSON.stringify({
    'source-ref': 'a.jpg',
    bb: { ...body, annotations: [{ ...body.annotations[0], width: -1 }] },
  }),
  'bb.annotations[0].width',
  /> 0/,
);
test(
  rejects,
  JSON.stringify({ 'source-ref': 'a.jpg', bb: body, 'bb-metadata': { 'class-map': { first: 'dog' } } }),
  'bb-metadata.class-map.first',
  /class ids/,
);
test(
  rejects,
  JSON.stringify({ 'source-ref': 'a.jpg', bb: body, 'bb-metadata': { 'class-map': { '0': 5 } } }),
  'bb-metadata.class-map.0',
  /non-empty string/,
);

test('parseManifest skips blank lines and names each annotation by its line number', (t) => {
  const text = `${groundTruthLine}\n\n${groundTruthLine.replace('a.jpg', 'b.jpg')}\r\n`;
  const entries = parseManifest(text, 'train.manifest');
  t.deepEqual(
    entries.map((e) => [e.source, e.annotation.file]),
    [
      ['train.manifest:1', 's3://bucket/images/a.jpg'],
      ['train.manifest:3', 's3://bucket/images/b.jpg'],
    ],
  );
});
