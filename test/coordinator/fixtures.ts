import type { JobSpecMsg } from '../../coordinator/protocol.js';
import { compileHyperparameters } from '../../shared/config/compile.js';

/** A small tiny-SSD job: 64 samples, batch 4, 2 epochs. */
export const testHyperparameters = compileHyperparameters({
  num_classes: 2,
  num_training_samples: 64,
  base_network: 'tiny',
  image_shape: 64,
  epochs: 2,
  mini_batch_size: 4,
});

/** A job spec whose data is never read (the coordinator only schedules it). */
export const testJobSpec: JobSpecMsg = {
  hyperparameters: {},
  trainUrl: 'train.rec',
  validationUrl: 'validation.rec',
  trainAnnotationUrl: '',
  validationAnnotationUrl: '',
  modelDir: '/tmp/model',
  seed: 1,
  pretrainedBase: '',
  s3Endpoint: '',
  onBadRecord: 'skip',
  gradientCompression: 'none',
  modelArchive: false,
  checkpointDir: '',
  checkpointFrequency: 0,
  keepCheckpoints: 3,
  resumeFrom: '',
};
