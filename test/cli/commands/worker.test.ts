import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test from 'ava';
import { parseCoordinatorAddress } from '../../../cli/commands/worker.js';
import { parseDecodeCacheFlag } from '../../../cli/decode-cache-flag.js';
import { main } from '../../../cli/main.js';
import { isClusterError } from '../../../shared/errors.js';
import { noopLogger } from '../../../shared/logging.js';
import { DEFAULT_DECODE_CACHE_MB } from '../../../worker/data/decoded-image-cache.js';
import { portInUse, runCliCatchingStderr } from '../../helpers/port-in-use.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (c: Buffer) => {
    stdout += c;
  });
  err.on('data', (c: Buffer) => {
    stderr += c;
  });
  const signal = AbortSignal.timeout(20_000);
  const code = await main(argv, { stdout: out, stderr: err, logger: noopLogger, env, signal });
  return { code, stdout, stderr };
}

const BAD_VALUES = ['-1', 'abc', '1.5', '', '1e9'];

test('parseDecodeCacheFlag turns MB into bytes, leaves an absent flag undefined and names the flag on bad values', (t) => {
  t.is(parseDecodeCacheFlag(undefined), undefined);
  t.is(parseDecodeCacheFlag('0'), 0);
  t.is(parseDecodeCacheFlag('256'), 256 * 1024 * 1024);
  for (const value of BAD_VALUES) {
    const err = t.throws(() => parseDecodeCacheFlag(value), undefined, value);
    t.true(isClusterError(err, 'USAGE'), value);
    t.regex(err!.message, /^--decode-cache-mb: expected an integer >= 0/, value);
  }
});

test('worker rejects a bad --decode-cache-mb with exit code 2 before it reaches the coordinator', async (t) => {
  for (const value of BAD_VALUES) {
    // Nothing listens on port 1: getting past the flag would fail differently (and later).
    const result = await run(['worker', '--coordinator', '127.0.0.1:1', `--decode-cache-mb=${value}`]);
    t.is(result.code, 2, value);
    t.regex(result.stderr, /^ssd-cluster worker: --decode-cache-mb: expected an integer >= 0/, value);
  }
});

test('local rejects a bad --decode-cache-mb with exit code 2 before it makes a data set', async (t) => {
  const cacheRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'decode-cache-flag-'));
  t.teardown(() => fs.rm(cacheRoot, { recursive: true, force: true }));
  const result = await run(['local', '--decode-cache-mb', 'lots'], { SSD_CLUSTER_CACHE: cacheRoot });
  t.is(result.code, 2);
  t.regex(result.stderr, /--decode-cache-mb: expected an integer >= 0 and <= 1048576, got 'lots'/);
  t.deepEqual(await fs.readdir(cacheRoot), []);
});

test('worker --help and local --help describe --decode-cache-mb with its default', async (t) => {
  const worker = await run(['worker', '--help']);
  t.regex(worker.stdout, new RegExp(`--decode-cache-mb MB .*\\(default ${DEFAULT_DECODE_CACHE_MB};`));
  t.regex((await run(['local', '--help'])).stdout, /--decode-cache-mb MB/);
});

test('worker names a malformed --coordinator (a URL, no port, a bad port) with exit code 2 instead of retrying', async (t) => {
  const cases: [string, RegExp][] = [
    [
      'http://127.0.0.1:7070',
      /--coordinator: expected HOST:PORT \(.*no scheme\), got 'http:\/\/127\.0\.0\.1:7070'/,
    ],
    ['127.0.0.1', /--coordinator: expected HOST:PORT .*got '127\.0\.0\.1'/],
    ['127.0.0.1:99999', /--coordinator: port 99999 is not in 1-65535/],
    ['127.0.0.1:0', /--coordinator: port 0 is not in 1-65535/],
    ['::1:7070', /--coordinator: expected HOST:PORT/],
  ];
  for (const [value, message] of cases) {
    const result = await run(['worker', '--coordinator', value, '--coordinator-timeout', '1']);
    t.is(result.code, 2, `${value}: ${result.stderr}`);
    t.regex(result.stderr, message, value);
  }
  const missing = await run(['worker']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--coordinator HOST:PORT is required/);
});

test('parseCoordinatorAddress accepts host names, IPv4 and bracketed IPv6 with a port', (t) => {
  for (const value of ['localhost:7070', '10.0.0.5:1', 'coord-0.cluster.local:65535', '[::1]:7070']) {
    t.is(parseCoordinatorAddress(value), value);
  }
});

test.serial(
  'worker --metrics-port on a port in use prints only its error, naming the flag and port',
  async (t) => {
    const port = await portInUse(t);
    const run = await runCliCatchingStderr([
      ...[
        'worker',
        '--coordinator',
        '127.0.0.1:1',
        '--coordinator-timeout',
        '1',
        '--metrics-port',
        String(port),
      ],
    ]);
    t.is(run.code, 1);
    t.regex(
      run.stderr,
      new RegExp(
        `^ssd-cluster worker: --metrics-port ${port}: .*cannot listen on 0\\.0\\.0\\.0:${port}: .*EADDRINUSE[^\\n]*\\n$`,
      ),
    );
    t.is(run.processStderr, '');
  },
);
