import { performance } from 'node:perf_hooks';
import { createStorage } from '../../shared/storage/open-storage.js';
import { DIFFICULT_VISIBLE_FRACTION, DROPPED_VISIBLE_FRACTION } from '../../shared/synth/rasterise.js';
import { compileSynthOptions, SYNTH_DEFAULTS, synthClassNames } from '../../shared/synth/synth-image.js';
import { writeSynthDataset } from '../../shared/synth/write-synth.js';
import { intFlag, parseCommandArgs, requireFlag } from '../args.js';
import { type CliCommand, writeJsonLine } from '../command.js';

const d = SYNTH_DEFAULTS;
const pct = (fraction: number) => `${Math.round(fraction * 100)}%`;

const usage = `Usage: ssd-cluster synth --out DIR [options]

Writes a deterministic synthetic object-detection data set:
  DIR/train.rec + .idx, DIR/validation.rec + .idx (JPEG images, labels [2, 6, class, xmin, ymin,
  xmax, ymax, difficult per object], corners normalised to [0, 1]) and DIR/classes.json.
DIR may be a local directory or an s3:// prefix.

Each image shows 1-${d.maxObjects} shapes (circle, square, triangle, plus, ring, star, diamond, cross: the first K)
of random colour, size ${pct(d.minSizeFraction)}-${pct(d.maxSizeFraction)} of the image and aspect up to ${d.maxAspect}:1, on a noisy gradient with small
blobs and lines as clutter. Later shapes may hide up to half of earlier ones; an object less than ${pct(DIFFICULT_VISIBLE_FRACTION)}
visible is marked difficult, one less than ${pct(DROPPED_VISIBLE_FRACTION)} visible is not labelled. Boxes are the tight box of
the visible pixels. Image i of a split depends only on (seed, split, i): its pixels and JPEG bytes are
the same whatever --train/--validation are, and across machines with the same Node.js and sharp.

A ~1 GB file (e.g. for bench recordio): --image-size 512 --train 25000 --validation 0 (about 41 KB
per image).

Options:
  --out DIR             output directory or s3:// prefix (required)
  --train N             training images (default ${d.train})
  --validation M        validation images (default ${d.validation})
  --image-size PX       width and height of the images (default ${d.imageSize})
  --classes K           shape classes, 1-8 (default ${d.classCount}: ${synthClassNames(d.classCount).join(', ')})
  --seed S              data set seed (default ${d.seed})
  --s3-endpoint URL     S3-compatible endpoint for s3:// URLs
  --log-level LEVEL     debug, info, warn, error or silent (default info)

Prints one JSON line at the end: {"out", "train", "validation", "classes", "imageSize", "seed", "seconds",
"imagesPerSecond"}.
`;

export const command: CliCommand = {
  name: 'synth',
  summary: 'write a deterministic synthetic detection data set as RecordIO',
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('synth', argv, {
      out: { type: 'string' },
      train: { type: 'string' },
      validation: { type: 'string' },
      'image-size': { type: 'string' },
      classes: { type: 'string' },
      seed: { type: 'string' },
    });
    const out = requireFlag('out', values.out);
    const options = compileSynthOptions({
      train: intFlag('train', values.train, { min: 0 }),
      validation: intFlag('validation', values.validation, { min: 0 }),
      imageSize: intFlag('image-size', values['image-size'], { min: 1 }),
      classCount: intFlag('classes', values.classes, { min: 1 }),
      seed: intFlag('seed', values.seed, { min: 0 }),
    });
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    const started = performance.now();
    try {
      await writeSynthDataset(out, options, { storage, signal: ctx.signal, logger: ctx.logger });
    } finally {
      await storage.close();
    }
    const seconds = (performance.now() - started) / 1000;
    writeJsonLine(ctx.stdout, {
      out,
      train: options.train,
      validation: options.validation,
      classes: options.classCount,
      imageSize: options.imageSize,
      seed: options.seed,
      seconds: Number(seconds.toFixed(3)),
      imagesPerSecond: Number(((options.train + options.validation) / seconds).toFixed(1)),
    });
    return 0;
  },
};
