import test from 'ava';
import { createMemoryLogger } from '../../../shared/logging.js';
import { createBadRecordLog, reasonKind } from '../../../worker/data/bad-record-log.js';

const bad = (index: number, reason: string) => ({ index, source: `train.rec@${index * 1000}`, reason });

test('reasonKind replaces the numbers of a reason, so records with the same problem group together', (t) => {
  t.is(
    reasonKind('object 0 has class 3, but num_classes is 1 (classes 0..0)'),
    'object # has class #, but num_classes is # (classes #..#)',
  );
  t.is(reasonKind('object 2 has xmin NaN'), 'object # has xmin NaN');
  t.is(reasonKind('width -1.5e3 is not > 0'), 'width # is not > #');
});

test('the first bad records of an epoch are warned one by one, the rest counted and summed up by kind at its end', (t) => {
  const logger = createMemoryLogger();
  const log = createBadRecordLog(logger, 3);
  const trained = [];
  for (let i = 0; i < 5; i++) {
    const b = bad(i, `object 0 has class ${i + 2}, but num_classes is 2 (classes 0..1)`);
    log.skipped(b);
    trained.push(b);
  }
  trained.push(bad(9, 'object 1 has ymin NaN'));
  log.skipped(trained[5]!);
  log.skipped(bad(30, 'object 0 has class 7, but num_classes is 2 (classes 0..1)')); // loaded ahead, not trained
  log.endEpoch(0, 24, trained);
  const lines = logger.entries.map((e) => e.msg);
  t.deepEqual(lines, [
    'skipped a bad record',
    'skipped a bad record',
    'skipped a bad record',
    'more bad records this epoch: only counted until it ends (first 3 shown)',
    'skipped 6 of 24 records in epoch 0',
  ]);
  t.is(logger.entries[0]!.fields.source, 'train.rec@0');
  t.deepEqual(logger.entries[4]!.fields.byKind, [
    { kind: 'object # has class #, but num_classes is # (classes #..#)', records: 5 },
    { kind: 'object # has ymin NaN', records: 1 },
  ]);
  log.endEpoch(1, 24, []);
  log.skipped(bad(1, 'object 0 has class 9, but num_classes is 2 (classes 0..1)'));
  t.is(logger.entries.length, 6, 'a clean epoch adds no summary, and the next epoch warns again');
  t.is(logger.entries[5]!.msg, 'skipped a bad record');
});
