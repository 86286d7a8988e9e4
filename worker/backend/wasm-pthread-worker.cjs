'use strict';
/*
 * Bootstrap of one pthread of tfjs-backend-wasm's threaded SIMD build under Node (see wasm-threads.ts).
 * tfjs hands emscripten a Blob URL for this script and a Blob for the main module; Node's Worker and
 * readFileSync cannot open blob: URLs, so wasm-threads.ts points the Worker here instead, and here the
 * main module's Blob is swapped for the factory file on disk (the same code the Blob holds).
 * Order matters: createObjectURL is replaced before the emscripten worker script runs, because that
 * script calls it when the 'load' message arrives.
 */
const factoryPath = require.resolve(
  '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js',
);
const {
  wasmWorkerContents,
} = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js');
URL.createObjectURL = () => factoryPath;
URL.revokeObjectURL = () => {};
// The script is the emscripten pthread runtime shipped by tfjs; it needs this module's `require` and
// `__filename`, hence a direct eval. Its newlines live inside string literals: escape them as tfjs does.
// biome-ignore lint/security/noGlobalEval: runs the emscripten worker script tfjs ships as a string
eval(wasmWorkerContents.replace(/\n/g, '\\n'));
