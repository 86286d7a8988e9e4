import { UsageError } from '../../shared/errors.js';
import { AP_METRICS, type ApMetric } from '../../shared/eval/average-precision.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import type { Storage } from '../../shared/storage/storage.js';
import { dirnameUrl } from '../../shared/storage/url.js';
import { checkWritableDir } from '../../shared/storage/writable-dir.js';
import { parseBackendName } from '../../worker/backend/backend.js';
import {
  type EvaluateOptions,
  type Evaluation,
  evaluateModel,
} from '../../worker/inference/evaluate-model.js';
import { detectionsJson, groundTruthJson } from '../../worker/inference/map-files.js';
import { validationMapOf } from '../../worker/train/validation.js';
import { intFlag, numberFlag, parseCommandArgs, requireFlag } from '../args.js';
import { parseOnBadRecord, parseThreadsFlag } from '../cluster-options.js';
import { type CliCommand, writeJsonLine } from '../command.js';

const usage = `Usage: ssd-cluster evaluate --model MODEL --data SOURCE [--annotation DIR] [--metric voc07|area]
                             [--iou X] [--batch-size N] [--backend NAME] [options]

Computes the VOC mAP of a trained model on a data set, exactly as training's validation does (the
validation:mAP of 'train --validation'): the validation transform, the model's nms_threshold and
nms_topk, and the VOC07 11-point mAP in pixel coordinates at the model's overlap_threshold. Prints one
JSON line on stdout:
  {"mAP", "ap": {"<class>": x, ...}, "images", "skipped", "seconds", "imagesPerSecond", "metric", "iou"}
ap is keyed by the names in the model's classes.json (else the class id) and lists the classes with
non-difficult ground truth; mAP is null when there is none (train reports no mAP then either). seconds and imagesPerSecond cover the
detection pass (reading, decoding, network, NMS), not loading the model.

  --model MODEL              the trained model (required): the directory 'ssd-cluster train --model-dir'
                             wrote, its model.json, or a model.tar.gz; a path or s3:// URL
  --data SOURCE              the data set (required), as 'train --validation' takes it: a .rec file (a path
                             or s3://; its .idx beside it) or a folder of JPEG/PNG images with one SageMaker
                             JSON annotation per image; a classes.json beside it must name num_classes classes
  --annotation DIR           folder of the .json annotations of an image folder (default: beside the images)
  --metric voc07|area        voc07 (default, as training reports): 11-point AP; area: all-point AP (VOC2010+)
  --iou X                    a detection matches at IoU >= X (default: the model's overlap_threshold)
  --batch-size N             images per forward pass (default: the model's mini_batch_size, as validation)
  --backend NAME             auto (default), tensorflow-gpu, tensorflow, wasm or cpu
  --threads N                XNNPACK threads on wasm (default 1)
  --on-bad-record skip|fail  corrupt records: skip with a warning naming file@offset and count them in
                             "skipped" (default), or stop with exit code 1
  --ground-truth-out FILE    also write the ground truth as 'ssd-cluster map --ground-truth' reads it
  --detections-out FILE      also write the detections as 'ssd-cluster map --detections' reads them
                             (pixel boxes, for map's default --pixel-offset 1; an image is named
                             SOURCE#INDEX for a .rec, the index zero-padded, or by its path below the
                             folder; map on the two files prints the same mAP); paths or s3:// URLs
  --s3-endpoint URL          S3-compatible endpoint for s3:// URLs
  --log-level LEVEL          debug, info, warn, error or silent (default info)

Exit codes: 0 done, 1 the model, the data or a record could not be used, 2 a bad flag (or data whose
classes.json does not fit the model).
`;

