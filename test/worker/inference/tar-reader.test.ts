import { execFileSync } from 'node:child_process';
import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { readTar } from '../../../worker/inference/tar-reader.js';
import { createTar } from '../../../worker/train/tar.js';

const BLOCK = 512;
const bytes = (text: string) => new Uint8Array(Buffer.from(text));

/** A header of createTar's for `name`/`size`, then given another type flag (and prefix) with its checksum redone. */
function header(name: string, size: number, type: string, prefix = ''): Buffer {
  const block = Buffer.from(createTar([{ name, data: new Uint8Array(size) }]).subarray(0, BLOCK));
  block.write(type, 156, 1, 'latin1');
  block.write(prefix, 345, 155, 'utf8');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

const padded = (data: Uint8Array) =>
  Buffer.concat([data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)]);
const names = (archive: Uint8Array) => readTar(archive, 'a.tar').map((f) => f.name);

test('readTar returns the files createTar wrote, with their bytes', (t) => {
  const entries = [
    { name: 'model.json', data: bytes('{"a":1}') },
    { name: 'empty.bin', data: new Uint8Array(0) },
    { name: 'group1-shard1of1.bin', data: Uint8Array.from({ length: 1300 }, (_, i) => i % 256) },
  ];
  const files = readTar(createTar(entries), 'model.tar');
  t.deepEqual(
    files.map((f) => [f.name, Buffer.from(f.data).toString('hex')]),
    entries.map((e) => [e.name, Buffer.from(e.data).toString('hex')]),
  );
});

test('readTar joins the ustar prefix, strips ./ and skips directory entries', (t) => {
  const archive = Buffer.concat([
    header('./', 0, '5'),
    header('model.json', 3, '0', './out'),
    padded(bytes('abc')),
    Buffer.alloc(2 * BLOCK),
  ]);
  t.deepEqual(names(archive), ['out/model.json']);
});

test('readTar takes long names from GNU L entries and pax path records', (t) => {
  const long = `${'d'.repeat(120)}/model.json`;
  const record = ` path=${long}\n`;
  const length = record.length + String(record.length + 3).length; // the length counts its own digits
  const pax = bytes(`${length}${record}`);
  const archive = Buffer.concat([
    header('././@LongLink', long.length + 1, 'L'),
    padded(bytes(`${long}\0`)),
    header('short-a', 1, '0'),
    padded(bytes('a')),
    header('PaxHeaders/x', pax.length, 'x'),
    padded(pax),
    header('short-b', 1, '0'),
    padded(bytes('b')),
    header('after', 0, '0'),
  ]);
  t.deepEqual(names(archive), [long, long, 'after']);
});

test('readTar reads what the system tar writes in gnu, pax and ustar formats', (t) => {
  for (const format of ['gnu', 'pax', 'ustar']) {
    let archive: Buffer;
    try {
      archive = execFileSync('tar', ['-c', `--format=${format}`, '-C', 'worker', 'inference'], {
        maxBuffer: 1 << 24,
      });
    } catch {
      return t.pass('no GNU tar on this machine');
    }
    const file = readTar(archive, `${format}.tar`).find((f) => f.name === 'inference/tar-reader.ts');
    t.truthy(file, format);
    t.true(Buffer.from(file!.data).toString('utf8').startsWith('/**'), format);
  }
});

test('readTar names the archive and offset for a bad checksum, a truncated entry and a cut header', (t) => {
  const good = header('model.json', 600, '0');
  const corrupt = Buffer.from(good);
  corrupt[0] = 0x41;
  const cases: [Buffer, RegExp][] = [
    [corrupt, /a\.tar at byte 0: tar header checksum does not match/],
    [Buffer.concat([good, Buffer.alloc(100)]), /a\.tar at byte 0: tar entry of 600 bytes runs past the end/],
    [
      Buffer.concat([header('x', 0, '0'), Buffer.alloc(100, 1)]),
      /a\.tar at byte 512: tar archive ends inside a header/,
    ],
  ];
  for (const [archive, message] of cases) {
    const err = t.throws(() => readTar(archive, 'a.tar'), { message });
    t.true(isClusterError(err, 'MODEL'));
  }
});
