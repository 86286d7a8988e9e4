/**
 * A minimal POSIX ustar writer (pure), enough for model.tar.gz: regular files only, flat names.
 *
 * Layout (POSIX.1-1988 ustar): for each file a 512-byte header, then the data padded with zeros to a
 * multiple of 512; the archive ends with two zero blocks. Header fields are NUL-terminated octal
 * numbers; the checksum is the byte sum of the header with its own 8 bytes counted as spaces, written
 * as 6 octal digits, NUL, space (what GNU tar and Python's tarfile write).
 */
import { ClusterError } from '../../shared/errors.js';

export interface TarEntry {
  name: string;
  data: Uint8Array;
  /** Seconds since the Unix epoch (default 0, for reproducible archives). */
  mtime?: number;
}

const BLOCK = 512;

function writeString(header: Buffer, offset: number, length: number, value: string): void {
  header.write(value, offset, length, 'utf8');
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  // length - 1 digits, zero-padded, then NUL.
  writeString(header, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

function headerOf(entry: TarEntry): Buffer {
  const name = Buffer.from(entry.name, 'utf8');
  if (name.length === 0 || name.length > 100) {
    throw new ClusterError('INTERNAL', `tar: entry name '${entry.name}' must be 1-100 bytes`);
  }
  const header = Buffer.alloc(BLOCK);
  name.copy(header, 0);
  writeOctal(header, 100, 8, 0o644); // mode
  writeOctal(header, 108, 8, 0); // uid
  writeOctal(header, 116, 8, 0); // gid
  writeOctal(header, 124, 12, entry.data.length); // size
  writeOctal(header, 136, 12, Math.max(0, Math.floor(entry.mtime ?? 0))); // mtime
  header.fill(0x20, 148, 156); // checksum placeholder: spaces
  writeString(header, 156, 1, '0'); // regular file
  writeString(header, 257, 6, 'ustar\0');
  writeString(header, 263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  writeString(header, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return header;
}

/** The whole archive in memory. */
export function createTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(headerOf(entry), Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.length));
    const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
