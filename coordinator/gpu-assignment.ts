/**
 * Which GPU each worker process of `ssd-cluster local` gets. A tfjs-node-gpu process uses one GPU, so
 * on a GPU host worker i is pinned to GPU i (worker --gpu, which sets CUDA_VISIBLE_DEVICES before the
 * backend loads). A GPU host is one where the workers will load tensorflow-gpu: named with --backend,
 * or picked by --backend auto because @tensorflow/tfjs-node-gpu is installed (auto tries it first).
 * When the launcher's CUDA_VISIBLE_DEVICES already lists GPU indices (2,3), worker i gets the i-th of
 * them, round robin. Pure: the caller says whether the package is installed and passes the variable.
 */
import { ConfigError } from '../shared/errors.js';
import type { BackendName } from '../worker/backend/backend.js';

export interface GpuHost {
  backend: BackendName;
  /** Whether @tensorflow/tfjs-node-gpu can be imported here. */
  gpuPackageInstalled: boolean;
  /** The launcher's CUDA_VISIBLE_DEVICES, if any. */
  visibleDevices?: string | undefined;
}

/** The --gpu index of each of `count` workers; undefined entries when the workers will not use tensorflow-gpu. */
export function workerGpus(host: GpuHost, count: number): (number | undefined)[] {
  const usesGpu = host.backend === 'tensorflow-gpu' || (host.backend === 'auto' && host.gpuPackageInstalled);
  if (!usesGpu) return Array.from({ length: count }, () => undefined);
  const visible = (host.visibleDevices ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  if (visible.length === 0) return Array.from({ length: count }, (_, i) => i);
  const indices = visible.map((d) => (/^\d+$/.test(d) ? Number(d) : Number.NaN));
  if (indices.some(Number.isNaN)) {
    // worker --gpu sets CUDA_VISIBLE_DEVICES to an index, which would undo a list of UUIDs.
    throw new ConfigError([
      `CUDA_VISIBLE_DEVICES=${host.visibleDevices}: local pins worker i to one GPU by index; list GPU indices (e.g. 0,1), not UUIDs`,
    ]);
  }
  return Array.from({ length: count }, (_, i) => indices[i % indices.length]);
}
