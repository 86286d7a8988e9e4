import test from 'ava';
import { parseDetectionsJson, parseGroundTruthJson } from '../../../shared/eval/map-input.js';
import { computeVocMap } from '../../../shared/eval/voc-map.js';
import {
  detectionsJson,
  folderImageName,
  groundTruthJson,
  recordImageNames,
} from '../../../worker/inference/map-files.js';
import { mapFromRows } from '../../../worker/train/validation.js';

test('recordImageNames pads the index so names sort as the indices do', (t) => {
  const name = recordImageNames('s3://b/val.rec', 120);
  t.is(name(7), 's3://b/val.rec#007');
  t.is(name(119), 's3://b/val.rec#119');
  const names = [2, 10, 100, 7].map(name);
  t.deepEqual([...names].sort(), [2, 7, 10, 100].map(name));
  t.is(recordImageNames('v.rec', 1)(0), 'v.rec#0');
});

test('folderImageName is the path below the folder, with or without its trailing slash', (t) => {
  t.is(folderImageName('s3://b/images', 's3://b/images/sub/cat.jpg'), 'sub/cat.jpg');
  t.is(folderImageName('/data/images/', '/data/images/dog.png'), 'dog.png');
  t.is(folderImageName('/data/images', '/elsewhere/dog.png'), '/elsewhere/dog.png');
});

test('the files read back as the rows: float32 values exact, difficult as a boolean', (t) => {
  const name = recordImageNames('v.rec', 4);
  const gt = Float32Array.from([3, 1, 10.1, 20.2, 30.3, 40.4, 1]);
  const det = Float32Array.from([3, 1, 0.123456789, 10.1, 20.2, 30.3, 40.4]);
  const [truth] = parseGroundTruthJson(groundTruthJson(gt, name), 'gt.json');
  t.deepEqual(truth, { imageId: 'v.rec#3', classId: 1, box: Array.from(gt.subarray(2, 6)), difficult: true });
  const [detection] = parseDetectionsJson(detectionsJson(det, name), 'det.json');
  t.deepEqual(detection, {
    imageId: 'v.rec#3',
    classId: 1,
    score: det[2]!,
    box: Array.from(det.subarray(3)),
  });
  t.deepEqual(JSON.parse(groundTruthJson(new Float32Array(0), name)), []);
});

test('map on the files scores a score tie across images as the rows do (image 2 before image 10)', (t) => {
  // Class 0 has one box, in image 2. Equal scores: image 2's hit, then image 10's miss (AP 1); the
  // other order (unpadded names sort 'v.rec#10' first) gives precision 1/2 at recall 1 (AP 0.5).
  const rows = {
    groundTruth: Float32Array.from([2, 0, 10, 10, 50, 50, 0]),
    detections: Float32Array.from([2, 0, 0.5, 10, 10, 50, 50, 10, 0, 0.5, 10, 10, 50, 50]),
  };
  const fromRows = mapFromRows([rows], { iouThreshold: 0.5 });
  t.is(fromRows.map, 1);
  const name = recordImageNames('v.rec', 12);
  const truth = parseGroundTruthJson(groundTruthJson(rows.groundTruth, name), 'gt.json');
  const detections = parseDetectionsJson(detectionsJson(rows.detections, name), 'det.json');
  t.is(computeVocMap(truth, detections, { iouThreshold: 0.5, pixelOffset: 1 }).map, fromRows.map);
  const unpadded = (i: number) => `v.rec#${i}`;
  const misordered = computeVocMap(
    parseGroundTruthJson(groundTruthJson(rows.groundTruth, unpadded), 'gt.json'),
    parseDetectionsJson(detectionsJson(rows.detections, unpadded), 'det.json'),
    { iouThreshold: 0.5 },
  );
  t.is(misordered.map, 0.5, 'the tie this padding is for');
});
