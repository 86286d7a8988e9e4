import test from 'ava';
import { DOG, DOG_REC, dogOnS3 } from '../../helpers/recordio-fixtures.js';
import { runCli } from '../../helpers/run-cli.js';

function bench(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(['bench', 'recordio', ...args], { env });
}

test('bench recordio --json prints one object counting the records, labels and bytes of the dog file', async (t) => {
  const { code, stdout, stderr } = await bench([DOG_REC, '--json']);
  t.is(stderr, '');
  t.is(code, 0);
  const lines = stdout.trim().split('\n');
  t.is(lines.length, 1);
  const result = JSON.parse(lines[0]!);
  t.like(result, { source: DOG_REC, records: 4, bytes: DOG.sizeBytes, detectionLabels: 4, objects: 12 });
  for (const key of [
    'seconds',
    'recordsPerSecond',
    'megabytesPerSecond',
    'catSeconds',
    'catMegabytesPerSecond',
    'scanToCatRatio',
    'readSeconds',
    'freshScanSeconds',
    'freshScanMegabytesPerSecond',
    'decodeSeconds',
  ]) {
    t.true(Number.isFinite(result[key]) && result[key] > 0, `${key} = ${result[key]}`);
  }
});

test('bench recordio prints a one-line summary that names the scan, cat and fresh-chunk figures', async (t) => {
  const { code, stdout } = await bench([DOG_REC]);
  t.is(code, 0);
  t.true(stdout.startsWith(`${DOG_REC}: 4 records, 0.7 MB; `), stdout);
  t.regex(
    stdout,
    /; scan [\d.e+]+ MB\/s, cat [\d.e+]+ MB\/s \(scan takes [\d.e+]+x as long\), fs reads [\d.e+]+ MB\/s, scan with fresh chunks [\d.e+]+ MB\/s, decoder alone [\d.e+]+ MB\/s\n$/,
  );
});

test('bench recordio fails on a missing source and asks for exactly one SOURCE', async (t) => {
  const none = await bench(['--json']);
  t.is(none.code, 2);
  t.regex(none.stderr, /expected one SOURCE, got 0/);
  const missing = await bench(['/nonexistent/x.rec']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /\/nonexistent\/x\.rec/);
});

test('bench recordio reads an s3:// source through --s3-endpoint, with no decoder-only figure', async (t) => {
  const { endpoint, url, env } = await dogOnS3(t);
  const { code, stdout, stderr } = await bench([url, '--json', '--s3-endpoint', endpoint], env);
  t.is(stderr, '');
  t.is(code, 0);
  t.like(JSON.parse(stdout), {
    source: url,
    records: 4,
    bytes: DOG.sizeBytes,
    readSeconds: null,
    decodeSeconds: null,
    objects: 12,
  });
});
