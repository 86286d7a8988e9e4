import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { runCli } from '../../helpers/run-cli.js';

test('local refuses a --model-dir that is a file before it makes a data set or starts a worker', async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'local-outputs-'));
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const file = path.join(root, 'model-is-a-file');
  await fs.writeFile(file, 'keep me');
  const cache = path.join(root, 'cache');
  const run = await runCli(
    ['local', '--workers', '1', '--model-dir', file, '--run-dir', path.join(root, 'run')],
    {
      env: { SSD_CLUSTER_CACHE: cache },
    },
  );
  t.is(run.code, 2, run.stderr);
  t.is(run.stderr, `ssd-cluster local: --model-dir ${file}: a file is in the way; pass a folder\n`);
  t.is(await fs.readFile(file, 'utf8'), 'keep me');
  t.deepEqual(await fs.readdir(root), ['model-is-a-file'], 'no data set, run folder or worker log');
});
