import { UsageError } from '../../shared/errors.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { BASE_NETWORKS, type BaseNetwork, generateAnchors } from '../../worker/model/anchors.js';
import { describeSsd, type SsdDescription } from '../../worker/model/ssd.js';
import { intFlag, parseCommandArgs, requireFlag } from '../args.js';
import { type CliCommand, writeJsonLine } from '../command.js';

const USAGE = `Usage: ssd-cluster model-info --num-classes K [--base-network NAME] [--image-shape PX] [--use-pretrained-model 0|1]
                              [--dump-anchors FILE] [--json] [--s3-endpoint URL]

Prints the anchors, parameter count and source feature maps of an SSD configuration. Everything is
computed from shapes: no weights are allocated and no compute backend is loaded.

Options:
  --num-classes K       object classes, background not included (SageMaker num_classes)
  --base-network NAME   vgg-16 (default), resnet-50 or tiny
  --image-shape PX      input side in pixels (default 300); tiny takes multiples of 32 from 64
  --use-pretrained-model 0|1
                        1 (default, as SageMaker): set up for a pretrained base, resnet-50's base
                        BatchNorms frozen; 0: from scratch, their gamma/beta trainable
  --dump-anchors FILE   write every anchor as [[cx, cy, w, h], ...], normalised to the image side, in
                        prediction order (7 significant digits); a path or an s3:// URL
  --json                one JSON object: {"baseNetwork", "imageShape", "numClasses", "anchors",
                        "parameters", "trainableParameters", "featureMaps": [[height, width, anchorsPerCell], ...]}
  --s3-endpoint URL     S3-compatible endpoint for --dump-anchors (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)

"parameters" counts every saved scalar (BatchNorm statistics included); "trainableParameters" leaves out
BatchNorm statistics and frozen BatchNorm affines (freeze_layer_pattern is not applied).
`;

export function parseBaseNetwork(value: string | undefined): BaseNetwork {
  const name = value ?? 'vgg-16';
  if (!BASE_NETWORKS.includes(name as BaseNetwork)) {
    throw new UsageError(`--base-network: expected one of ${BASE_NETWORKS.join(', ')}, got '${name}'`);
  }
  return name as BaseNetwork;
}

function summary(d: SsdDescription) {
  return {
    ...d.config,
    anchors: d.numAnchors,
    parameters: d.parameterCount,
    trainableParameters: d.trainableParameterCount,
    featureMaps: d.featureMaps,
  };
}

const count = (n: number) => n.toLocaleString('en-US');
const size = (n: number) => String(Number(n.toFixed(2)));

function table(d: SsdDescription): string {
  const { baseNetwork, imageShape, numClasses } = d.config;
  const header = ['layer', 'feature map', 'boxes/cell', 'anchors', 'step', 'min size', 'max size'];
  const rows = d.anchorConfig.layers.map((layer, i) => {
    const [h, w, k] = d.featureMaps[i]!;
    return [
      layer.name,
      `${h}x${w}`,
      String(k),
      count(h * w * k),
      size(layer.step),
      size(layer.minSize),
      size(layer.maxSize),
    ];
  });
  const widths = header.map((title, c) => Math.max(title.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  return [
    `SSD ${baseNetwork}, image ${imageShape}x${imageShape}, ${numClasses} classes + background`,
    line(header),
    ...rows.map(line),
    `anchors     ${count(d.numAnchors)}`,
    `parameters  ${count(d.parameterCount)} (trainable ${count(d.trainableParameterCount)})`,
    '',
  ].join('\n');
}

/** [[cx, cy, w, h], ...] with one anchor per line. */
function anchorsJson(anchors: Float32Array): string {
  const rows: string[] = [];
  for (let i = 0; i < anchors.length; i += 4) {
    const box = Array.from(anchors.subarray(i, i + 4), (v) => Number(v.toPrecision(7)));
    rows.push(JSON.stringify(box));
  }
  return `[\n${rows.join(',\n')}\n]\n`;
}

export const command: CliCommand = {
  name: 'model-info',
  summary: 'print anchors, parameters and feature maps of an SSD configuration',
  usage: USAGE,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('model-info', argv, {
      'base-network': { type: 'string' },
      'image-shape': { type: 'string' },
      'num-classes': { type: 'string' },
      'use-pretrained-model': { type: 'string' },
      'dump-anchors': { type: 'string' },
      json: { type: 'boolean' },
    });
    const description = describeSsd({
      baseNetwork: parseBaseNetwork(values['base-network']),
      imageShape: intFlag('image-shape', values['image-shape'], { min: 1 }) ?? 300,
      numClasses: requireFlag('num-classes', intFlag('num-classes', values['num-classes'], { min: 1 })),
      pretrainedBase:
        intFlag('use-pretrained-model', values['use-pretrained-model'], { min: 0, max: 1 }) !== 0,
    });
    const dumpUrl = values['dump-anchors'];
    if (dumpUrl !== undefined) {
      const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
      try {
        const body = Buffer.from(anchorsJson(generateAnchors(description.anchorConfig)));
        await storage.write(dumpUrl, body, { signal: ctx.signal, contentType: 'application/json' });
      } finally {
        await storage.close();
      }
    }
    if (values.json) writeJsonLine(ctx.stdout, summary(description));
    else ctx.stdout.write(table(description));
    return 0;
  },
};
