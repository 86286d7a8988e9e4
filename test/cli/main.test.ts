import { PassThrough } from 'node:stream';
import test from 'ava';
import { main } from '../../cli/main.js';
import { noopLogger } from '../../shared/logging.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => {
    text += c.toString();
  });
  return { stream, text: () => text };
}

test('main lists the commands and exits 2 when no command is given', async (t) => {
  const out = capture();
  const code = await main([], { stdout: out.stream, stderr: out.stream, logger: noopLogger });
  t.is(code, 2);
  t.regex(out.text(), /Usage: ssd-cluster COMMAND/);
  t.regex(out.text(), /inspect/);
});

test('main rejects an unknown command with exit code 2 naming it', async (t) => {
  const err = capture();
  const code = await main(['frobnicate'], { stdout: err.stream, stderr: err.stream, logger: noopLogger });
  t.is(code, 2);
  t.regex(err.text(), /unknown command 'frobnicate'/);
});

async function run(argv: string[]) {
  const out = capture();
  const err = capture();
  const code = await main(argv, { stdout: out.stream, stderr: err.stream, logger: noopLogger });
  return { code, stdout: out.text(), stderr: err.text() };
}

const BENCHES = ['recordio', 'step', 'allreduce', 'learn', 'scaling'] as const;

test("bench NAME --help prints that benchmark's own usage, wherever --help stands", async (t) => {
  for (const name of BENCHES) {
    const { command } = await import(`../../cli/commands/bench/${name}.js`);
    const expected = `${command.usage.trimEnd()}\n`;
    t.true(expected.startsWith(`Usage: ssd-cluster bench ${name} `), name);
    t.deepEqual(await run(['bench', name, '--help']), { code: 0, stdout: expected, stderr: '' }, name);
    t.is((await run(['bench', name, '--json', '-h'])).stdout, expected, `${name} -h after an option`);
  }
});

test('bench --help lists every benchmark, and bench with an unknown NAME and --help names it with exit code 2', async (t) => {
  const list = await run(['bench', '--help']);
  t.is(list.code, 0);
  t.regex(list.stdout, /^Usage: ssd-cluster bench NAME/);
  for (const name of BENCHES) t.regex(list.stdout, new RegExp(`^  ${name} `, 'm'));
  const unknown = await run(['bench', 'frobnicate', '--help']);
  t.is(unknown.code, 2);
  t.is(unknown.stdout, '');
  t.regex(
    unknown.stderr,
    /bench: expected one of recordio, step, allreduce, learn, scaling, got 'frobnicate'/,
  );
});

test('main prints the version for --version, -V and version, exit code 0', async (t) => {
  for (const flag of ['--version', '-V', 'version']) {
    const { code, stdout } = await run([flag]);
    t.is(code, 0, flag);
    t.is(stdout, `ssd-cluster ${SSD_CLUSTER_VERSION} (node ${process.version})\n`, flag);
  }
});

test('main takes the last --log-level, as the command parser does, and names a bad one', async (t) => {
  const out = capture();
  const err = capture();
  // No injected logger: main builds its own from --log-level.
  const argv = ['inspect', '--log-level', 'warn', '--log-level', 'loud', 'x.rec'];
  const code = await main(argv, { stdout: out.stream, stderr: err.stream });
  t.is(code, 2);
  t.is(
    err.text(),
    "ssd-cluster inspect: --log-level: expected one of debug, info, warn, error, silent, got 'loud'\n",
  );
});
