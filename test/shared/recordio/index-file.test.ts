import fs from 'node:fs/promises';
import test from 'ava';
import { RecordIOError } from '../../../shared/errors.js';
import { formatIndexFile, formatIndexLine, parseIndexFile } from '../../../shared/recordio/index-file.js';
import { DOG, DOG_IDX } from '../../helpers/recordio-fixtures.js';

test('parseIndexFile reads the im2rec .idx of the dog file', async (t) => {
  const entries = parseIndexFile(await fs.readFile(DOG_IDX, 'utf8'), DOG_IDX);
  t.deepEqual(
    entries.map((e) => [e.key, e.offset, e.line]),
    DOG.offsets.map((offset, i) => [i, offset, i + 1]),
  );
});

test('parseIndexFile keeps non-integer keys as strings and tolerates CRLF and a missing final newline', (t) => {
  const entries = parseIndexFile('img_007\t0\r\n-3\t16\r\n9007199254740993\t32', 'x.idx');
  t.deepEqual(
    entries.map((e) => [e.key, e.offset]),
    [
      ['img_007', 0],
      [-3, 16],
      ['9007199254740993', 32],
    ],
  );
});

test('parseIndexFile errors name the file, the byte offset and the line', (t) => {
  const cases: [string, string][] = [
    ['0\t0\n1 16\n', 'x.idx at byte 4: line 2: expected "key<TAB>offset", got "1 16"'],
    ['0\t0\n1\t-16\n', 'x.idx at byte 4: line 2: offset "-16" is not a non-negative integer'],
    ['0\t0\n1\t1.5\n', 'x.idx at byte 4: line 2: offset "1.5" is not a non-negative integer'],
    ['0\t0\n\n', 'x.idx at byte 4: line 2: expected "key<TAB>offset", got ""'],
    ['0\t0\n1\t8\n0\t16\n', 'x.idx at byte 8: line 3: duplicate key "0" (first on line 1)'],
  ];
  for (const [text, message] of cases) {
    const err = t.throws(() => parseIndexFile(text, 'x.idx'), { instanceOf: RecordIOError });
    t.is(err.message, message);
  }
});

test('formatIndexFile writes what parseIndexFile reads back', (t) => {
  const entries = [
    { key: 0, offset: 0 },
    { key: 'a b', offset: 163868 },
    { key: 12, offset: 327736 },
  ];
  const text = formatIndexFile(entries);
  t.is(text, '0\t0\na b\t163868\n12\t327736\n');
  t.deepEqual(
    parseIndexFile(text, 'x.idx').map(({ key, offset }) => ({ key, offset })),
    entries,
  );
});

test('formatIndexLine rejects keys and offsets an .idx cannot hold', (t) => {
  t.throws(() => formatIndexLine('a\tb', 0), { message: /must be non-empty, without tabs/ });
  t.throws(() => formatIndexLine('', 0), { message: /must be non-empty/ });
  t.throws(() => formatIndexLine(1.5, 0), { message: /key 1.5 must be an integer/ });
  t.throws(() => formatIndexLine(1, -4), { message: /offset -4 must be a non-negative integer/ });
});
