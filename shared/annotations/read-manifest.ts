import { isS3Url, type Storage } from '../storage/storage.js';
import { dirnameUrl, joinUrl } from '../storage/url.js';
import type { AnnotatedImage } from './annotation.js';
import { type ManifestOptions, parseManifest } from './manifest.js';

/**
 * Reads an augmented manifest through the Storage interface (a local path or s3:// URL) and resolves
 * each `source-ref`: s3:// URLs and absolute paths are used as they are; a relative path is taken
 * relative to the manifest's folder (Ground Truth writes s3:// URLs; relative refs are for local data).
 */
export async function readManifestItems(
  manifestUrl: string,
  options: ManifestOptions & { storage: Storage; signal?: AbortSignal },
): Promise<AnnotatedImage[]> {
  const text = (await options.storage.read(manifestUrl, { signal: options.signal })).toString('utf8');
  return parseManifest(text, manifestUrl, options).map((entry) => ({
    ...entry,
    imageUrl: resolveSourceRef(entry.annotation.file, manifestUrl),
  }));
}

export function resolveSourceRef(ref: string, manifestUrl: string): string {
  if (isS3Url(ref) || ref.startsWith('/')) return ref;
  return joinUrl(dirnameUrl(manifestUrl), ref);
}
