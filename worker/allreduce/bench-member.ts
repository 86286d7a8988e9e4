/**
 * One member process of `ssd-cluster bench allreduce` (forked by cli/commands/bench/allreduce.ts).
 *
 * IPC protocol, parent -> member (P) and member -> parent (M), in this order:
 *  1. P config   -> the member starts its peer server (and rank 1 a plain TCP sink)
 *  2. M listening {peerPort, tcpPort}
 *  3. P ring {addresses, tcpAddress} -> join generation 1, build inputs and the expected sum
 *  4. M ready
 *  5. P run {round} -> refill the buffer, all-reduce one value as a barrier (the gloo yardstick
 *     also starts each timed call after a barrier), time one bucketed all-reduce, check it
 *     M done {round, seconds, cpuMs, systemMs, minorFaults, ok, maxAbsError} (warm-up and timed)
 *  6. P tcp (rank 0 only) -> stream `bytes` to rank 1 over a plain socket, 1 + 3 times
 *     M tcp-done {seconds: median of the 3 timed transfers}
 *  7. P exit -> close everything; the process then ends by itself.
 * Any failure is reported as M error {message, code} before the member exits with code 1.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { ClusterError, errorMessage, isClusterError } from '../../shared/errors.js';
import { startPeerServer } from '../peer-service.js';
import { benchValues, checkSum, expectedSum } from './bench-data.js';
import { Inbox } from './bench-inbox.js';
import { allReduceBuckets, planBuckets } from './buckets.js';
import { GrpcRingTransport } from './grpc-transport.js';
import { type GradientCompression, ringAllReduce } from './ring.js';
import { neighbours } from './schedule.js';

export interface MemberConfig {
  rank: number;
  size: number;
  elements: number;
  seed: number;
  compression: GradientCompression;
  chunkBytes: number;
  bucketBytes: number;
  timeoutMs: number;
}

export type ParentMessage =
  | ({ type: 'config' } & MemberConfig)
  | { type: 'ring'; addresses: string[]; tcpAddress: { host: string; port: number } }
  | { type: 'run'; round: number }
  | { type: 'tcp' }
  | { type: 'exit' };

export type MemberMessage =
  | { type: 'listening'; peerPort: number; tcpPort: number | undefined }
  | { type: 'ready' }
  | {
      type: 'done';
      round: number;
      seconds: number;
      /** CPU time (user + system) this process spent in the all-reduce, in milliseconds. */
      cpuMs: number;
      /** The kernel's share of cpuMs (socket copies, page faults of fresh buffers). */
      systemMs: number;
      /** Minor page faults during the all-reduce (first touches of freshly mapped memory). */
      minorFaults: number;
      ok: boolean;
      firstBad: number;
      maxAbsError: number;
    }
  | { type: 'tcp-done'; seconds: number }
  | { type: 'error'; message: string; code: string };

const TCP_TRIALS = 3;

function send(msg: MemberMessage): void {
  process.send!(msg);
}

