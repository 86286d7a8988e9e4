import type { JobSpecMsg } from '../coordinator/protocol.js';
import { toSageMakerHyperparams } from '../shared/config/compile.js';
import type { Hyperparameters } from '../shared/config/hyperparameters.js';
import { hyperparameterOptions, loadHyperparameters } from '../shared/config/load.js';
import { UsageError } from '../shared/errors.js';
import { intFlag, numberFlag } from './args.js';

/**
 * The job's flags, one definition for `train` (one process) and `coordinator`/`local` (the
 * cluster): hyperparameters, channels, model output, seed, bad records, checkpoints, resume and
 * --threads. Each command keeps its own usage text for them.
 */
export const jobOptions = {
  ...hyperparameterOptions,
  train: { type: 'string' },
  validation: { type: 'string' },
  'train-annotation': { type: 'string' },
  'validation-annotation': { type: 'string' },
  'model-dir': { type: 'string' },
  'model-archive': { type: 'boolean' },
  'pretrained-base': { type: 'string' },
  seed: { type: 'string' },
  'on-bad-record': { type: 'string' },
  'checkpoint-dir': { type: 'string' },
  'checkpoint-frequency': { type: 'string' },
  'keep-checkpoints': { type: 'string' },
  resume: { type: 'boolean' },
  'resume-from': { type: 'string' },
  threads: { type: 'string' },
} as const;

/** Options shared by `coordinator` and `local`: the job, the cluster size and the coordinator's ports. */
export const clusterOptions = {
  ...jobOptions,
  workers: { type: 'string' },
  'min-workers': { type: 'string' },
  'max-workers': { type: 'string' },
  port: { type: 'string' },
  'metrics-port': { type: 'string' },
  'cluster-token': { type: 'string' },
  'heartbeat-timeout': { type: 'string' },
  'stall-timeout': { type: 'string' },
  'gradient-compression': { type: 'string' },
} as const;

/** --on-bad-record: skip (the default) or fail. */
export function parseOnBadRecord(value: string | undefined): 'skip' | 'fail' {
  if (value === undefined || value === 'skip' || value === 'fail') return value ?? 'skip';
  throw new UsageError(`--on-bad-record: expected skip or fail, got '${value}'`);
}

/** The one --threads parser: XNNPACK threads of one process on wasm (the pool holds at most 8). */
export function parseThreadsFlag(value: string | undefined): number | undefined {
  return intFlag('threads', value, { min: 1, max: 8 });
}

export const CLUSTER_OPTIONS_HELP = `Job:
  --train SOURCE                 training channel: .rec (path or s3://) or an image folder
  --validation SOURCE            validation channel (VOC07 mAP after each epoch, gathered from all workers)
  --train-annotation DIR, --validation-annotation DIR   JSON annotations of image-folder channels
  --model-dir DEST               where the final model is written once (path or s3://)
  --model-archive                also write DEST/model.tar.gz
  --pretrained-base URL          tfjs weights manifest of the base network (use_pretrained_model=1)
  --seed S                       data order, augmentation and initialisation seed (default 0)
  --on-bad-record skip|fail      corrupt records: skip with a warning and count (default) or stop
  --gradient-compression none|fp16   all-reduce payload (default none)
Checkpoints:
  --checkpoint-dir URL           write checkpoints here (path or s3://); rank 0 writes them from a snapshot
  --checkpoint-frequency N       every N steps, and at each epoch end (default 0: epoch ends only)
  --keep-checkpoints K           keep the newest K (default 3)
  --resume                       continue from the newest valid checkpoint in --checkpoint-dir
                                 (corrupt or partial ones are skipped with a warning)
  --resume-from URL              continue from this checkpoint
Cluster:
  --workers N                    form the ring when N workers have joined (default 1)
  --min-workers N, --max-workers N   keep training while at least min remain; admit up to max
  --port P                       coordinator gRPC port (default 7070)
  --metrics-port P               coordinator Prometheus port (default 9090)
  --cluster-token T              shared secret workers must present (default: none)
  --heartbeat-timeout S          seconds without a heartbeat before a worker is lost (default 10)
  --stall-timeout S              report a stall (logs, ssd_cluster_stalls_total) naming the ranks behind
                                 when no step completes for this long (default 300)
  --threads N                    XNNPACK threads of each worker on wasm (default 1: one thread per worker
                                 process, like torchrun's OMP_NUM_THREADS=1, so N workers use N cores;
                                 a worker's own --threads wins)`;

