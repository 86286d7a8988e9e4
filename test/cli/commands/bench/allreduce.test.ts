import test from 'ava';
import { runCli } from '../../../helpers/run-cli.js';

test('bench allreduce spawns two workers, verifies the sums and prints the JSON keys', async (t) => {
  const run = await runCli(
    ['bench', 'allreduce', '--workers', '2', '--size-mb', '4', '--iterations', '2', '--json'],
    {
      signal: AbortSignal.timeout(60_000),
    },
  );
  t.is(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  for (const key of ['workers', 'bytes', 'medianSeconds', 'algbwGBps', 'busbwGBps', 'rawTcpGBps']) {
    t.true(Number.isFinite(result[key]) && result[key] > 0, `${key}: ${result[key]}`);
  }
  t.is(result.workers, 2);
  t.is(result.bytes, 4 * 1024 * 1024);
  t.is(result.verified, true);
  t.is(result.algbwGBps, result.bytes / result.medianSeconds / 1e9);
  t.is(result.busbwGBps, result.algbwGBps, 'busbw = algbw * 2(N-1)/N = algbw for N = 2');
});

test('bench allreduce with three workers and fp16 compression verifies within the bound', async (t) => {
  const argv = [
    'bench',
    'allreduce',
    '--workers',
    '3',
    '--size-mb',
    '1',
    '--iterations',
    '1',
    '--warmup',
    '0',
  ];
  const run = await runCli([...argv, '--gradient-compression', 'fp16', '--chunk-kb', '64', '--json'], {
    signal: AbortSignal.timeout(60_000),
  });
  t.is(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  t.is(result.compression, 'fp16');
  t.is(result.busbwGBps, (result.algbwGBps * 4) / 3);
});

test('bench allreduce rejects one worker with a usage error naming the flag', async (t) => {
  const run = await runCli(['bench', 'allreduce', '--workers', '1', '--size-mb', '4']);
  t.is(run.code, 2);
  t.regex(run.stderr, /--workers: expected an integer >= 2/);
});