async function runMember(signal: AbortSignal): Promise<void> {
  const inbox = new Inbox<ParentMessage>(process, 'bench parent');
  const config = await inbox.next('config', signal);
  const bytes = config.elements * 4;
  const transport = new GrpcRingTransport({ connectTimeoutMs: config.timeoutMs });
  const server = await startPeerServer({ handler: transport, address: '127.0.0.1:0' });
  const sink = config.rank === 1 ? await startTcpSink(bytes) : undefined;
  try {
    send({ type: 'listening', peerPort: server.port, tcpPort: sink ? portOf(sink) : undefined });
    const ring = await inbox.next('ring', signal);
    const plan = planBuckets(config.elements, { bucketBytes: config.bucketBytes, layoutHash: 'bench' });
    const { left } = neighbours(config.rank, config.size);
    const membership = { generation: 1, rank: config.rank, size: config.size, layoutHash: plan.hash };
    // join() bounds itself with connectTimeoutMs (config.timeoutMs).
    await transport.join({ ...membership, leftAddress: ring.addresses[left]! }, signal);
    const input = benchValues(config.seed, config.rank, config.elements);
    const expected = expectedSum(config.seed, config.size, config.elements, config.compression === 'fp16');
    const buffer = new Float32Array(config.elements);
    send({ type: 'ready' });
    for (;;) {
      const msg = await inbox.next(['run', 'tcp', 'exit'], signal);
      if (msg.type === 'exit') return;
      if (msg.type === 'tcp') {
        send({ type: 'tcp-done', seconds: await timeTcp(ring.tcpAddress, bytes, signal) });
        continue;
      }
      buffer.set(input);
      const run = { ...membership, transport, signal, timeoutMs: config.timeoutMs };
      // Rounds 2k (barrier) and 2k+1 (timed) keep the two calls' messages apart.
      await ringAllReduce(new Float32Array(1), { ...run, round: 2 * msg.round });
      const measured = await measure(() =>
        allReduceBuckets(buffer, plan, {
          ...run,
          round: 2 * msg.round + 1,
          compression: config.compression,
          chunkBytes: config.chunkBytes,
        }),
      );
      send({
        type: 'done',
        round: msg.round,
        ...measured,
        ...checkSum(buffer, expected, config.size, config.compression),
      });
    }
  } finally {
    await transport.close();
    await server.close();
    sink?.close();
  }
}

/** Wall time, CPU time (user + system, and system alone) and minor page faults of `work`. */
async function measure(work: () => Promise<unknown>) {
  const cpuBefore = process.cpuUsage();
  const faultsBefore = process.resourceUsage().minorPageFault;
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    seconds,
    cpuMs: (cpu.user + cpu.system) / 1000,
    systemMs: cpu.system / 1000,
    minorFaults: process.resourceUsage().minorPageFault - faultsBefore,
  };
}

function portOf(server: Server): number {
  const address = server.address();
  if (!address || typeof address === 'string') throw new ClusterError('INTERNAL', 'tcp sink has no port');
  return address.port;
}

/** Counts what arrives and answers one byte per `bytes` received. */
function startTcpSink(bytes: number): Promise<Server> {
  const server = createServer((socket) => {
    let pending = 0;
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.length;
      while (pending >= bytes) {
        pending -= bytes;
        socket.write(Buffer.of(1));
      }
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** Median seconds of TCP_TRIALS transfers of `bytes` (after one warm-up) to the sink. */
async function timeTcp(
  address: { host: string; port: number },
  bytes: number,
  signal: AbortSignal,
): Promise<number> {
  const socket = createConnection(address);
  try {
    await waitFor(socket, 'connect', signal);
    const block = Buffer.alloc(Math.min(bytes, 1024 * 1024), 0x5a);
    const times: number[] = [];
    for (let trial = 0; trial <= TCP_TRIALS; trial++) {
      const started = performance.now();
      const acked = waitFor(socket, 'data', signal);
      for (let sent = 0; sent < bytes; sent += block.length) {
        const piece = sent + block.length <= bytes ? block : block.subarray(0, bytes - sent);
        if (!socket.write(piece)) await waitFor(socket, 'drain', signal);
      }
      await acked;
      if (trial > 0) times.push((performance.now() - started) / 1000);
    }
    return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  } finally {
    socket.destroy();
  }
}

function waitFor(socket: Socket, event: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: unknown) => {
      socket.off(event, done);
      reject(
        err instanceof Error
          ? new ClusterError('PEER_LOST', `tcp benchmark: ${err.message}`, { cause: err })
          : err,
      );
    };
    const done = () => {
      socket.off('error', fail);
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = () => fail(signal.reason);
    socket.once(event, done);
    socket.once('error', fail);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function main(): Promise<void> {
  const root = new AbortController();
  process.once('disconnect', () => root.abort(new ClusterError('ABORTED', 'the bench parent went away')));
  try {
    await runMember(root.signal);
  } catch (err) {
    if (process.connected) {
      send({ type: 'error', message: errorMessage(err), code: isClusterError(err) ? err.code : 'INTERNAL' });
    }
    process.exitCode = 1;
  } finally {
    if (process.connected) process.disconnect();
  }
}

if (process.send && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
