import path from 'node:path';
import { StorageError } from '../errors.js';
import { isS3Url } from './storage.js';

/**
 * Pure helpers over the two kinds of storage URL: local paths (absolute or relative, POSIX) and
 * `s3://bucket/key`. S3 keys are plain strings: `..` and `.` are never resolved and a trailing `/`
 * is kept, because on S3 `a/` and `a` are different prefixes.
 */
export interface S3Location {
  bucket: string;
  /** The object key, or a key prefix; '' for the whole bucket. */
  key: string;
}

const S3_SCHEME = 's3://';
/** DNS-compatible bucket names (3–63 chars) plus the legacy dotted/underscored form some stores allow. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{2,62}$/i;

export function parseS3Url(url: string): S3Location {
  if (!isS3Url(url)) throw new StorageError(url, "not an S3 URL (expected 's3://bucket/key')");
  const rest = url.slice(S3_SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const key = slash === -1 ? '' : rest.slice(slash + 1);
  if (!BUCKET_NAME.test(bucket)) {
    throw new StorageError(
      url,
      `invalid bucket name '${bucket}' (expected 3-63 letters, digits, '.', '-', '_')`,
    );
  }
  return { bucket, key };
}

export function formatS3Url(bucket: string, key: string): string {
  return `${S3_SCHEME}${bucket}/${key}`;
}

/**
 * Joins path segments onto a base URL: `joinUrl('s3://b/runs', 'ckpt', 'm.json')` is
 * `s3://b/runs/ckpt/m.json`, and `joinUrl('/data', 'train.rec')` is `/data/train.rec`. Empty parts are
 * skipped; a trailing `/` on the last part is kept (a "folder" prefix for `list`).
 */
export function joinUrl(base: string, ...parts: string[]): string {
  if (!isS3Url(base)) return parts.length === 0 ? base : path.join(base, ...parts);
  let joined = base;
  for (const part of parts) {
    const trimmed = part.replace(/^\/+/, '');
    if (trimmed === '') continue;
    joined = joined.endsWith('/') ? joined + trimmed : `${joined}/${trimmed}`;
  }
  return joined;
}

/** The parent "folder" of a URL, without a trailing slash: `s3://b/a/x.rec` -> `s3://b/a`, `s3://b/x` -> `s3://b`. */
export function dirnameUrl(url: string): string {
  if (!isS3Url(url)) return path.dirname(url);
  const { bucket, key } = parseS3Url(url);
  const trimmed = key.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  return slash === -1 ? `${S3_SCHEME}${bucket}` : formatS3Url(bucket, trimmed.slice(0, slash));
}

/** The last segment of a URL: `s3://b/a/x.rec` -> `x.rec`; `''` for a bucket root. */
export function basenameUrl(url: string): string {
  if (!isS3Url(url)) return path.basename(url);
  const { key } = parseS3Url(url);
  const trimmed = key.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/**
 * Replaces the extension of the last segment (`x.rec` -> `x.idx` with `'.idx'`), or appends one when
 * there is none. Dots in folder names and a leading dot (`.hidden`) do not count as extensions.
 */
export function replaceExtension(url: string, extension: string): string {
  const ext = extension === '' || extension.startsWith('.') ? extension : `.${extension}`;
  const base = url.endsWith('/') ? '' : basenameUrl(url);
  if (base === '') throw new StorageError(url, 'has no file name to give an extension');
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  return url.slice(0, url.length - base.length) + stem + ext;
}
