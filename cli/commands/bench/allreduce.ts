import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { deadline } from '../../../shared/abort.js';
import { ClusterError, UsageError } from '../../../shared/errors.js';
import { Inbox } from '../../../worker/allreduce/bench-inbox.js';
import type { MemberConfig, MemberMessage, ParentMessage } from '../../../worker/allreduce/bench-member.js';
import { DEFAULT_BUCKET_BYTES } from '../../../worker/allreduce/buckets.js';
import { RING_NODE_FLAGS } from '../../../worker/allreduce/grpc-transport.js';
import {
  DEFAULT_CHUNK_BYTES,
  type GradientCompression,
  MAX_CHUNK_BYTES,
} from '../../../worker/allreduce/ring.js';
import { intFlag, numberFlag, parseCommandArgs } from '../../args.js';
import { type CliCommand, writeJsonLine } from '../../command.js';

const MEMBER_FILE = fileURLToPath(new URL('../../../worker/allreduce/bench-member.ts', import.meta.url));
const MIB = 1024 * 1024;

const usage = `Usage: ssd-cluster bench allreduce --workers N --size-mb S [options] [--json]

Sums S MiB of float32 values across N worker processes on 127.0.0.1 with the gRPC ring
all-reduce, checks every result against the exact sum, and reports the median time of the timed
iterations. busbw = algbw * 2(N-1)/N as nccl-tests define it; rawTcpGBps is a plain TCP stream of
the same byte count between two of the same processes, in the same run.

Options:
  --workers N                 worker processes, >= 2 (required)
  --size-mb S                 MiB all-reduced per iteration (required)
  --iterations K              timed iterations (default 5)
  --warmup W                  untimed iterations first (default 1)
  --gradient-compression C    none | fp16 (default none)
  --chunk-kb K                KiB of float32 per ring message (default 2048)
  --bucket-mb B               MiB per gradient bucket (default 25)
  --seed N                    input seed (default 1)
  --timeout-ms T              deadline of every wait (default 120000)
  --json                      print one JSON object
`;

const options = {
  workers: { type: 'string' },
  'size-mb': { type: 'string' },
  iterations: { type: 'string' },
  warmup: { type: 'string' },
  'gradient-compression': { type: 'string' },
  'chunk-kb': { type: 'string' },
  'bucket-mb': { type: 'string' },
  seed: { type: 'string' },
  'timeout-ms': { type: 'string' },
  json: { type: 'boolean' },
} as const;

interface BenchPlan {
  workers: number;
  bytes: number;
  iterations: number;
  warmup: number;
  member: Omit<MemberConfig, 'rank'>;
}

function compile(argv: string[]): BenchPlan & { json: boolean } {
  const { values } = parseCommandArgs('bench allreduce', argv, options);
  const workers = intFlag('workers', values.workers, { min: 2, max: 64 });
  const sizeMb = numberFlag('size-mb', values['size-mb']);
  if (workers === undefined) throw new UsageError('bench allreduce: --workers is required');
  if (sizeMb === undefined || sizeMb <= 0)
    throw new UsageError('bench allreduce: --size-mb must be a number > 0');
  const compression = values['gradient-compression'] ?? 'none';
  if (compression !== 'none' && compression !== 'fp16')
    throw new UsageError(`--gradient-compression: expected none or fp16, got '${compression}'`);
  const elements = Math.max(1, Math.floor((sizeMb * MIB) / 4));
  const chunkKb = intFlag('chunk-kb', values['chunk-kb'], { min: 1, max: MAX_CHUNK_BYTES / 1024 });
  const bucketMb = numberFlag('bucket-mb', values['bucket-mb']);
  if (bucketMb !== undefined && bucketMb <= 0) throw new UsageError('--bucket-mb: must be > 0');
  return {
    json: values.json ?? false,
    workers,
    bytes: elements * 4,
    iterations: intFlag('iterations', values.iterations, { min: 1 }) ?? 5,
    warmup: intFlag('warmup', values.warmup, { min: 0 }) ?? 1,
    member: {
      size: workers,
      elements,
      seed: intFlag('seed', values.seed, { min: 0 }) ?? 1,
      compression: compression as GradientCompression,
      chunkBytes: chunkKb === undefined ? DEFAULT_CHUNK_BYTES : chunkKb * 1024,
      bucketBytes:
        bucketMb === undefined ? DEFAULT_BUCKET_BYTES : Math.max(4, Math.floor((bucketMb * MIB) / 4) * 4),
      timeoutMs: intFlag('timeout-ms', values['timeout-ms'], { min: 1 }) ?? 120_000,
    },
  };
}

interface Member {
  rank: number;
  child: ChildProcess;
  inbox: Inbox<MemberMessage>;
  send(msg: ParentMessage): void;
}

