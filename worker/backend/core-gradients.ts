import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import * as tf from '@tensorflow/tfjs-core';
import { ClusterError, errorMessage } from '../../shared/errors.js';

/**
 * tfjs-core's gradient definitions and chained tensor methods (x.reshape(...)) in Node.
 *
 * The Node build of @tensorflow/tfjs-core (dist/tf-core.node.js) registers neither: they live in
 * dist/register_all_gradients.js and dist/public/chained_ops/, which only the union package
 * @tensorflow/tfjs bundles (and tfjs-node pulls that in). Without them every tf.grad fails with
 * "gradient function not found for Conv2D". Those dist files are ESM with extensionless imports,
 * which Node cannot load, so they are bundled once per process with esbuild (already installed as
 * tsx's engine) and evaluated. The bundle carries its own copy of tfjs-core's modules, but tfjs-core
 * keeps the engine, the kernel and gradient registries and the Tensor class on the global object,
 * so the definitions land in the one engine every backend uses (checked after loading).
 */
let loading: Promise<void> | undefined;

/** Idempotent; skips the bundle when gradients are already registered (e.g. by tfjs-node). */
export function registerCoreGradients(): Promise<void> {
  loading ??= loadCoreGradients().catch((err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

async function loadCoreGradients(): Promise<void> {
  if (tf.getGradient('Conv2D') !== undefined && tf.getGradient('Relu') !== undefined) return;
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  const code = await bundle(path.dirname(entry));
  const wrapper = vm.runInThisContext(`(function (module, exports, require) {${code}\n})`, {
    filename: 'tfjs-core-gradients.bundle.cjs',
  }) as (module: { exports: object }, exports: object, require: NodeJS.Require) => void;
  const module = { exports: {} };
  wrapper(module, module.exports, createRequire(entry));
  if (tf.getGradient('Conv2D') === undefined) {
    throw new ClusterError(
      'BACKEND',
      'tfjs-core gradients were bundled but did not register into this engine',
    );
  }
}

async function bundle(coreDist: string): Promise<string> {
  try {
    const esbuild = await import('esbuild');
    const result = await esbuild.build({
      stdin: {
        contents:
          "import './register_all_gradients.js';\nimport './public/chained_ops/register_all_chained_ops.js';\n",
        resolveDir: coreDist,
        loader: 'js',
      },
      bundle: true,
      write: false,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      logLevel: 'silent',
    });
    return result.outputFiles[0]!.text;
  } catch (err) {
    throw new ClusterError(
      'BACKEND',
      `cannot bundle tfjs-core's gradients from ${coreDist} with esbuild (${errorMessage(err)}); training needs them`,
      { cause: err },
    );
  }
}
