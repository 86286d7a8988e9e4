import { performance } from 'node:perf_hooks';
import { OUTSIDE_TOLERANCE } from '../../shared/annotations/annotation.js';
import { type PackInput, packDataset } from '../../shared/annotations/pack-dataset.js';
import { UsageError } from '../../shared/errors.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { intFlag, parseCommandArgs, requireFlag } from '../args.js';
import { type CliCommand, writeJsonLine } from '../command.js';

const usage = `Usage: ssd-cluster pack --images DIR [--annotations DIR] --out PREFIX [options]
       ssd-cluster pack --manifest FILE --out PREFIX [options]

Packs images and SageMaker object-detection annotations into PREFIX.rec + PREFIX.idx, with labels
[2, 5, class, xmin, ymin, xmax, ymax per object] normalised to [0, 1] (as im2rec --pack-label), and the
category names into PREFIX.classes.json (["name0", ...]; "class_<id>" where no name is given).

Input, either:
  --images DIR            .jpg/.jpeg/.png images (searched recursively)
  --annotations DIR       one SageMaker JSON per image, same relative name (a.jpg <-> a.json);
                          default: the --images folder
  --manifest FILE         a SageMaker augmented manifest (JSON lines with source-ref); relative
                          source-refs are resolved against the manifest's folder
  --label-attribute NAME  the manifest's label attribute (default: the first key that is neither
                          source-ref nor *-metadata)

Output and options:
  --out PREFIX            output prefix (a path or s3:// URL) (required)
  --resize PX             re-encode each image as JPEG with its shorter side PX (default: store the
                          image bytes unchanged)
  --s3-endpoint URL       S3-compatible endpoint for s3:// URLs
  --log-level LEVEL       debug, info, warn, error or silent (default info)

Record keys are 0..n-1 in sorted image-name order (or manifest line order). Every annotation is
checked before anything is written: a "file" with the image's file name, image_size with depth 3,
integer class_id >= 0, numeric boxes with positive size inside the image (boxes overshooting by up
to ${OUTSIDE_TOLERANCE * 100}% of the image are clipped), class ids consecutive from 0 across the set, at least one
box per image, and the image's real size equal to image_size. Errors name the file and field.
Outputs are written under temporary names and renamed at the end, so a failure leaves no output.

Prints one JSON line at the end: {"out", "rec", "idx", "classes", "records", "classCount", "seconds"}.
`;

function packInput(values: Record<string, string | boolean | undefined>): PackInput {
  const images = values.images as string | undefined;
  const manifest = values.manifest as string | undefined;
  if ((images === undefined) === (manifest === undefined))
    throw new UsageError('pack: give exactly one of --images DIR or --manifest FILE');
  if (manifest !== undefined) {
    if (values.annotations !== undefined)
      throw new UsageError('pack: --annotations goes with --images, not --manifest');
    return { kind: 'manifest', manifest, labelAttribute: values['label-attribute'] as string | undefined };
  }
  if (values['label-attribute'] !== undefined)
    throw new UsageError('pack: --label-attribute goes with --manifest, not --images');
  return {
    kind: 'directories',
    images: images!,
    annotations: (values.annotations as string | undefined) ?? images!,
  };
}

export const command: CliCommand = {
  name: 'pack',
  summary: 'pack images + SageMaker JSON annotations (or a manifest) into RecordIO',
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('pack', argv, {
      images: { type: 'string' },
      annotations: { type: 'string' },
      manifest: { type: 'string' },
      'label-attribute': { type: 'string' },
      out: { type: 'string' },
      resize: { type: 'string' },
    });
    const input = packInput(values);
    const out = requireFlag('out', values.out);
    const resize = intFlag('resize', values.resize, { min: 1, max: 16384 });
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    const started = performance.now();
    try {
      const result = await packDataset(
        input,
        { out, resize },
        { storage, signal: ctx.signal, logger: ctx.logger },
      );
      writeJsonLine(ctx.stdout, {
        out,
        rec: result.rec,
        idx: result.idx,
        classes: result.classes,
        records: result.records,
        classCount: result.classSet.classCount,
        seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      });
    } finally {
      await storage.close();
    }
    return 0;
  },
};
