import test from 'ava';
import {
  addStepLosses,
  EMPTY_EPOCH_LOSSES,
  meanLosses,
  progressLine,
  throughputLine,
  trainingHost,
  trainLossLines,
  validationMapLine,
} from '../../../worker/train/sagemaker-log.js';

// The metric definitions of SageMaker's object-detection console (SPEC part 1, section 1.3).
const REGEX = {
  progress: /#progress_metric: host=\S+, completed (\S+) %/,
  smoothL1: /#quality_metric: host=\S+, epoch=\S+, batch=\S+ train smooth_l1 <loss>=(\S+)/,
  crossEntropy: /#quality_metric: host=\S+, epoch=\S+, batch=\S+ train cross_entropy <loss>=(\S+)/,
  throughput: /#throughput_metric: host=\S+, train throughput=(\S+) records\/second/,
  map: /#quality_metric: host=\S+, epoch=\S+, validation mAP <score>=\((\S+)\)/,
};

const captured = (regex: RegExp, line: string) => Number(regex.exec(line)?.[1]);

test('train loss lines match the console regexes and capture the numbers', (t) => {
  const [ce, l1] = trainLossLines('algo-1', 3, 62, { crossEntropy: 1.2106234073638915, smoothL1: 0.25 });
  t.is(ce, '#quality_metric: host=algo-1, epoch=3, batch=62 train cross_entropy <loss>=1.2106234073638915');
  t.is(captured(REGEX.crossEntropy, ce!), 1.2106234073638915);
  t.is(captured(REGEX.smoothL1, l1!), 0.25);
  t.false(REGEX.smoothL1.test(ce!));
});

test('the validation mAP line wraps the score in parentheses, as the console regex expects', (t) => {
  const line = validationMapLine('algo-1', 4, 0.734);
  t.is(line, '#quality_metric: host=algo-1, epoch=4, validation mAP <score>=(0.734)');
  t.is(captured(REGEX.map, line), 0.734);
});

test('throughput and progress lines match the console regexes', (t) => {
  t.is(captured(REGEX.throughput, throughputLine('h', 61.5)), 61.5);
  t.is(progressLine('h', 1, 3), '#progress_metric: host=h, completed 33.33 % of epochs');
  t.is(captured(REGEX.progress, progressLine('h', 3, 3)), 100);
});

test('trainingHost prefers SM_CURRENT_HOST, then the hostname, then algo-1, without spaces', (t) => {
  t.is(trainingHost({ SM_CURRENT_HOST: 'algo-2' }, 'box'), 'algo-2');
  t.is(trainingHost({}, 'my box'), 'my_box');
  t.is(trainingHost({}, ''), 'algo-1');
});

test('epoch losses are running means over the steps so far', (t) => {
  t.deepEqual(meanLosses(EMPTY_EPOCH_LOSSES), { crossEntropy: 0, smoothL1: 0 });
  const acc = addStepLosses(addStepLosses(EMPTY_EPOCH_LOSSES, 4, 1), 2, 3);
  t.deepEqual(meanLosses(acc), { crossEntropy: 3, smoothL1: 2 });
});
