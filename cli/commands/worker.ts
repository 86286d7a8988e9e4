import { UsageError } from '../../shared/errors.js';
import { parseBackendName } from '../../worker/backend/backend.js';
import { DEFAULT_DECODE_CACHE_MB } from '../../worker/data/decoded-image-cache.js';
import { runWorker } from '../../worker/main.js';
import { intFlag, numberFlag, parseCommandArgs } from '../args.js';
import { parseThreadsFlag } from '../cluster-options.js';
import { type CliCommand, writeJsonLine } from '../command.js';
import { parseDecodeCacheFlag } from '../decode-cache-flag.js';

const usage = `Usage: ssd-cluster worker --coordinator HOST:PORT [--backend NAME] [--advertise HOST] [--gpu INDEX]
                           [--threads N] [--cluster-token T] [--coordinator-timeout S] [--worker-id ID]
                           [--decode-cache-mb MB]

Runs one worker: joins the coordinator, takes the job from it (hyperparameters, data, seed), reads its
share of every global batch, computes SSD gradients and sums them with its ring neighbours by ring
all-reduce over gRPC. Exits 0 when the job is finished.

Options:
  --coordinator HOST:PORT   the coordinator's gRPC address (required)
  --backend NAME            auto (default), tensorflow-gpu, tensorflow, wasm or cpu
  --threads N               XNNPACK threads on wasm (default: the job's --threads, else 1: one thread
                            per worker process, like torchrun's OMP_NUM_THREADS=1)
  --advertise HOST          address peers and Prometheus use to reach this worker
                            (default: the address the coordinator sees it come from)
  --gpu INDEX               pin this worker to one GPU (sets CUDA_VISIBLE_DEVICES before the backend loads)
  --cluster-token T         the coordinator's --cluster-token
  --coordinator-timeout S   give up after the coordinator has been unreachable this long (default 60)
  --worker-id ID            a stable id (a restarted worker with the same id replaces its old entry)
  --decode-cache-mb MB      memory for decoded images kept between epochs (default ${DEFAULT_DECODE_CACHE_MB};
                            0 turns it off). Only images up to 256 x 256, which are decoded whole
                            and resampled in JS, are kept: the 128-px synthetic sets fit whole
  --metrics-port P          Prometheus /metrics of this worker (default: an ephemeral port, announced to
                            the coordinator, which lists it at its /sd endpoint)
  --timeline FILE           write a Chrome trace (chrome://tracing, Perfetto) of this worker's step phases
                            and all-reduce calls at exit
  --log-level LEVEL         debug, info, warn, error or silent (default info)

SageMaker metric lines go to stderr; a final JSON line {"workerId", "generations", "wroteModel"} to stdout.
`;

/**
 * `--coordinator HOST:PORT` as gRPC dials it: a host name, IPv4 address or [IPv6] address, and a port
 * in 1-65535. A URL (`http://host:7070`) or a bad port would otherwise only show as Join retries
 * ('Name resolution failed', 'ERR_SOCKET_BAD_PORT') until --coordinator-timeout.
 */
export function parseCoordinatorAddress(value: string | undefined): string {
  const example = 'like 10.0.0.5:7070 or [::1]:7070';
  if (!value) throw new UsageError(`--coordinator HOST:PORT is required (${example})`);
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d+)$/.exec(value);
  if (!match)
    throw new UsageError(`--coordinator: expected HOST:PORT (${example}, no scheme), got '${value}'`);
  const port = Number(match[2]);
  if (port < 1 || port > 65535)
    throw new UsageError(`--coordinator: port ${match[2]} is not in 1-65535, got '${value}'`);
  return value;
}

export const command: CliCommand = {
  name: 'worker',
  summary: 'run one worker',
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('worker', argv, {
      coordinator: { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      advertise: { type: 'string' },
      gpu: { type: 'string' },
      'cluster-token': { type: 'string' },
      'coordinator-timeout': { type: 'string' },
      'worker-id': { type: 'string' },
      'metrics-port': { type: 'string' },
      timeline: { type: 'string' },
      'decode-cache-mb': { type: 'string' },
    });
    const coordinator = parseCoordinatorAddress(values.coordinator);
    const decodeCacheBytes = parseDecodeCacheFlag(values['decode-cache-mb']);
    const timeoutS = numberFlag('coordinator-timeout', values['coordinator-timeout']) ?? 60;
    if (timeoutS <= 0) throw new UsageError('--coordinator-timeout: must be > 0 seconds');
    const result = await runWorker({
      coordinator,
      backend: parseBackendName(values.backend ?? 'auto'),
      threads: parseThreadsFlag(values.threads),
      advertise: values.advertise,
      gpu: intFlag('gpu', values.gpu, { min: 0, max: 64 }),
      clusterToken: values['cluster-token'] ?? '',
      coordinatorTimeoutMs: timeoutS * 1000,
      workerId: values['worker-id'],
      metricsPort: intFlag('metrics-port', values['metrics-port'], { min: 0, max: 65535 }),
      timeline: values.timeline,
      decodeCacheBytes,
      logger: ctx.logger,
      env: ctx.env,
      metrics: (line) => ctx.stderr.write(`${line}\n`),
      signal: ctx.signal,
    });
    writeJsonLine(ctx.stdout, result);
    return 0;
  },
};
