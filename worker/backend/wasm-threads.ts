import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Running tfjs-backend-wasm's threaded SIMD build under Node 20. tfjs 4.22 never picks it in Node
 * (WASM_HAS_MULTITHREAD_SUPPORT is hard-wired false there, tfjs issue #3830), and forcing the flag
 * alone fails: emscripten starts its pthreads with `new Worker(blob:...)`, which Node rejects. Three
 * shims, all in place only while the backend initialises (emscripten creates its whole pool of
 * pthread workers during init, so nothing needs them later):
 * 1. the flag is forced true, so tfjs loads the threaded build;
 * 2. URL.createObjectURL returns the path of wasm-pthread-worker.cjs for the worker-script Blob;
 *    that bootstrap runs the same emscripten worker code from node_modules;
 * 3. os.cpus() reports 2 x threads CPUs, because the C++ side caps the XNNPACK pool at
 *    cpus / 2 ("2 threads per core") and would give a 2-core host a single thread.
 */

/** emscripten pre-spawns 8 pthreads in this build and XNNPACK's pool never takes more. */
export const MAX_WASM_THREADS = 8;

export const PTHREAD_WORKER_PATH = fileURLToPath(new URL('./wasm-pthread-worker.cjs', import.meta.url));

/** The MIME type tfjs gives the Blob of the worker script (the main-module Blob is text/javascript). */
const WORKER_BLOB_TYPE = 'application/javascript';

export async function withThreadedWasmShims<T>(threads: number, init: () => Promise<T>): Promise<T> {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  const realCpus = os.cpus;
  const realCreateObjectURL = URL.createObjectURL;
  os.cpus = () => {
    const cpus = realCpus();
    return Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]!);
  };
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === WORKER_BLOB_TYPE ? PTHREAD_WORKER_PATH : realCreateObjectURL(obj);
  try {
    return await init();
  } finally {
    os.cpus = realCpus;
    URL.createObjectURL = realCreateObjectURL;
  }
}

/**
 * Lets the process exit while XNNPACK's pool threads idle. emscripten refs a pthread's Worker for as
 * long as the pthread runs, and the pool's threads run until the backend is disposed, so without this
 * a process that never calls Backend.close() would not exit. The main thread waits for the pool
 * synchronously during each kernel, so unref'd workers still do all their work. Returns how many.
 */
export function unrefPoolThreads(backend: BackendWasm): number {
  const pthreads = (backend.wasm as { PThread?: { runningWorkers?: { unref(): void }[] } }).PThread;
  const running = pthreads?.runningWorkers ?? [];
  for (const worker of running) worker.unref();
  return running.length;
}
