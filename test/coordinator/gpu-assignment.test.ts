import test from 'ava';
import { workerGpus } from '../../coordinator/gpu-assignment.js';
import { ConfigError } from '../../shared/errors.js';

test('worker i gets GPU i with tensorflow-gpu, and with auto when tfjs-node-gpu is installed', (t) => {
  t.deepEqual(workerGpus({ backend: 'tensorflow-gpu', gpuPackageInstalled: false }, 3), [0, 1, 2]);
  t.deepEqual(workerGpus({ backend: 'auto', gpuPackageInstalled: true }, 3), [0, 1, 2]);
});

test('no GPU is pinned when the workers will not load tensorflow-gpu', (t) => {
  t.deepEqual(workerGpus({ backend: 'auto', gpuPackageInstalled: false }, 2), [undefined, undefined]);
  for (const backend of ['tensorflow', 'wasm', 'cpu'] as const)
    t.deepEqual(workerGpus({ backend, gpuPackageInstalled: true }, 2), [undefined, undefined], backend);
});

test("worker i gets the i-th GPU of the launcher's CUDA_VISIBLE_DEVICES, round robin past the end", (t) => {
  const host = { backend: 'tensorflow-gpu', gpuPackageInstalled: true } as const;
  t.deepEqual(workerGpus({ ...host, visibleDevices: '2, 3' }, 3), [2, 3, 2]);
  t.deepEqual(workerGpus({ ...host, visibleDevices: '' }, 3), [0, 1, 2], 'empty: every GPU');
});

test('GPU UUIDs in CUDA_VISIBLE_DEVICES are refused, naming the variable', (t) => {
  const host = { backend: 'auto', gpuPackageInstalled: true, visibleDevices: 'GPU-8f2a,GPU-19c0' } as const;
  const err = t.throws(() => workerGpus(host, 2), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /CUDA_VISIBLE_DEVICES=GPU-8f2a,GPU-19c0: .*by index/);
  t.deepEqual(
    workerGpus({ ...host, gpuPackageInstalled: false }, 2),
    [undefined, undefined],
    'no GPU: no check',
  );
});
