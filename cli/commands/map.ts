import { UsageError } from '../../shared/errors.js';
import { AP_METRICS, type ApMetric } from '../../shared/eval/average-precision.js';
import { parseDetectionsJson, parseGroundTruthJson } from '../../shared/eval/map-input.js';
import { computeVocMap } from '../../shared/eval/voc-map.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { numberFlag, parseCommandArgs, requireFlag } from '../args.js';
import { type CliCommand, writeJsonLine } from '../command.js';

const USAGE = `Usage: ssd-cluster map --ground-truth FILE --detections FILE [--metric voc07|area] [--iou 0.5]
                        [--pixel-offset 1|0] [--s3-endpoint URL]

Computes PASCAL VOC detection mAP and prints {"mAP": x, "ap": {"<class>": x, ...}} (mAP is null when no class
has non-difficult ground truth). FILEs are paths or s3:// URLs.

  --ground-truth FILE  JSON array of {"image": string, "class": int, "box": [xmin, ymin, xmax, ymax], "difficult"?: bool}
  --detections FILE    JSON array of {"image": string, "class": int, "score": number, "box": [xmin, ymin, xmax, ymax]}
  --metric voc07|area  voc07 (default): 11-point AP with numpy arange thresholds, as SSD/GluonCV/SageMaker report;
                       area: all-point AP (VOC2010+)
  --iou X              a detection matches at IoU >= X (default 0.5)
  --pixel-offset 1|0   1 (default): VOC pixel boxes, widths x2 - x1 + 1; 0: normalised boxes (as 'predict'
                       and 'inspect' print them; with 1, a warning says so when every box is within [0, 1])
  --s3-endpoint URL    S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)

Detections of a difficult box are ignored; classes without non-difficult ground truth are left out of the mean.
`;

interface MapFlags {
  groundTruth: string;
  detections: string;
  metric: ApMetric;
  iouThreshold: number;
  pixelOffset: 0 | 1;
}

function compileFlags(values: Record<string, string | boolean | undefined>): MapFlags {
  const metric = (values.metric as string | undefined) ?? 'voc07';
  if (!AP_METRICS.includes(metric as ApMetric)) {
    throw new UsageError(`--metric: expected one of ${AP_METRICS.join(', ')}, got '${metric}'`);
  }
  const iouThreshold = numberFlag('iou', values.iou as string | undefined) ?? 0.5;
  if (!(iouThreshold > 0 && iouThreshold <= 1)) {
    throw new UsageError(`--iou: expected a number in (0, 1], got '${values.iou}'`);
  }
  const offset = (values['pixel-offset'] as string | undefined) ?? '1';
  if (offset !== '0' && offset !== '1')
    throw new UsageError(`--pixel-offset: expected 1 or 0, got '${offset}'`);
  return {
    groundTruth: requireFlag('ground-truth', values['ground-truth'] as string | undefined),
    detections: requireFlag('detections', values.detections as string | undefined),
    metric: metric as ApMetric,
    iouThreshold,
    pixelOffset: offset === '1' ? 1 : 0,
  };
}

/** Every coordinate in [0, 1]: normalised boxes, for which the +1 pixel convention is wrong. */
function looksNormalised(truth: readonly { box: ArrayLike<number> }[]): boolean {
  return truth.length > 0 && truth.every((g) => Array.from(g.box).every((v) => v >= 0 && v <= 1));
}

export const command: CliCommand = {
  name: 'map',
  summary: 'compute VOC mAP from ground-truth and detection JSON files',
  usage: USAGE,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('map', argv, {
      'ground-truth': { type: 'string' },
      detections: { type: 'string' },
      metric: { type: 'string' },
      iou: { type: 'string' },
      'pixel-offset': { type: 'string' },
    });
    const flags = compileFlags(values);
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      const read = async (url: string) => (await storage.read(url, { signal: ctx.signal })).toString('utf8');
      const truth = parseGroundTruthJson(await read(flags.groundTruth), flags.groundTruth);
      const detections = parseDetectionsJson(await read(flags.detections), flags.detections);
      if (flags.pixelOffset === 1 && looksNormalised(truth)) {
        ctx.logger.warn(
          'every ground-truth box lies within [0, 1], as normalised boxes do (predict and inspect print ' +
            'them): --pixel-offset 1 (the default) adds 1 to each width and height, which overstates ' +
            'the overlap of normalised boxes; pass --pixel-offset 0 for them',
          { groundTruth: flags.groundTruth },
        );
      }
      const result = computeVocMap(truth, detections, flags);
      const ap = Object.fromEntries(result.classes.map((c) => [String(c.classId), c.ap]));
      writeJsonLine(ctx.stdout, { mAP: Number.isNaN(result.map) ? null : result.map, ap });
    } finally {
      await storage.close();
    }
    return 0;
  },
};