function spawnMember(rank: number): Member {
  // Members run the TypeScript sources through tsx's loader, like bin/ssd-cluster.js does, with
  // the heap flags a ring process should have (see RING_NODE_FLAGS).
  const child = fork(MEMBER_FILE, [], {
    execArgv: ['--import', import.meta.resolve('tsx'), ...RING_NODE_FLAGS],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return {
    rank,
    child,
    inbox: new Inbox<MemberMessage>(child, `bench member rank ${rank}`),
    send: (msg) => {
      if (child.connected) child.send(msg);
    },
  };
}

export interface AllReduceBenchResult {
  workers: number;
  bytes: number;
  medianSeconds: number;
  algbwGBps: number;
  busbwGBps: number;
  rawTcpGBps: number;
  iterations: number;
  compression: GradientCompression;
  chunkBytes: number;
  bucketBytes: number;
  verified: boolean;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One iteration on every member: the slowest rank's time, after checking every rank's sum. */
async function runRound(members: Member[], round: number, signal: AbortSignal): Promise<number> {
  for (const m of members) m.send({ type: 'run', round });
  const done = await Promise.all(members.map((m) => m.inbox.next('done', signal)));
  for (const [rank, d] of done.entries()) {
    if (!d.ok) {
      throw new ClusterError(
        'INTERNAL',
        `bench allreduce: rank ${rank} round ${round} differs from the exact sum at element ${d.firstBad} ` +
          `(largest error ${d.maxAbsError})`,
      );
    }
  }
  return Math.max(...done.map((d) => d.seconds));
}

async function runBench(
  plan: BenchPlan,
  members: Member[],
  signal: AbortSignal,
): Promise<AllReduceBenchResult> {
  for (const m of members) m.send({ type: 'config', rank: m.rank, ...plan.member });
  const listening = await Promise.all(members.map((m) => m.inbox.next('listening', signal)));
  const addresses = listening.map((l) => `127.0.0.1:${l.peerPort}`);
  const tcpAddress = { host: '127.0.0.1', port: listening[1]!.tcpPort! };
  for (const m of members) m.send({ type: 'ring', addresses, tcpAddress });
  await Promise.all(members.map((m) => m.inbox.next('ready', signal)));
  let round = 0;
  for (let i = 0; i < plan.warmup; i++) await runRound(members, round++, signal);
  const times: number[] = [];
  for (let i = 0; i < plan.iterations; i++) times.push(await runRound(members, round++, signal));
  members[0]!.send({ type: 'tcp' });
  const tcp = await members[0]!.inbox.next('tcp-done', signal);
  const medianSeconds = median(times);
  const algbwGBps = plan.bytes / medianSeconds / 1e9;
  const n = plan.workers;
  return {
    workers: n,
    bytes: plan.bytes,
    medianSeconds,
    algbwGBps,
    busbwGBps: (algbwGBps * 2 * (n - 1)) / n,
    rawTcpGBps: plan.bytes / tcp.seconds / 1e9,
    iterations: plan.iterations,
    compression: plan.member.compression,
    chunkBytes: plan.member.chunkBytes,
    bucketBytes: plan.member.bucketBytes,
    verified: true,
  };
}

/** Asks every member to exit, then ends the ones that do not within the grace period. */
async function stopMembers(members: Member[], graceMs: number): Promise<void> {
  await Promise.all(
    members.map(async ({ child, send }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      send({ type: 'exit' });
      try {
        await once(child, 'exit', { signal: AbortSignal.timeout(graceMs) });
      } catch {
        child.kill('SIGKILL');
      }
    }),
  );
}

export const command: CliCommand = {
  name: 'bench allreduce',
  summary: 'ring all-reduce across N real worker processes on 127.0.0.1',
  usage,
  async run(argv, ctx) {
    const plan = compile(argv);
    const members = Array.from({ length: plan.workers }, (_, rank) => spawnMember(rank));
    const limit = deadline(ctx.signal, plan.member.timeoutMs * (plan.warmup + plan.iterations + 4));
    let result: AllReduceBenchResult;
    try {
      result = await runBench(plan, members, limit.signal);
    } finally {
      limit.clear();
      await stopMembers(members, 5000);
    }
    if (plan.json) writeJsonLine(ctx.stdout, result);
    else {
      ctx.stdout.write(
        `allreduce ${plan.workers} workers, ${(result.bytes / MIB).toFixed(1)} MiB: median ${(result.medianSeconds * 1000).toFixed(1)} ms, ` +
          `algbw ${result.algbwGBps.toFixed(3)} GB/s, busbw ${result.busbwGBps.toFixed(3)} GB/s, raw TCP ${result.rawTcpGBps.toFixed(3)} GB/s (verified)\n`,
      );
    }
    return 0;
  },
};
