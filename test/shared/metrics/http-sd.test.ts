import test from 'ava';
import { META_PREFIX, WORKER_JOB, workerTargetGroups } from '../../../shared/metrics/http-sd.js';

test('workerTargetGroups lists ring members with their rank, then candidates, as HTTP SD target groups', (t) => {
  const groups = workerTargetGroups({
    generation: 3,
    members: [
      { workerId: 'w-a', metricsAddress: '10.0.0.1:9101' },
      { workerId: 'w-b', metricsAddress: '10.0.0.2:9101' },
    ],
    candidates: [{ workerId: 'w-c', metricsAddress: '10.0.0.3:9101' }],
  });
  t.deepEqual(
    groups.map((g) => g.targets),
    [['10.0.0.1:9101'], ['10.0.0.2:9101'], ['10.0.0.3:9101']],
  );
  t.deepEqual(groups[1]!.labels, {
    job: WORKER_JOB,
    [`${META_PREFIX}worker_id`]: 'w-b',
    [`${META_PREFIX}state`]: 'member',
    [`${META_PREFIX}generation`]: '3',
    [`${META_PREFIX}rank`]: '1',
  });
  t.is(groups[2]!.labels[`${META_PREFIX}state`], 'candidate');
  t.false(`${META_PREFIX}rank` in groups[2]!.labels, 'a candidate has no rank yet');
});

test('workerTargetGroups leaves out workers without a metrics endpoint and keeps every label a string', (t) => {
  const groups = workerTargetGroups(
    {
      generation: 1,
      members: [
        { workerId: 'w-a', metricsAddress: '' },
        { workerId: 'w-b', metricsAddress: 'h:1' },
      ],
    },
    'custom-job',
  );
  t.is(groups.length, 1);
  t.is(groups[0]!.labels[`${META_PREFIX}rank`], '1', 'the rank is the ring position, not the list position');
  t.is(groups[0]!.labels.job, 'custom-job');
  for (const value of Object.values(groups[0]!.labels)) t.is(typeof value, 'string');
});
