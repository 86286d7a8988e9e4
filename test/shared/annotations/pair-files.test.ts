import test from 'ava';
import { folderPrefix, pairImagesWithAnnotations } from '../../../shared/annotations/pair-files.js';
import { isClusterError } from '../../../shared/errors.js';

test('pairImagesWithAnnotations pairs by relative name in sorted image order and ignores other files', (t) => {
  const images = [
    's3://b/img/z.PNG',
    's3://b/img/sub/a.jpeg',
    's3://b/img/m.jpg',
    's3://b/img/notes.txt',
    's3://b/img/.hidden',
  ];
  const annotations = [
    's3://b/ann/m.json',
    's3://b/ann/z.json',
    's3://b/ann/sub/a.json',
    's3://b/ann/readme.md',
  ];
  t.deepEqual(pairImagesWithAnnotations(images, annotations, 's3://b/img', 's3://b/ann/'), [
    { name: 'm', imageUrl: 's3://b/img/m.jpg', annotationUrl: 's3://b/ann/m.json' },
    { name: 'sub/a', imageUrl: 's3://b/img/sub/a.jpeg', annotationUrl: 's3://b/ann/sub/a.json' },
    { name: 'z', imageUrl: 's3://b/img/z.PNG', annotationUrl: 's3://b/ann/z.json' },
  ]);
});

test('pairImagesWithAnnotations works when images and annotations share one folder', (t) => {
  const files = ['/d/b.json', '/d/a.jpg', '/d/b.png', '/d/a.json'];
  t.deepEqual(
    pairImagesWithAnnotations(files, files, '/d', '/d').map((p) => p.name),
    ['a', 'b'],
  );
});

const rejects = test.macro({
  exec(t, images: string[], annotations: string[], message: RegExp) {
    const err = t.throws(() => pairImagesWithAnnotations(images, annotations, '/i', '/a'));
    t.true(isClusterError(err, 'ANNOTATION'));
    t.regex(err!.message, message);
  },
  title: (title) => `pairImagesWithAnnotations rejects ${title}, naming the file`,
});

test(
  'an image without annotation',
  rejects,
  ['/i/a.jpg', '/i/b.jpg'],
  ['/a/a.json'],
  /^\/i\/b\.jpg: no annotation \/a\/b\.json/,
);
test(
  'an annotation without image',
  rejects,
  ['/i/a.jpg'],
  ['/a/a.json', '/a/c.json'],
  /^\/a\/c\.json: no image \/i\/c\./,
);
test(
  'two images with one name',
  rejects,
  ['/i/a.jpg', '/i/a.png'],
  ['/a/a.json'],
  /^\/i\/a\.png: another image has the same name: \/i\/a\.jpg/,
);

test('folderPrefix ends a folder with exactly one slash', (t) => {
  t.is(folderPrefix('s3://b/x//'), 's3://b/x/');
  t.is(folderPrefix('/data'), '/data/');
});
