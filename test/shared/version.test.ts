import { readFileSync } from 'node:fs';
import test from 'ava';
import { describeVersion, SSD_CLUSTER_VERSION, versionMismatch } from '../../shared/version.js';

test("the version is package.json's, and --version names it with node's", (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  t.is(SSD_CLUSTER_VERSION, pkg.version);
  t.is(describeVersion(), `ssd-cluster ${pkg.version} (node ${process.version})`);
});

test('a worker and a coordinator of the same version may work together', (t) => {
  t.is(
    versionMismatch({ worker: 'w-1 on gpu-3', workerVersion: '1.2.0', coordinatorVersion: '1.2.0' }),
    null,
  );
});

test('a version mismatch names the worker and both versions, and one that sends none', (t) => {
  t.is(
    versionMismatch({ worker: 'w-1 on gpu-3', workerVersion: '1.2.0', coordinatorVersion: '1.3.0' }),
    'worker w-1 on gpu-3 runs ssd-cluster 1.2.0 and the coordinator ssd-cluster 1.3.0; run the same version on every host',
  );
  t.regex(
    versionMismatch({ worker: 'on gpu-3', workerVersion: '', coordinatorVersion: '1.3.0' }) ?? '',
    /^worker on gpu-3 runs an ssd-cluster build that does not report its version and the coordinator ssd-cluster 1\.3\.0/,
  );
});
