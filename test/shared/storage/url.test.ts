import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import {
  basenameUrl,
  dirnameUrl,
  formatS3Url,
  joinUrl,
  parseS3Url,
  replaceExtension,
} from '../../../shared/storage/url.js';

const cases = test.macro<[(url: string) => string, string, string]>({
  exec(t, fn, input, expected) {
    t.is(fn(input), expected);
  },
  title: (provided, _fn, input, expected) => `${provided ?? ''} ('${input}' -> '${expected}')`.trim(),
});

test('parseS3Url splits bucket and key, keeping slashes inside the key', (t) => {
  t.deepEqual(parseS3Url('s3://my-bucket/train/a//b.rec'), { bucket: 'my-bucket', key: 'train/a//b.rec' });
  t.deepEqual(parseS3Url('s3://my-bucket/dir/'), { bucket: 'my-bucket', key: 'dir/' });
  t.deepEqual(parseS3Url('s3://my-bucket'), { bucket: 'my-bucket', key: '' });
  t.deepEqual(parseS3Url('s3://my-bucket/'), { bucket: 'my-bucket', key: '' });
});

for (const bad of [
  's3://',
  's3:///key',
  's3://a/key',
  's3://bad bucket/key',
  '/local/path',
  'S3://upper/key',
]) {
  test(`parseS3Url rejects '${bad}' with a StorageError naming the URL`, (t) => {
    const err = t.throws(() => parseS3Url(bad));
    t.true(isClusterError(err, 'STORAGE'));
    t.true(err.message.includes(`${bad}:`), err.message);
  });
}

test('formatS3Url is the inverse of parseS3Url', (t) => {
  for (const url of ['s3://b1b/x.rec', 's3://data.example/a/b/', 's3://bkt/']) {
    const { bucket, key } = parseS3Url(url);
    t.is(formatS3Url(bucket, key), url);
  }
});

const join =
  (...args: string[]) =>
  (base: string) =>
    joinUrl(base, ...args);
test(
  'joinUrl adds parts to an s3 URL',
  cases,
  join('ckpt', 'm.json'),
  's3://b1b/runs',
  's3://b1b/runs/ckpt/m.json',
);
test(
  'joinUrl does not double the slash after a folder URL',
  cases,
  join('x.rec'),
  's3://b1b/runs/',
  's3://b1b/runs/x.rec',
);
test('joinUrl adds a key to a bare bucket', cases, join('x.rec'), 's3://b1b', 's3://b1b/x.rec');
test(
  'joinUrl keeps a trailing slash on the last s3 part',
  cases,
  join('dir/'),
  's3://b1b/a',
  's3://b1b/a/dir/',
);
test(
  'joinUrl strips leading slashes of s3 parts',
  cases,
  join('/x', '', '/y'),
  's3://b1b/a',
  's3://b1b/a/x/y',
);
test('joinUrl never resolves .. inside an s3 key', cases, join('..', 'y'), 's3://b1b/a', 's3://b1b/a/../y');
test('joinUrl joins local path segments', cases, join('train', 'x.rec'), '/data', '/data/train/x.rec');
test('joinUrl keeps relative local paths relative', cases, join('x.idx'), 'data/', 'data/x.idx');
test('joinUrl with no parts returns the base', cases, join(), 's3://b1b/a/', 's3://b1b/a/');

test('dirnameUrl of a nested s3 key', cases, dirnameUrl, 's3://b1b/a/b/x.rec', 's3://b1b/a/b');
test('dirnameUrl of a top-level s3 key is the bucket', cases, dirnameUrl, 's3://b1b/x.rec', 's3://b1b');
test('dirnameUrl of an s3 folder URL is its parent', cases, dirnameUrl, 's3://b1b/a/b/', 's3://b1b/a');
test('dirnameUrl of a local path', cases, dirnameUrl, '/data/train/x.rec', '/data/train');
test('basenameUrl of an s3 key', cases, basenameUrl, 's3://b1b/a/x.rec', 'x.rec');
test('basenameUrl of an s3 folder URL', cases, basenameUrl, 's3://b1b/a/dir/', 'dir');
test('basenameUrl of a bucket root is empty', cases, basenameUrl, 's3://b1b/', '');
test('basenameUrl of a local path', cases, basenameUrl, 'data/x.rec', 'x.rec');

const ext = (extension: string) => (url: string) => replaceExtension(url, extension);
test(
  'replaceExtension turns an s3 .rec into .idx',
  cases,
  ext('.idx'),
  's3://b1b/a.v1/x.rec',
  's3://b1b/a.v1/x.idx',
);
test(
  'replaceExtension turns a local .rec into .idx',
  cases,
  ext('.idx'),
  '/d.v1/train.rec',
  '/d.v1/train.idx',
);
test('replaceExtension accepts an extension without a dot', cases, ext('idx'), 'x.rec', 'x.idx');
test(
  'replaceExtension appends when there is none',
  cases,
  ext('.idx'),
  's3://b1b/dir.v2/x',
  's3://b1b/dir.v2/x.idx',
);
test('replaceExtension keeps a leading dot of a hidden name', cases, ext('.idx'), '/d/.rec', '/d/.rec.idx');
test('replaceExtension replaces only the last extension', cases, ext('.json'), 'm.tar.gz', 'm.tar.json');
test('replaceExtension with an empty extension removes it', cases, ext(''), 's3://b1b/x.rec', 's3://b1b/x');

test('replaceExtension rejects a folder URL, naming it', (t) => {
  const err = t.throws(() => replaceExtension('s3://b1b/dir/', '.idx'));
  t.true(isClusterError(err, 'STORAGE'));
  t.regex(err.message, /^s3:\/\/b1b\/dir\/: /);
});
