import { PassThrough } from 'node:stream';
import test from 'ava';
import { main } from '../../cli/main.js';
import { noopLogger } from '../../shared/logging.js';

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
