import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';

/**
 * tfjs-core's Node bundle (dist/tf-core.node.js, what `import '@tensorflow/tfjs-core'` loads) carries no
 * gradient functions: the `@tensorflow/tfjs` umbrella package registers them from
 * dist/register_all_gradients.js, an ES-module tree with extension-less imports that Node's ESM loader
 * cannot resolve. Through `require` under tsx's CommonJS hook (`node --import tsx`, as AVA runs) it loads;
 * its ops reach the one shared engine and registries (tfjs keeps them on globalThis), so the gradients it
 * registers serve every copy.
 *
 * Idempotent: does nothing when a gradient for Add is already registered (by this or by anyone else).
 */
export function ensureGradientsRegistered(): void {
  if (tf.getGradient('Add') !== undefined) return;
  try {
    createRequire(import.meta.url)('@tensorflow/tfjs-core/dist/register_all_gradients');
  } catch (err) {
    throw new ClusterError(
      'BACKEND',
      "cannot register the tfjs gradients (@tensorflow/tfjs-core/dist/register_all_gradients): run under tsx's CommonJS hook too (node --import tsx, or tsx/cjs/api register())",
      { cause: err },
    );
  }
}
