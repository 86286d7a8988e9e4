import test from 'ava';
import { RecordIOError } from '../../../shared/errors.js';
import {
  detectionLabelProblem,
  encodeDetectionLabel,
  expectDetectionLabel,
  parseDetectionLabel,
} from '../../../shared/recordio/detection-label.js';
import { dogListLabels } from '../../helpers/recordio-fixtures.js';

test('parseDetectionLabel reads the GluonCV layout of the dog label (A=4, B=5, header = width, height)', async (t) => {
  const [labels] = await dogListLabels();
  const label = parseDetectionLabel(labels!)!;
  t.is(label.headerWidth, 4);
  t.is(label.objectWidth, 5);
  t.deepEqual(label.header, [768, 576]);
  t.deepEqual(
    label.objects.map((o) => o.class),
    [0, 1, 2],
  );
  t.deepEqual(label.objects[2], {
    class: 2,
    xmin: Math.fround(0.625),
    ymin: labels![16],
    xmax: labels![17],
    ymax: labels![18],
    extra: [],
  });
  t.false('difficult' in label.objects[0]!);
});

test('parseDetectionLabel reads difficult from field 5 when B = 6 and keeps further fields as extra', (t) => {
  const label = parseDetectionLabel([2, 7, 3, 0.1, 0.2, 0.3, 0.4, 1, 42, 4, 0.5, 0.5, 0.6, 0.6, 0, 43])!;
  t.deepEqual(label.objects, [
    { class: 3, xmin: 0.1, ymin: 0.2, xmax: 0.3, ymax: 0.4, difficult: true, extra: [1, 42] },
    { class: 4, xmin: 0.5, ymin: 0.5, xmax: 0.6, ymax: 0.6, difficult: false, extra: [0, 43] },
  ]);
});

test('parseDetectionLabel stops at padding rows of class -1 and accepts a label with no objects', (t) => {
  const padded = [2, 5, 1, 0.1, 0.1, 0.2, 0.2, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1];
  t.deepEqual(
    parseDetectionLabel(padded)!.objects.map((o) => o.class),
    [1],
  );
  t.deepEqual(parseDetectionLabel([2, 6])!.objects, []);
});

test('detectionLabelProblem says why a label is not a detection label, and parse returns null', (t) => {
  const cases: [number[] | null, string][] = [
    [null, 'the record has a scalar label (IRHeader flag 0), not a label array'],
    [[3], 'a detection label needs at least 2 floats [A, B], got 1'],
    [[1, 5, 0, 0, 0, 1, 1], 'header width A = 1 must be an integer >= 2'],
    [[2.5, 5, 0, 0, 0, 1, 1], 'header width A = 2.5 must be an integer >= 2'],
    [[2, 4, 0, 0, 0, 1], 'object width B = 4 must be an integer >= 5'],
    [[9, 5, 0, 0, 0, 1, 1], 'header width A = 9 exceeds the label length 7'],
    [[2, 5, 0, 0, 0, 1, 1, 2], 'label length 8 minus header width 2 is not a multiple of object width 5'],
    [[2, 5, -1, -1, -1, -1, -1, 0, 0, 0, 1, 1], 'object 1 (class 0) follows a padding row (class -1)'],
    [[2, 5, 1.5, 0, 0, 1, 1], 'object 0 has class 1.5, not an integer >= 0'],
    [[2, 5, 1, 0, Number.NaN, 1, 1], 'object 0 field 2 is NaN'],
  ];
  for (const [labels, problem] of cases) {
    t.is(detectionLabelProblem(labels), problem);
    t.is(parseDetectionLabel(labels), null);
  }
});

test('expectDetectionLabel throws an unparsable-label error naming the file and record offset', (t) => {
  const err = t.throws(() => expectDetectionLabel([2, 4], { source: 'train.rec', offset: 4096 }), {
    instanceOf: RecordIOError,
  });
  t.is(
    err.message,
    'train.rec at byte 4096: unparsable detection label: object width B = 4 must be an integer >= 5',
  );
});

test('encodeDetectionLabel writes [A, B, header, objects] that parse back, with and without difficult', (t) => {
  const objects = [
    { class: 0, xmin: 0.125, ymin: 0.25, xmax: 0.5, ymax: 0.75 },
    { class: 3, xmin: 0, ymin: 0, xmax: 1, ymax: 1, difficult: true },
  ];
  const six = encodeDetectionLabel(objects, { objectWidth: 6 });
  t.deepEqual(Array.from(six), [2, 6, 0, 0.125, 0.25, 0.5, 0.75, 0, 3, 0, 0, 1, 1, 1]);
  t.deepEqual(
    parseDetectionLabel(six)!.objects.map((o) => o.difficult),
    [false, true],
  );
  const five = encodeDetectionLabel([objects[0]!], { header: [640, 480] });
  t.deepEqual(Array.from(five), [4, 5, 640, 480, 0, 0.125, 0.25, 0.5, 0.75]);
  t.throws(() => encodeDetectionLabel(objects), {
    message: /object 1 is difficult but objectWidth 5 has no field for it/,
  });
  t.throws(() => encodeDetectionLabel([{ ...objects[0]!, class: -1 }]), {
    message: /object 0 class -1 must be an integer >= 0/,
  });
});
