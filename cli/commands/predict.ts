import { UsageError } from '../../shared/errors.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { produceInOrder } from '../../shared/synth/in-order.js';
import { type BackendName, parseBackendName } from '../../worker/backend/backend.js';
import { formatPrediction } from '../../worker/inference/prediction-json.js';
import { DEFAULT_MAX_BATCH, loadPredictor } from '../../worker/inference/predictor.js';
import { intFlag, numberFlag, parseCommandArgs, requireFlag } from '../args.js';
import { parseThreadsFlag } from '../cluster-options.js';
import type { CliCommand } from '../command.js';

/** The flags of predict and serve that say which model to load and how to run it. */
export const modelOptions = {
  model: { type: 'string' },
  threshold: { type: 'string' },
  'batch-size': { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
} as const;

export const MODEL_OPTIONS_HELP = `  --model MODEL          the trained model (required): the directory 'ssd-cluster train --model-dir'
                         wrote, its model.json, or a model.tar.gz; a path or s3:// URL
  --threshold T          leave out rows scoring below T, 0-1 (default 0: every row the model returns)
  --batch-size N         images per forward pass at most (default ${DEFAULT_MAX_BATCH})
  --backend NAME         auto (default), tensorflow-gpu, tensorflow, wasm or cpu
  --threads N            XNNPACK threads on wasm (default 1)
  --s3-endpoint URL      S3-compatible endpoint for s3:// URLs
  --log-level LEVEL      debug, info, warn, error or silent (default info)`;

export interface ModelSettings {
  model: string;
  scoreThreshold: number;
  maxBatch: number;
  backend: BackendName;
  threads: number | undefined;
}

/** modelOptions' values checked, each bad one a UsageError or ConfigError naming its flag. */
export function compileModelSettings(
  values: Partial<Record<keyof typeof modelOptions, string>>,
): ModelSettings {
  const scoreThreshold = numberFlag('threshold', values.threshold) ?? 0;
  if (scoreThreshold < 0 || scoreThreshold > 1) {
    throw new UsageError(`--threshold: expected a number in [0, 1], got '${values.threshold}'`);
  }
  return {
    model: requireFlag('model', values.model),
    scoreThreshold,
    maxBatch: intFlag('batch-size', values['batch-size'], { min: 1, max: 256 }) ?? DEFAULT_MAX_BATCH,
    backend: parseBackendName(values.backend ?? 'auto'),
    threads: parseThreadsFlag(values.threads),
  };
}

const usage = `Usage: ssd-cluster predict --model MODEL IMAGE... [--threshold T] [--backend NAME] [options]

Runs a trained model on JPEG/PNG images (paths or s3:// URLs) and prints one line per image, in the
order given, in the body format of SageMaker's object-detection endpoint (and of its batch transform):
  {"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}
class is the 0-based class id written as a float (4.0); the box is normalised to [0, 1] by the image's
width and height, origin at the top left. Rows come sorted by score, after per-class NMS with the
model's nms_threshold and nms_topk. Grey and alpha images are converted to RGB.

An image that cannot be read or decoded stops the run with exit code 1 and a message naming it, after
the lines of the images before it.

Options:
${MODEL_OPTIONS_HELP}
`;

export const command: CliCommand = {
  name: 'predict',
  summary: 'run a trained model on images, one JSON line per image',
  usage,
  async run(argv, ctx) {
    const { values, positionals: images } = parseCommandArgs('predict', argv, modelOptions, {
      allowPositionals: true,
    });
    const settings = compileModelSettings(values);
    if (images.length === 0) {
      throw new UsageError('predict: give at least one IMAGE (a JPEG or PNG path or s3:// URL)');
    }
    const { signal, logger } = ctx;
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      const predictor = await loadPredictor(settings.model, { ...settings, storage, logger, signal });
      try {
        // Reads and decodes run two batches ahead so that passes can fill; lines go out in order.
        await produceInOrder(
          images.length,
          2 * settings.maxBatch,
          async (i) =>
            predictor.predict(await storage.read(images[i]!, { signal }), { signal, source: images[i]! }),
          async (rows) => void ctx.stdout.write(`${formatPrediction(rows)}\n`),
          signal,
        );
      } finally {
        await predictor.close();
      }
    } finally {
      await storage.close();
    }
    return 0;
  },
};
