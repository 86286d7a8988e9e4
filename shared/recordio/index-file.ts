/**
 * The `.idx` file beside a `.rec` (SPEC part 1, 3.2): one text line per record, `key \t offset \n`, where
 * offset is the byte offset of the record's first magic. MXIndexedRecordIO writes `'%s\t%d\n' % (key, tell())`
 * and reads `int(key)` by default; keys are integers in im2rec files but may be strings, so a key that
 * reads as a safe integer becomes a number and anything else stays a string. Pure.
 */
import { ClusterError, RecordIOError } from '../errors.js';

export type RecordKey = number | string;

export interface IndexEntry {
  key: RecordKey;
  /** Byte offset of the record's first magic in the .rec file. */
  offset: number;
  /** 1-based line in the .idx (0 for entries that were not parsed from a file). */
  line: number;
}

const INTEGER = /^-?\d+$/;

/** A key as it reads back from an .idx line. */
export function parseIndexKey(text: string): RecordKey {
  if (INTEGER.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n;
  }
  return text;
}

/**
 * Parses an .idx text. Errors are RecordIOErrors naming the file, the byte offset of the line and the
 * line number: a line that is not `key<TAB>offset`, an offset that is not a non-negative integer, or a
 * key that appears twice (MXNet would silently keep the last one).
 */
export function parseIndexFile(text: string, source: string): IndexEntry[] {
  const entries: IndexEntry[] = [];
  const lineOfKey = new Map<string, number>();
  let start = 0;
  let lineNo = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 ? text.length : nl;
    lineNo++;
    const line = text.slice(start, end).replace(/\r$/, '');
    const fail = (why: string) =>
      new RecordIOError(source, Buffer.byteLength(text.slice(0, start)), `line ${lineNo}: ${why}`);
    const entry = parseIndexLine(line, lineNo, fail);
    const keyText = String(entry.key);
    const first = lineOfKey.get(keyText);
    if (first !== undefined) throw fail(`duplicate key ${JSON.stringify(keyText)} (first on line ${first})`);
    lineOfKey.set(keyText, lineNo);
    entries.push(entry);
    start = end + 1;
  }
  return entries;
}

function parseIndexLine(line: string, lineNo: number, fail: (why: string) => Error): IndexEntry {
  const fields = line.trim().split('\t');
  if (fields.length !== 2 || fields[0] === '') {
    throw fail(`expected "key<TAB>offset", got ${JSON.stringify(line.slice(0, 80))}`);
  }
  const offsetText = fields[1]!.trim();
  const offset = Number(offsetText);
  if (!/^\d+$/.test(offsetText) || !Number.isSafeInteger(offset)) {
    throw fail(`offset ${JSON.stringify(offsetText)} is not a non-negative integer`);
  }
  return { key: parseIndexKey(fields[0]!.trim()), offset, line: lineNo };
}

/** One .idx line, as MXIndexedRecordIO writes it. Keys may not contain a tab or a line break. */
export function formatIndexLine(key: RecordKey, offset: number): string {
  const text = String(key);
  if (text === '' || /[\t\r\n]/.test(text) || text.trim() !== text) {
    throw new ClusterError(
      'RECORDIO',
      `.idx key ${JSON.stringify(text)} must be non-empty, without tabs, line breaks or edge spaces`,
    );
  }
  if (typeof key === 'number' && !Number.isSafeInteger(key)) {
    throw new ClusterError('RECORDIO', `.idx key ${key} must be an integer (or a string)`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new ClusterError('RECORDIO', `.idx offset ${offset} must be a non-negative integer`);
  }
  return `${text}\t${offset}\n`;
}

export function formatIndexFile(entries: readonly Pick<IndexEntry, 'key' | 'offset'>[]): string {
  return entries.map((e) => formatIndexLine(e.key, e.offset)).join('');
}
