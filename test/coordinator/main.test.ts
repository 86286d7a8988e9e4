import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { checkTrainData, clusterProgress } from '../../coordinator/main.js';
import type { StepReportMsg } from '../../coordinator/protocol.js';
import { createCoordinatorStats } from '../../coordinator/stats.js';
import { FakeClock } from '../../shared/clock.js';
import { ConfigError } from '../../shared/errors.js';
import { openRecordIOWriter } from '../../shared/recordio/writer.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { syntheticPayloads, tempDir } from '../helpers/recordio-fixtures.js';
import { testHyperparameters, testJobSpec } from './fixtures.js';

function report(rank: number, step: number, crossEntropy: number): StepReportMsg {
  return {
    workerId: `w${rank}`,
    generation: 7,
    progress: { epoch: 0, position: step * 8, globalStep: step },
    images: 4,
    crossEntropy,
    smoothL1: 1,
    dataSeconds: 0.01,
    computeSeconds: 0.1,
    allreduceSeconds: 0.01,
    updateSeconds: 0.01,
    allreduceBytes: 1000,
    badRecords: 0,
    learningRate: 0.001,
  };
}

/** A 3-step job of a 2-rank ring on a fake clock, its progress printing every update as a plain line. */
function threeStepProgress() {
  const clock = new FakeClock(1_000_000);
  const stats = createCoordinatorStats(clock);
  stats.onGeneration(7, 2);
  const lines: string[] = [];
  const stream = { write: (text: string) => lines.push(text) > 0 } as unknown as NodeJS.WritableStream;
  const bar = clusterProgress(stats, { stream, total: 3, epochs: 1, tty: false, intervalMs: 0, clock });
  return { clock, stats, lines, bar };
}

test('cluster progress ends on the last committed step, not the one before it', (t) => {
  const { clock, stats, lines, bar } = threeStepProgress();
  // The coordinator's order: every rank reports the step, and the last report commits it.
  for (let step = 1; step <= 3; step++) {
    clock.advance(100);
    stats.onStep(report(0, step, 10 - step));
    stats.onStep(report(1, step, 10 - step));
    stats.onCommit({ epoch: 0, position: step * 8, globalStep: step });
  }
  bar.stop();
  const printed = lines.join('').trim().split('\n');
  t.regex(printed.at(-1) ?? '', /^progress epoch 1\/1 step 3\/3 \(100\.0%\) .* loss 8\.000 /);
});

test('cluster progress rates the first step by its own duration, as ssd_cluster_images_per_second does', (t) => {
  const { clock, stats, lines, bar } = threeStepProgress();
  // Both ranks' reports of step 1 arrive together: 8 images over the step's 0.13 s.
  clock.advance(130);
  stats.onStep(report(0, 1, 9));
  stats.onStep(report(1, 1, 9));
  stats.onCommit({ epoch: 0, position: 8, globalStep: 1 });
  bar.stop();
  t.regex(lines[0] ?? '', /^progress epoch 1\/1 step 1\/3 \(33\.3%\) 61\.5 img\/s loss 10\.000 /);
});

test('the train record count is the same with and without the .idx when a length is damaged', async (t) => {
  const dir = await tempDir(t);
  const trainUrl = path.join(dir, 'train.rec');
  const storage = createLocalStorage();
  const writer = await openRecordIOWriter(trainUrl, { storage });
  const offsets: number[] = [];
  for (const [key, payload] of syntheticPayloads(5, 16, 250).entries()) {
    offsets.push(writer.sizeBytes);
    await writer.append(key, payload);
  }
  await writer.close();
  const bytes = await fs.readFile(trainUrl);
  bytes[offsets[3]! + 5] = bytes[offsets[3]! + 5]! ^ 0x04; // the length now runs 1024 bytes on
  t.true(offsets[3]! + 1024 < bytes.length);
  await fs.writeFile(trainUrl, bytes);
  const spec = { ...testJobSpec, trainUrl };
  const hp = (n: number) => ({ ...testHyperparameters, num_training_samples: n });
  t.is(await checkTrainData(spec, hp(16), storage), 16);
  await fs.rm(path.join(dir, 'train.idx'));
  t.is(await checkTrainData(spec, hp(16), storage), 16);
  const err = await t.throwsAsync(checkTrainData(spec, hp(15), storage), { instanceOf: ConfigError });
  t.regex(err!.message, /has 16 records; set num_training_samples to 16 .*corrupt records count too/);
});

test("the coordinator refuses a num_classes that the train set's classes.json disagrees with, naming the file", async (t) => {
  const dir = await tempDir(t);
  const trainUrl = path.join(dir, 'train.rec');
  const storage = createLocalStorage();
  const writer = await openRecordIOWriter(trainUrl, { storage });
  for (const [key, payload] of syntheticPayloads(7, 4, 100).entries()) await writer.append(key, payload);
  await writer.close();
  const spec = { ...testJobSpec, trainUrl };
  const hp = { ...testHyperparameters, num_training_samples: 4 };
  t.is(await checkTrainData(spec, hp, storage), 4, 'no classes.json: nothing to check');
  const classesUrl = path.join(dir, 'classes.json');
  await fs.writeFile(classesUrl, JSON.stringify(['cat', 'dog']));
  t.is(await checkTrainData(spec, hp, storage), 4, 'as many names as num_classes');
  await fs.writeFile(classesUrl, JSON.stringify(['cat', 'dog', 'bird']));
  const err = await t.throwsAsync(checkTrainData(spec, hp, storage), { instanceOf: ConfigError });
  t.is(err?.message, `num_classes: is 2 but ${classesUrl} names 3 classes; set num_classes to 3`);
});
