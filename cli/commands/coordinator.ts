import { runCoordinator } from '../../coordinator/main.js';
import { describeHyperparameters } from '../../shared/config/hyperparameters.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { parseCommandArgs } from '../args.js';
import { CLUSTER_OPTIONS_HELP, clusterOptions, compileClusterSettings } from '../cluster-options.js';
import { type CliCommand, writeJsonLine } from '../command.js';

const usage = `Usage: ssd-cluster coordinator [hyperparameters] --train SOURCE [--validation SOURCE] --workers N
                                --model-dir DEST [--port 7070] [--metrics-port 9090] [options]

Runs the coordinator: waits for the workers, assigns ranks and the ring, owns membership (generations),
the epoch plan, the learning-rate schedule and the epoch barriers, combines validation mAP exactly from
every worker's detections, and has the final model written once. Start workers with
'ssd-cluster worker --coordinator HOST:PORT'. Ends by printing one JSON line:
{"images", "seconds", "imagesPerSecond", "workers", "epochs", "validationMap", "modelDir", "speedup",
"scalingEfficiency"}: the fields of 'train' plus the speedup over one worker and its efficiency
(speedup / workers), as ssd_cluster_speedup and ssd_cluster_scaling_efficiency read after the last
step (null before any step).

${CLUSTER_OPTIONS_HELP}
  --s3-endpoint URL              S3-compatible endpoint for s3:// URLs (passed on to the workers)
  --log-level LEVEL              debug, info, warn, error or silent (default info)

${describeHyperparameters()}
`;

export const command: CliCommand = {
  name: 'coordinator',
  summary: 'run the coordinator',
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('coordinator', argv, clusterOptions);
    const settings = await compileClusterSettings(values);
    settings.spec.s3Endpoint = values['s3-endpoint'] ?? '';
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      const summary = await runCoordinator({
        ...settings,
        address: `0.0.0.0:${settings.port}`,
        storage,
        logger: ctx.logger,
        progressStream: ctx.stderr,
        signal: ctx.signal,
      });
      writeJsonLine(ctx.stdout, summary);
      return 0;
    } finally {
      await storage.close();
    }
  },
};