export interface ClusterSettings {
  hp: Readonly<Hyperparameters>;
  spec: JobSpecMsg;
  workers: number;
  minWorkers: number;
  maxWorkers: number;
  port: number;
  metricsPort: number;
  clusterToken: string;
  heartbeatTimeoutMs: number;
  stallTimeoutMs: number;
  /** What to resume from, resolved by the coordinator at start. */
  resume: { newest: boolean; from: string | undefined };
}

function resumeChoice(values: Values): ClusterSettings['resume'] {
  if (values.resume && values['resume-from'])
    throw new UsageError('--resume and --resume-from: give one of them');
  if (values.resume && !values['checkpoint-dir']) {
    throw new UsageError('--resume: needs --checkpoint-dir to look for checkpoints in');
  }
  return { newest: values.resume === true, from: values['resume-from'] };
}

type Values = {
  [K in keyof typeof clusterOptions]?: (typeof clusterOptions)[K]['type'] extends 'boolean'
    ? boolean
    : string;
};

/** Validates the shared options once; `defaults` are hyperparameter defaults below file and flags. */
export async function compileClusterSettings(
  values: Values,
  defaults: Record<string, unknown> = {},
): Promise<ClusterSettings> {
  const hp = await loadHyperparameters(values as Record<string, unknown>, { defaults });
  if (!values.train) throw new UsageError('--train SOURCE is required');
  if (!values['model-dir']) throw new UsageError('--model-dir DEST is required');
  const workers = intFlag('workers', values.workers, { min: 1, max: 1024 }) ?? 1;
  const minWorkers = intFlag('min-workers', values['min-workers'], { min: 1, max: workers }) ?? workers;
  const maxWorkers = intFlag('max-workers', values['max-workers'], { min: workers, max: 1024 }) ?? workers;
  const compression = values['gradient-compression'] ?? 'none';
  if (compression !== 'none' && compression !== 'fp16') {
    throw new UsageError(`--gradient-compression: expected none or fp16, got '${compression}'`);
  }
  const onBadRecord = parseOnBadRecord(values['on-bad-record']);
  const heartbeatTimeoutS = numberFlag('heartbeat-timeout', values['heartbeat-timeout']) ?? 10;
  if (heartbeatTimeoutS <= 0) throw new UsageError('--heartbeat-timeout: must be > 0 seconds');
  const stallTimeoutS = numberFlag('stall-timeout', values['stall-timeout']) ?? 300;
  if (stallTimeoutS <= 0) throw new UsageError('--stall-timeout: must be > 0 seconds');
  return {
    hp,
    spec: {
      hyperparameters: toSageMakerHyperparams(hp),
      trainUrl: values.train,
      validationUrl: values.validation ?? '',
      trainAnnotationUrl: values['train-annotation'] ?? '',
      validationAnnotationUrl: values['validation-annotation'] ?? '',
      modelDir: values['model-dir'],
      seed: intFlag('seed', values.seed, { min: 0, max: 2 ** 32 - 1 }) ?? 0,
      pretrainedBase: values['pretrained-base'] ?? '',
      s3Endpoint: '',
      onBadRecord,
      gradientCompression: compression,
      modelArchive: values['model-archive'] === true,
      checkpointDir: values['checkpoint-dir'] ?? '',
      checkpointFrequency: intFlag('checkpoint-frequency', values['checkpoint-frequency'], { min: 0 }) ?? 0,
      keepCheckpoints: intFlag('keep-checkpoints', values['keep-checkpoints'], { min: 1 }) ?? 3,
      resumeFrom: '',
      threads: parseThreadsFlag(values.threads) ?? 0,
    },
    resume: resumeChoice(values),
    workers,
    minWorkers,
    maxWorkers,
    port: intFlag('port', values.port, { min: 0, max: 65535 }) ?? 7070,
    metricsPort: intFlag('metrics-port', values['metrics-port'], { min: 0, max: 65535 }) ?? 9090,
    clusterToken: values['cluster-token'] ?? '',
    heartbeatTimeoutMs: heartbeatTimeoutS * 1000,
    stallTimeoutMs: stallTimeoutS * 1000,
  };
}
