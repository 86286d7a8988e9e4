import test, { type ExecutionContext } from 'ava';
import sharp from 'sharp';
import { packDataset } from '../../../shared/annotations/pack-dataset.js';
import { parseDetectionLabel } from '../../../shared/recordio/detection-label.js';
import { readImageInfo } from '../../../shared/recordio/image-info.js';
import { parseImageRecord } from '../../../shared/recordio/image-record.js';
import { openRecordIO } from '../../../shared/recordio/reader.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { Storage } from '../../../shared/storage/storage.js';
import { startS3Server } from '../../helpers/s3-server.js';

/** A real S3-compatible server and a Storage talking to it through the real client. */
async function s3(t: ExecutionContext) {
  const server = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials, env: {} });
  t.teardown(() => storage.close());
  return { storage, root: `s3://${server.bucket}` };
}

async function jpeg(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 10, g: 120, b: 240 } } })
    .jpeg()
    .toBuffer();
}

const body = (width: number, height: number, classId: number) => ({
  image_size: [{ width, height, depth: 3 }],
  annotations: [
    { class_id: classId, left: width / 4, top: height / 4, width: width / 2, height: height / 2 },
  ],
});

async function readBack(storage: Storage, url: string) {
  const source = await openRecordIO(url, { storage });
  try {
    const out = [];
    for await (const { payload, offset } of source.scan()) {
      const record = parseImageRecord(payload, { source: url, offset });
      out.push({
        id: record.id,
        label: parseDetectionLabel(record.labels),
        image: readImageInfo(record.image),
      });
    }
    return out;
  } finally {
    await source.close();
  }
}

test('packDataset reads images named by s3:// and relative source-refs and writes its output to S3', async (t) => {
  const { storage, root } = await s3(t);
  await storage.write(`${root}/imgs/a.jpg`, await jpeg(40, 20));
  await storage.write(`${root}/data/imgs/b.jpg`, await jpeg(30, 30));
  const manifest = [
    JSON.stringify({ 'source-ref': `${root}/imgs/a.jpg`, boxes: body(40, 20, 1) }),
    JSON.stringify({ 'source-ref': 'imgs/b.jpg', boxes: body(30, 30, 0) }),
  ].join('\n');
  await storage.write(`${root}/data/train.manifest`, Buffer.from(manifest));
  const result = await packDataset(
    { kind: 'manifest', manifest: `${root}/data/train.manifest` },
    { out: `${root}/out/train`, resize: 10 },
    { storage },
  );
  t.like(result, { rec: `${root}/out/train.rec`, idx: `${root}/out/train.idx`, records: 2 });
  t.deepEqual(JSON.parse((await storage.read(`${root}/out/train.classes.json`)).toString()), [
    'class_0',
    'class_1',
  ]);
  const records = await readBack(storage, result.rec);
  t.deepEqual(
    records.map((r) => [r.id, r.image.width, r.image.height, r.label!.objects[0]!.class]),
    [
      [0, 20, 10, 1],
      [1, 10, 10, 0],
    ],
  );
  t.like(records[0]!.label!.objects[0], { xmin: 0.25, ymin: 0.25, xmax: 0.75, ymax: 0.75 });
});

test('packDataset pairs images and annotations listed under S3 prefixes and leaves nothing on failure', async (t) => {
  const { storage, root } = await s3(t);
  await storage.write(`${root}/set/img/x/one.jpg`, await jpeg(16, 16));
  await storage.write(
    `${root}/set/ann/x/one.json`,
    Buffer.from(JSON.stringify({ file: 'x/one.jpg', ...body(16, 16, 0) })),
  );
  const input = { kind: 'directories', images: `${root}/set/img`, annotations: `${root}/set/ann/` } as const;
  const result = await packDataset(input, { out: `${root}/packed/all` }, { storage });
  t.deepEqual(
    (await readBack(storage, result.rec)).map((r) => r.image),
    [{ format: 'jpeg', width: 16, height: 16 }],
  );

  await storage.write(`${root}/set/img/two.jpg`, await jpeg(16, 16));
  await storage.write(
    `${root}/set/ann/two.json`,
    Buffer.from(JSON.stringify({ file: 'two.jpg', ...body(20, 16, 0) })),
  );
  await t.throwsAsync(packDataset(input, { out: `${root}/failed/all` }, { storage }), {
    message: /set\/ann\/two\.json: image_size: says 20x16 but the image .*two\.jpg is 16x16/,
  });
  t.deepEqual(await storage.list(`${root}/failed/`), []);
});
