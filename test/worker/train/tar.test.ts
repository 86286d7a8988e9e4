import test from 'ava';
import { createTar } from '../../../worker/train/tar.js';

/** Reads a ustar archive back, checking every header's checksum and the end blocks. */
function readTar(archive: Buffer) {
  const files: { name: string; data: Buffer; mode: number; mtime: number; type: string }[] = [];
  let at = 0;
  const octal = (from: number, length: number) =>
    Number.parseInt(archive.toString('latin1', from, from + length).replace(/[\0 ]+$/, ''), 8);
  while (archive.subarray(at, at + 512).some((b) => b !== 0)) {
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : archive[at + i]!;
    if (octal(at + 148, 8) !== sum) throw new Error(`bad checksum at ${at}`);
    const size = octal(at + 124, 12);
    files.push({
      name: archive.toString('utf8', at, at + 100).replace(/\0+$/, ''),
      mode: octal(at + 100, 8),
      mtime: octal(at + 136, 12),
      type: archive.toString('latin1', at + 156, at + 157),
      data: archive.subarray(at + 512, at + 512 + size),
    });
    if (archive.toString('latin1', at + 257, at + 263) !== 'ustar\0') throw new Error('not ustar');
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return { files, endBlocks: archive.length - at };
}

test('createTar writes ustar entries with valid checksums, padded data and two end blocks', (t) => {
  const a = Buffer.from('{"x": 1}\n');
  const b = Buffer.alloc(1300, 7);
  const archive = createTar([
    { name: 'hyperparams.json', data: a, mtime: 1700000000 },
    { name: 'group1-shard1of1.bin', data: b },
  ]);
  t.is(archive.length % 512, 0);
  const { files, endBlocks } = readTar(archive);
  t.is(endBlocks, 1024);
  t.deepEqual(
    files.map((f) => [f.name, f.data.length, f.mode, f.mtime, f.type]),
    [
      ['hyperparams.json', a.length, 0o644, 1700000000, '0'],
      ['group1-shard1of1.bin', 1300, 0o644, 0, '0'],
    ],
  );
  t.deepEqual(files[0]!.data, a);
  t.deepEqual(files[1]!.data, b);
});

test('createTar stores an empty file as a header alone', (t) => {
  const { files } = readTar(createTar([{ name: 'empty', data: new Uint8Array(0) }]));
  t.is(files.length, 1);
  t.is(files[0]!.data.length, 0);
});

test('createTar refuses a name longer than the 100-byte field', (t) => {
  t.throws(() => createTar([{ name: 'x'.repeat(101), data: new Uint8Array(1) }]), { message: /1-100 bytes/ });
});
