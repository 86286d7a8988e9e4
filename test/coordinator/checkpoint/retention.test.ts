import test from 'ava';
import {
  type CheckpointInfo,
  checkpointName,
  checkpointsToPrune,
  groupCheckpoints,
} from '../../../coordinator/checkpoint/retention.js';

const DIR = 's3://b/run/';

/** Folders for the given steps; `incomplete` ones have no manifest.json. */
function folders(steps: number[], incomplete: number[] = []): CheckpointInfo[] {
  const urls = steps.flatMap((step) => {
    const base = `${DIR}${checkpointName(step)}/`;
    const files = ['state.json', 'tensors.bin'];
    if (!incomplete.includes(step)) files.push('manifest.json');
    return files.map((f) => base + f);
  });
  return groupCheckpoints(DIR, urls);
}

const names = (list: CheckpointInfo[]) => list.map((c) => c.globalStep);

test('checkpointName pads the step to 12 digits so names sort by step', (t) => {
  t.is(checkpointName(120), 'ckpt-000000000120');
  const steps = [5, 40, 1000, 300, 99999];
  t.deepEqual(steps.map(checkpointName).sort(), [...steps].sort((a, b) => a - b).map(checkpointName));
});

test('groupCheckpoints groups objects by folder, newest first, and marks those with a manifest', (t) => {
  const list = groupCheckpoints(DIR, [
    `${DIR}ckpt-000000000010/manifest.json`,
    `${DIR}ckpt-000000000010/state.json`,
    `${DIR}ckpt-000000000030/tensors.bin`,
    `${DIR}ckpt-000000000020/state.json`,
    `${DIR}ckpt-000000000020/manifest.json`,
    `${DIR}notes.txt`,
    `${DIR}ckpt-latest/manifest.json`,
    `${DIR}ckpt-000000000040/nested/manifest.json`,
    `s3://b/other/ckpt-000000000050/manifest.json`,
  ]);
  t.deepEqual(
    list.map(({ name, globalStep, complete }) => ({ name, globalStep, complete })),
    [
      { name: 'ckpt-000000000030', globalStep: 30, complete: false },
      { name: 'ckpt-000000000020', globalStep: 20, complete: true },
      { name: 'ckpt-000000000010', globalStep: 10, complete: true },
    ],
  );
  t.is(list[1]!.url, `${DIR}ckpt-000000000020`);
  t.deepEqual(list[2]!.objectUrls, [
    `${DIR}ckpt-000000000010/manifest.json`,
    `${DIR}ckpt-000000000010/state.json`,
  ]);
});

test('checkpointsToPrune keeps the newest K complete checkpoints', (t) => {
  const list = folders([10, 20, 30, 40]);
  t.deepEqual(names(checkpointsToPrune(list, 2, checkpointName(40))), [20, 10]);
  t.deepEqual(names(checkpointsToPrune(list, 4, checkpointName(40))), []);
});

test('checkpointsToPrune never deletes the checkpoint just written, even when newer ones exist', (t) => {
  // Resumed from step 20 with --resume-from: 30 and 40 come from the abandoned run.
  const list = folders([10, 20, 25, 30, 40]);
  t.deepEqual(names(checkpointsToPrune(list, 2, checkpointName(25))), [20, 10]);
});

test('checkpointsToPrune deletes incomplete folders older than the one written and leaves newer ones', (t) => {
  const list = folders([10, 20, 30, 40], [10, 40]);
  t.deepEqual(names(checkpointsToPrune(list, 3, checkpointName(30))), [10]);
  t.deepEqual(names(checkpointsToPrune(list, 1, checkpointName(30))), [20, 10]);
});