const options = {
  model: { type: 'string' },
  data: { type: 'string' },
  annotation: { type: 'string' },
  metric: { type: 'string' },
  iou: { type: 'string' },
  'batch-size': { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'on-bad-record': { type: 'string' },
  'ground-truth-out': { type: 'string' },
  'detections-out': { type: 'string' },
} as const;

type Flags = Partial<Record<keyof typeof options, string>>;

interface EvaluateSettings
  extends Omit<EvaluateOptions, 'storage' | 'logger' | 'signal'>,
    Record<'groundTruthOut' | 'detectionsOut', string | undefined> {}

function parseMetric(value: string | undefined): ApMetric {
  const metric = value ?? 'voc07';
  if (!AP_METRICS.includes(metric as ApMetric))
    throw new UsageError(`--metric: expected one of ${AP_METRICS.join(', ')}, got '${metric}'`);
  return metric as ApMetric;
}

function parseIou(value: string | undefined): number | undefined {
  const iou = numberFlag('iou', value);
  if (iou !== undefined && !(iou > 0 && iou <= 1))
    throw new UsageError(`--iou: expected a number in (0, 1], got '${value}'`);
  return iou;
}

/** Every flag checked before anything is loaded, each bad one a UsageError naming it. */
export function compileEvaluateFlags(values: Flags): EvaluateSettings {
  const data = requireFlag('data', values.data);
  if (values.annotation !== undefined && data.endsWith('.rec'))
    throw new UsageError(`--annotation: only for a folder of images; --data ${data} is a .rec file`);
  for (const flag of ['ground-truth-out', 'detections-out'] as const)
    if (values[flag] === '') throw new UsageError(`--${flag}: expected a path or s3:// URL, got ''`);
  return {
    model: requireFlag('model', values.model),
    data,
    annotation: values.annotation,
    metric: parseMetric(values.metric),
    iouThreshold: parseIou(values.iou),
    batchSize: intFlag('batch-size', values['batch-size'], { min: 1, max: 256 }),
    backend: parseBackendName(values.backend ?? 'auto'),
    threads: parseThreadsFlag(values.threads),
    onBadRecord: parseOnBadRecord(values['on-bad-record']),
    groundTruthOut: values['ground-truth-out'],
    detectionsOut: values['detections-out'],
  };
}

/** The stdout line (see the usage). */
export function evaluationLine(e: Evaluation) {
  const { result } = e;
  const ap = Object.fromEntries(
    result.classes.map((c) => [e.classes?.[c.classId] ?? String(c.classId), c.ap]),
  );
  return {
    mAP: validationMapOf(result),
    ap,
    images: e.rows.images,
    skipped: e.skipped.length,
    seconds: e.seconds,
    imagesPerSecond: e.seconds > 0 ? e.rows.images / e.seconds : 0,
    metric: e.metric,
    iou: e.iouThreshold,
  };
}

/** The map input files asked for, written after the evaluation. */
async function writeMapFiles(e: Evaluation, s: EvaluateSettings, storage: Storage, signal: AbortSignal) {
  const files: [string | undefined, () => string][] = [
    [s.groundTruthOut, () => groundTruthJson(e.rows.groundTruth, e.imageName)],
    [s.detectionsOut, () => detectionsJson(e.rows.detections, e.imageName)],
  ];
  for (const [url, text] of files) {
    if (url !== undefined)
      await storage.write(url, Buffer.from(text()), { signal, contentType: 'application/json' });
  }
}

export const command: CliCommand = {
  name: 'evaluate',
  summary: 'VOC mAP of a trained model on a data set, as training validation computes it',
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('evaluate', argv, options);
    const settings = compileEvaluateFlags(values);
    const { signal, logger } = ctx;
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      // Outputs that cannot be written fail now, before the evaluation they would keep.
      if (settings.groundTruthOut !== undefined)
        await checkWritableDir(storage, dirnameUrl(settings.groundTruthOut), '--ground-truth-out', signal);
      if (settings.detectionsOut !== undefined)
        await checkWritableDir(storage, dirnameUrl(settings.detectionsOut), '--detections-out', signal);
      const evaluation = await evaluateModel({ ...settings, storage, logger, signal });
      await writeMapFiles(evaluation, settings, storage, signal);
      writeJsonLine(ctx.stdout, evaluationLine(evaluation));
    } finally {
      await storage.close();
    }
    return 0;
  },
};
