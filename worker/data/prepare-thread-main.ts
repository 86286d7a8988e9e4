/**
 * The prepare thread's side of the protocol in prepare-thread.ts: every job message is one
 * prepareSample call, run concurrently with the others (sharp queues its work on the process's libuv
 * pool); each answer carries the job's id and either the prepared sample, its pixels transferred, or
 * the error as plain data, and the decode cache's counters after the job. The cache (the start-up
 * data's budget; none when 0) is the thread's own and lives as long as it does.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ClusterError, errorMessage, isClusterError } from '../../shared/errors.js';
import { DecodedImageCache } from './decoded-image-cache.js';
import { prepareSample } from './prepare.js';
import type { PrepareJob, PrepareReply, PrepareThreadData } from './prepare-thread.js';

if (parentPort === null) throw new ClusterError('INTERNAL', 'prepare-thread-main.ts runs only as a thread');
const jobs = parentPort;
const { answers, decodeCacheBytes } = workerData as PrepareThreadData;
const cache = decodeCacheBytes > 0 ? new DecodedImageCache(decodeCacheBytes) : undefined;

async function answer(job: PrepareJob): Promise<void> {
  let reply: PrepareReply;
  try {
    const prepared = await prepareSample(job.sample, job.options, undefined, cache);
    reply = { id: job.id, ok: prepared, cache: cache?.stats() };
  } catch (err) {
    const code = isClusterError(err) ? err.code : 'INTERNAL';
    reply = { id: job.id, error: { code, message: errorMessage(err) }, cache: cache?.stats() };
  }
  answers.postMessage(reply, 'ok' in reply ? [reply.ok.pixels.buffer as ArrayBuffer] : []);
}

jobs.on('message', (job: PrepareJob) => {
  void answer(job);
});
