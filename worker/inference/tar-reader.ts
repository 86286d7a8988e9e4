/**
 * A small tar reader (pure), enough to open a model.tar.gz after gunzip: what worker/train/tar.ts
 * writes (flat ustar), and what `tar czf` makes of a model directory (GNU or pax headers, `./` names,
 * a directory entry). Regular files only; directories, links and devices are skipped.
 *
 * Layout: 512-byte header blocks, each followed by its data padded to a multiple of 512. The archive
 * ends at a zero block (two of them, normally). Numbers are NUL/space-terminated octal, or base-256
 * when the first byte has its high bit set (GNU, for sizes >= 8 GiB). The checksum is the byte sum of
 * the header with its own 8 bytes read as spaces. Names: ustar `prefix/name`; a GNU 'L' entry or a pax
 * 'x' entry's `path` record gives the long name of the entry that follows it.
 */
import { ClusterError } from '../../shared/errors.js';

export interface TarFile {
  /** Path inside the archive, without a leading `./`. */
  name: string;
  data: Uint8Array;
}

const BLOCK = 512;
const REGULAR = new Set(['0', '\0', '7']);

function fail(source: string, offset: number, message: string): never {
  throw new ClusterError('MODEL', `${source} at byte ${offset}: ${message}`);
}

function readString(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return Buffer.from(end < 0 ? field : field.subarray(0, end)).toString('utf8');
}

/** An octal or base-256 number field, or NaN when it is neither. */
function readNumber(block: Uint8Array, start: number, length: number): number {
  const field = block.subarray(start, start + length);
  if ((field[0]! & 0x80) !== 0) {
    let value = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = Buffer.from(field)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
  return /^[0-7]+$/.test(text) ? Number.parseInt(text, 8) : text === '' ? 0 : Number.NaN;
}

function checksumOk(block: Uint8Array): boolean {
  const stored = readNumber(block, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte >= 0x80 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed; // some old writers summed signed chars
}

/** The `path` record of a pax extended header ("<len> path=<value>\n" records), if any. */
function paxPath(data: Uint8Array): string | undefined {
  const text = Buffer.from(data).toString('utf8');
  let at = 0;
  let path: string | undefined;
  while (at < text.length) {
    const space = text.indexOf(' ', at);
    const length = Number.parseInt(text.slice(at, space), 10);
    if (space < 0 || !(length > 0)) break;
    const record = text.slice(space + 1, at + length - 1);
    if (record.startsWith('path=')) path = record.slice('path='.length);
    at += length;
  }
  return path;
}

const normalise = (name: string) => name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');

/** The regular files of an (uncompressed) tar archive, in archive order. `source` names it in errors. */
export function readTar(archive: Uint8Array, source: string): TarFile[] {
  const files: TarFile[] = [];
  let offset = 0;
  let longName: string | undefined;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) return files;
    if (!checksumOk(header)) fail(source, offset, 'tar header checksum does not match (not a tar archive?)');
    const size = readNumber(header, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) fail(source, offset, 'tar header has a bad size field');
    const start = offset + BLOCK;
    if (start + size > archive.length) {
      fail(source, offset, `tar entry of ${size} bytes runs past the end of the archive`);
    }
    const data = archive.subarray(start, start + size);
    const type = String.fromCharCode(header[156]!);
    const prefix = readString(header, 345, 155);
    const name =
      longName ?? (prefix ? `${prefix}/${readString(header, 0, 100)}` : readString(header, 0, 100));
    longName = undefined;
    if (type === 'L') longName = readString(data, 0, data.length);
    else if (type === 'x') longName = paxPath(data);
    else if (REGULAR.has(type)) files.push({ name: normalise(name), data });
    offset = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  if (offset !== archive.length) fail(source, offset, 'tar archive ends inside a header block');
  if (files.length === 0 && archive.length === 0) fail(source, 0, 'the tar archive is empty');
  return files;
}
