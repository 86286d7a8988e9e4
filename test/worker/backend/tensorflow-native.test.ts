import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createMemoryLogger, noopLogger } from '../../../shared/logging.js';
import { initBackend } from '../../../worker/backend/backend.js';
import { isMissingPackage } from '../../../worker/backend/tensorflow-native.js';

/**
 * tfjs-node cannot install here, so `importModule` stands in for it: a fake package that does what
 * tfjs-node does on import, registering a backend named 'tensorflow' (here the cpu kernels under that
 * name) into the global engine. Serial: the engine is global and the order matters.
 */
function fakeTfjsNode(coreVersion = tf.version_core) {
  const imported: string[] = [];
  const importModule = async (specifier: string) => {
    imported.push(specifier);
    if (!tf.findBackendFactory('tensorflow')) {
      tf.registerBackend('tensorflow', () => new MathBackendCPU(), 3);
      for (const kernel of tf.getKernelsForBackend('cpu'))
        tf.registerKernel({ ...kernel, backendName: 'tensorflow' });
    }
    return { version: { 'tfjs-core': coreVersion, 'tfjs-node': '4.22.0' } };
  };
  return { importModule, imported };
}

test.serial(
  'a native package that fails to load is reported as installed but broken, with the cause',
  async (t) => {
    const cause = new Error('libcudart.so.11.0: cannot open shared object file');
    const err = await t.throwsAsync(
      initBackend('tensorflow-gpu', { logger: noopLogger, importModule: async () => Promise.reject(cause) }),
    );
    t.true(isClusterError(err, 'BACKEND'));
    t.regex(
      err!.message,
      /@tensorflow\/tfjs-node-gpu is installed but failed to load \(libcudart\.so\.11\.0/,
    );
    t.is(err!.cause, cause);
  },
);

test.serial(
  'a native package built on another tfjs-core version is refused naming both versions',
  async (t) => {
    const { importModule } = fakeTfjsNode('4.10.0');
    const err = await t.throwsAsync(initBackend('tensorflow', { logger: noopLogger, importModule }));
    t.regex(err!.message, /brings @tensorflow\/tfjs-core 4\.10\.0 but this program uses 4\.22\.0/);
  },
);

test.serial(
  'initBackend auto takes tensorflow when tfjs-node loads, after tfjs-node-gpu fails',
  async (t) => {
    const { importModule, imported } = fakeTfjsNode();
    const gpuMissing = Object.assign(new Error("Cannot find package '@tensorflow/tfjs-node-gpu'"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    const logger = createMemoryLogger();
    const backend = await initBackend('auto', {
      logger,
      importModule: (specifier) =>
        specifier.endsWith('-gpu') ? Promise.reject(gpuMissing) : importModule(specifier),
    });
    t.is(backend.name, 'tensorflow');
    t.is(backend.tfjsName, 'tensorflow');
    t.is(tf.getBackend(), 'tensorflow');
    t.deepEqual(imported, ['@tensorflow/tfjs-node']);
    const selected = logger.entries.find((e) => e.msg === 'backend auto-selected');
    t.deepEqual(
      ((selected?.fields.skipped ?? []) as { backend: string }[]).map((s) => s.backend),
      ['tensorflow-gpu'],
    );
    t.deepEqual(Array.from(tf.add(tf.scalar(1), tf.scalar(2)).dataSync()), [3]);
  },
);

test('isMissingPackage tells the package itself missing from a missing dependency of it', (t) => {
  const own = Object.assign(new Error("Cannot find package '@tensorflow/tfjs-node' imported from /x.js"), {
    code: 'ERR_MODULE_NOT_FOUND',
  });
  const dependency = Object.assign(new Error("Cannot find module '@mapbox/node-pre-gyp'"), {
    code: 'MODULE_NOT_FOUND',
  });
  t.true(isMissingPackage(own, '@tensorflow/tfjs-node'));
  t.false(isMissingPackage(dependency, '@tensorflow/tfjs-node'));
  t.false(isMissingPackage('not an error', '@tensorflow/tfjs-node'));
});
