import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { ClusterError, ConfigError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import { registerCoreGradients } from './core-gradients.js';
import { registerExtraGradients } from './extra-gradients.js';
import {
  type ImportModule,
  importByName,
  loadNativeBackend,
  NATIVE_TFJS_BACKEND,
  type NativeBackendName,
} from './tensorflow-native.js';
import { registerWasmTrainingKernels } from './wasm-kernels/register.js';
import { MAX_WASM_THREADS, unrefPoolThreads, withThreadedWasmShims } from './wasm-threads.js';

/**
 * `--backend auto|tensorflow-gpu|tensorflow|wasm|cpu`: loads the tfjs backend, makes it the active one
 * in the global tfjs-core engine, and readies it for training (gradients everywhere, missing or slow
 * backward kernels on wasm). `auto` takes the first of AUTO_ORDER that loads and says why it skipped
 * the others.
 */
export type BackendName = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export type ResolvedBackendName = Exclude<BackendName, 'auto'>;

export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
export const AUTO_ORDER: readonly ResolvedBackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface InitBackendOptions {
  logger: Logger;
  /**
   * XNNPACK threads on wasm (default 1: the single-threaded SIMD build). More loads the threaded SIMD
   * build (at most 8); worth it only when this process has the cores to itself. Ignored elsewhere.
   */
  threads?: number;
  /** How the optional tfjs-node packages are imported (tests substitute it). */
  importModule?: ImportModule;
}

export interface Backend {
  name: ResolvedBackendName;
  /** The tfjs-core module whose engine now runs on this backend. */
  tf: typeof tf;
  /** tfjs's own name: 'tensorflow' for both tfjs-node packages. */
  tfjsName: string;
  /** XNNPACK threads in use on wasm, 1 elsewhere. */
  threads: number;
  /**
   * Frees the backend's memory and threads; its tensors become invalid. For shutdown only: tfjs
   * cannot re-create a removed backend, so a later initBackend of it fails. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const TFJS_NAMES: Readonly<Record<ResolvedBackendName, string>> = {
  'tensorflow-gpu': NATIVE_TFJS_BACKEND,
  tensorflow: NATIVE_TFJS_BACKEND,
  wasm: 'wasm',
  cpu: 'cpu',
};

export function parseBackendName(value: string, flag = '--backend'): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new ConfigError([`${flag}: must be one of ${BACKEND_NAMES.join(', ')}, got '${value}'`]);
}

/** Gradients for training on any backend: tfjs-core's own (absent from its Node build) plus ours. */
export async function registerTrainingGradients(): Promise<void> {
  await registerCoreGradients();
  registerExtraGradients();
}

/** Idempotent: the same name again returns at once; another name switches the engine to it. */
export async function initBackend(name: BackendName, options: InitBackendOptions): Promise<Backend> {
  const threads = checkThreads(options.threads ?? 1);
  await registerTrainingGradients();
  if (name !== 'auto') return activate(name, threads, options);
  const skipped: { backend: ResolvedBackendName; reason: string }[] = [];
  for (const candidate of AUTO_ORDER) {
    try {
      const backend = await activate(candidate, threads, options);
      options.logger.info('backend auto-selected', { backend: candidate, skipped });
      return backend;
    } catch (err) {
      skipped.push({ backend: candidate, reason: errorMessage(err) });
      options.logger.debug('backend skipped', { backend: candidate, reason: errorMessage(err) });
    }
  }
  throw new ClusterError(
    'BACKEND',
    `--backend auto: no backend could load (${skipped.map((s) => s.reason).join('; ')})`,
  );
}

function checkThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new ConfigError([`threads: must be an integer from 1 to ${MAX_WASM_THREADS}, got ${threads}`]);
  }
  return threads;
}

const loaded = new Map<ResolvedBackendName, Promise<void>>();
/** tfjs backends removed by close(): tfjs forgets their factories, so they cannot come back. */
const closed = new Set<string>();

async function activate(
  name: ResolvedBackendName,
  threads: number,
  options: InitBackendOptions,
): Promise<Backend> {
  const tfjsName = TFJS_NAMES[name];
  if (closed.has(tfjsName)) {
    throw new ClusterError(
      'BACKEND',
      `--backend ${name}: already closed in this process; tfjs cannot re-create it`,
    );
  }
  let load = loaded.get(name);
  if (!load) {
    load = loadBackend(name, threads, options);
    loaded.set(name, load);
    load.catch(() => loaded.delete(name));
  }
  await load;
  if (!(await tf.setBackend(tfjsName))) {
    throw new ClusterError(
      'BACKEND',
      `--backend ${name}: tfjs could not initialise its '${tfjsName}' backend`,
    );
  }
  await tf.ready();
  const close = async () => closeTfjsBackend(tfjsName);
  const active: Backend = {
    name,
    tf,
    tfjsName,
    threads: name === 'wasm' ? await wasmThreads() : 1,
    close,
    [Symbol.asyncDispose]: close,
  };
  if (name === 'wasm' && active.threads !== threads) {
    options.logger.warn('wasm threads differ from the request', {
      requested: threads,
      threads: active.threads,
    });
  }
  options.logger.info('backend ready', { backend: name, tfjsBackend: tfjsName, threads: active.threads });
  return active;
}

async function loadBackend(
  name: ResolvedBackendName,
  threads: number,
  options: InitBackendOptions,
): Promise<void> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow':
      return loadNativeBackend(name as NativeBackendName, options.importModule ?? importByName);
    case 'wasm':
      return loadWasm(threads, options.logger);
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      writeFirstCpuDataQuietly();
      return;
  }
}

/**
 * tfjs-backend-cpu prints a "Hi, looks like you are running TensorFlow.js in Node.js" banner
 * through tfjs-core's warn() on its first write whenever env IS_NODE holds; warn() is quiet while
 * env PROD (or IS_TEST) is set. So the cpu backend is created and written to once here, under PROD,
 * and PROD is put back: tfjs's other warnings (a backend that fails to start, a kernel registered
 * twice) still show.
 */
function writeFirstCpuDataQuietly(): void {
  const cpu = tf.findBackend('cpu');
  if (!cpu) return;
  const env = tf.env();
  const prod = env.getBool('PROD');
  env.set('PROD', true);
  try {
    cpu.disposeData(cpu.write(new Float32Array(1), [1], 'float32'));
  } finally {
    env.set('PROD', prod);
  }
}

/**
 * Imports tfjs-backend-wasm (which registers the 'wasm' factory) and initialises it once, with the
 * threaded build when threads > 1; if that build fails to start, falls back to one thread.
 */
async function loadWasm(threads: number, logger: Logger): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
  if (threads === 1 || tf.findBackend('wasm')) return;
  wasm.setThreadsCount(threads);
  const started = await withThreadedWasmShims(threads, () => tf.setBackend('wasm'));
  if (started) {
    unrefPoolThreads(tf.findBackend('wasm') as BackendWasm);
    return;
  }
  logger.warn('wasm threaded build failed to start; using one thread', { threads });
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  wasm.setThreadsCount(1);
}

async function wasmThreads(): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  return wasm.getThreadsCount();
}

function closeTfjsBackend(tfjsName: string): void {
  if (closed.has(tfjsName)) return;
  closed.add(tfjsName);
  if (tf.findBackendFactory(tfjsName)) tf.removeBackend(tfjsName);
}
