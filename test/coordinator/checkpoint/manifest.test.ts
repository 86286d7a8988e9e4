import test from 'ava';
import {
  type CheckpointManifest,
  encodeManifest,
  manifestEntry,
  parseManifest,
  sha256Hex,
  verifyFile,
} from '../../../coordinator/checkpoint/manifest.js';
import { isClusterError } from '../../../shared/errors.js';

const CKPT = '/runs/a/ckpt-000000000040';
const TENSORS = Buffer.from('tensor bytes, sixty-four of them would be aligned');
const STATE = Buffer.from('{"format":"ssd-cluster-checkpoint-state"}\n');

function manifest(): CheckpointManifest {
  return {
    format: 'ssd-cluster-checkpoint',
    version: 1,
    name: 'ckpt-000000000040',
    globalStep: 40,
    epoch: 2,
    position: 96,
    createdAt: '2025-03-01T12:00:00.000Z',
    files: [
      { path: 'tensors.bin', sizeBytes: TENSORS.length, sha256: sha256Hex(TENSORS) },
      { path: 'state.json', sizeBytes: STATE.length, sha256: sha256Hex(STATE) },
    ],
  };
}

test('parseManifest reads back what encodeManifest wrote', (t) => {
  const m = manifest();
  t.deepEqual(parseManifest(CKPT, encodeManifest(m)), m);
});

test('sha256Hex matches the well-known digest of "abc"', (t) => {
  t.is(sha256Hex(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

// biome-ignore lint/suspicious/noExplicitAny: the tests edit parsed manifests freely
type EditableJson = any;

const malformed = test.macro<[(m: EditableJson) => void, RegExp]>({
  exec(t, edit, expected) {
    const json: EditableJson = JSON.parse(JSON.stringify(manifest()));
    edit(json);
    const err = t.throws(() => parseManifest(CKPT, Buffer.from(JSON.stringify(json))));
    t.true(isClusterError(err, 'CHECKPOINT_CORRUPT'));
    t.true(err!.message.startsWith(`checkpoint ${CKPT}: manifest.json: `), err!.message);
    t.regex(err!.message, expected);
  },
  title: (provided) => `parseManifest rejects ${provided}, naming the field`,
});

test(
  'another format',
  malformed,
  (m) => (m.format = 'tfjs-weights'),
  /format: expected 'ssd-cluster-checkpoint'/,
);
test('a newer version', malformed, (m) => (m.version = 2), /version: unsupported version 2/);
test('a negative step', malformed, (m) => (m.globalStep = -1), /globalStep: expected an integer >= 0/);
test('a missing position', malformed, (m) => delete m.position, /position: .*missing/);
test('a time that is not ISO-8601', malformed, (m) => (m.createdAt = 'yesterday'), /createdAt: 'yesterday'/);
test(
  'an upper-case digest',
  malformed,
  (m) => (m.files[0].sha256 = m.files[0].sha256.toUpperCase()),
  /files\[0\]\.sha256/,
);
test('a path into another folder', malformed, (m) => (m.files[1].path = '../state.json'), /files\[1\]\.path/);
test('a duplicate file', malformed, (m) => (m.files[1].path = 'tensors.bin'), /files\[1\]: duplicate path/);
test('a fractional size', malformed, (m) => (m.files[0].sizeBytes = 1.5), /files\[0\]\.sizeBytes/);
test('a files field that is not a list', malformed, (m) => (m.files = {}), /files: expected an array/);

test('parseManifest rejects a truncated manifest as invalid JSON', (t) => {
  const bytes = encodeManifest(manifest());
  const err = t.throws(() => parseManifest(CKPT, bytes.subarray(0, 40)));
  t.true(isClusterError(err, 'CHECKPOINT_CORRUPT'));
  t.regex(err!.message, /manifest\.json: not valid JSON/);
});

test('verifyFile accepts the listed bytes and rejects a truncated file by its size', (t) => {
  const entry = manifestEntry(CKPT, manifest(), 'tensors.bin');
  t.notThrows(() => verifyFile(CKPT, entry, TENSORS));
  const err = t.throws(() => verifyFile(CKPT, entry, TENSORS.subarray(0, 10)));
  t.true(isClusterError(err, 'CHECKPOINT_CORRUPT'));
  t.regex(err!.message, new RegExp(`^checkpoint ${CKPT}: tensors\\.bin: is 10 bytes, the manifest says`));
});

test('verifyFile rejects a single flipped bit by its sha256', (t) => {
  const entry = manifestEntry(CKPT, manifest(), 'state.json');
  const flipped = Buffer.from(STATE);
  flipped[5]! ^= 0x01;
  const err = t.throws(() => verifyFile(CKPT, entry, flipped));
  t.regex(err!.message, /state\.json: sha256 [0-9a-f]{64} does not match the manifest's/);
});

test('manifestEntry names a file the manifest does not list', (t) => {
  const err = t.throws(() => manifestEntry(CKPT, manifest(), 'extra.bin'));
  t.true(isClusterError(err, 'CHECKPOINT_CORRUPT'));
  t.regex(err!.message, /manifest\.json: does not list 'extra\.bin'/);
});
