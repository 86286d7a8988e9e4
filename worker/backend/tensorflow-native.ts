import * as tf from '@tensorflow/tfjs-core';
import { ClusterError, errorMessage } from '../../shared/errors.js';

/**
 * The native TensorFlow backends (`@tensorflow/tfjs-node`, `@tensorflow/tfjs-node-gpu`): optional
 * dependencies that cannot install on every host, so they are imported by name at run time (a
 * non-literal specifier: tsc needs no types for them). Both register a tfjs backend called
 * 'tensorflow' into the global tfjs-core engine, which must be the same version as ours (4.22.0).
 */
export type NativeBackendName = 'tensorflow-gpu' | 'tensorflow';

export const NATIVE_PACKAGES: Readonly<Record<NativeBackendName, string>> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

/** tfjs's name for the backend both packages register. */
export const NATIVE_TFJS_BACKEND = 'tensorflow';

export type ImportModule = (specifier: string) => Promise<unknown>;

export const importByName: ImportModule = (specifier) => import(specifier);

const HOST_NEEDS: Readonly<Record<NativeBackendName, string>> = {
  'tensorflow-gpu': 'on a Linux x86-64 host with an NVIDIA driver, CUDA 11.2 and cuDNN 8.1',
  tensorflow: 'on a Linux, macOS or Windows x86-64 host (prebuilt libtensorflow)',
};

/** Imports the package for `name` and checks it registered the 'tensorflow' backend into our engine. */
export async function loadNativeBackend(name: NativeBackendName, importModule: ImportModule): Promise<void> {
  const pkg = NATIVE_PACKAGES[name];
  const install = `install it with \`npm install ${pkg}@${tf.version_core}\` ${HOST_NEEDS[name]}`;
  let loaded: unknown;
  try {
    loaded = await importModule(pkg);
  } catch (err) {
    if (isMissingPackage(err, pkg)) {
      throw new ClusterError('BACKEND', `--backend ${name}: ${pkg} is not installed; ${install}`, {
        cause: err,
      });
    }
    throw new ClusterError(
      'BACKEND',
      `--backend ${name}: ${pkg} is installed but failed to load (${errorMessage(err)}); ${install}`,
      {
        cause: err,
      },
    );
  }
  const theirCore = coreVersionOf(loaded);
  if (theirCore !== undefined && theirCore !== tf.version_core) {
    throw new ClusterError(
      'BACKEND',
      `--backend ${name}: ${pkg} brings @tensorflow/tfjs-core ${theirCore} but this program uses ${tf.version_core}; ${install}`,
    );
  }
  if (!tf.findBackendFactory(NATIVE_TFJS_BACKEND)) {
    throw new ClusterError(
      'BACKEND',
      `--backend ${name}: ${pkg} loaded but registered no '${NATIVE_TFJS_BACKEND}' backend with this @tensorflow/tfjs-core ${tf.version_core}; ${install}`,
    );
  }
}

/** True when the import failed because `pkg` itself (not one of its own dependencies) is absent. */
export function isMissingPackage(err: unknown, pkg: string): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
  return missing && (err.message.includes(`'${pkg}'`) || err.message.includes(`"${pkg}"`));
}

/** `version['tfjs-core']` of a package that re-exports @tensorflow/tfjs, if it says. */
function coreVersionOf(loaded: unknown): string | undefined {
  const version = (loaded as { version?: Record<string, unknown> } | undefined)?.version;
  const core = version?.['tfjs-core'];
  return typeof core === 'string' ? core : undefined;
}
