/**
 * A bounded cache of whole decoded images (pure: plain data in and out, no I/O), for the prepare thread's
 * JS resampling path (decode.ts renderRegion), where every sample of every epoch would otherwise pay a
 * full sharp decode before resample.ts renders its augmented region. tf.data's cache() after decode
 * does the same.
 *
 * Key and identity: an entry is keyed by the sample's `source` (`file.rec@offset`, or the image's path
 * or URL: unique within a data set, and train and validation sets have different files) and keeps a
 * copy of the encoded bytes it was decoded from. A lookup is a hit only when the bytes asked about are
 * byte-for-byte those (length first, then a memcmp), so a reused key (a file rewritten in place, two
 * data sets with one name) is a miss, never another image's pixels. Decoding is deterministic, so a hit
 * gives exactly the pixels a fresh decode would.
 *
 * Policy: keep what fits, never evict. Each epoch visits the samples in a fresh uniform random order,
 * so every image's next use is equally far off and no eviction order (LRU, FIFO, random) can raise the
 * hit rate above budget / working set; not evicting gets that rate without freeing and refilling an
 * entry on every miss. The only removal is a key whose bytes changed (its old entry can never hit again).
 *
 * Budget: `bytesHeld` counts each entry's pixels plus its encoded copy (the Map's own ~100 bytes per
 * entry are not counted) and never exceeds `budgetBytes`; an image that does not fit in what is left,
 * or in the whole budget, is not cached. A budget of 0 caches nothing.
 *
 * Invariant: the images handed out are shared by every hit: callers read them and never write into them.
 */
import type { RgbImage } from './resample.js';

/** The unit of --decode-cache-mb. */
export const MB = 1024 * 1024;

/**
 * 256 MB holds the embedded default data set whole (2,200 128 x 128 images: ~108 MB of pixels plus
 * their JPEGs) with room for twice that, or ~1,300 images of 256 x 256, the largest the JS path
 * decodes whole (larger images never enter the cache, so they cost nothing).
 */
export const DEFAULT_DECODE_CACHE_MB = 256;

export interface DecodedImageCacheStats {
  budgetBytes: number;
  /** Pixel bytes plus encoded copies of the entries held. */
  bytesHeld: number;
  entries: number;
  hits: number;
  misses: number;
}

interface Entry {
  encoded: Uint8Array;
  image: RgbImage;
}

export const EMPTY_DECODE_CACHE_STATS: Readonly<DecodedImageCacheStats> = Object.freeze({
  budgetBytes: 0,
  bytesHeld: 0,
  entries: 0,
  hits: 0,
  misses: 0,
});

function entryBytes(encoded: Uint8Array, image: RgbImage): number {
  return encoded.byteLength + image.data.byteLength;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

export class DecodedImageCache {
  private readonly entries = new Map<string, Entry>();
  private bytesHeld = 0;
  private hits = 0;
  private misses = 0;

  constructor(readonly budgetBytes: number) {
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes < 0) {
      throw new RangeError(`DecodedImageCache: budgetBytes must be an integer >= 0, got ${budgetBytes}`);
    }
  }

  /** The image decoded from exactly `encoded` under `source`, or undefined (a miss, counted). */
  get(source: string, encoded: Uint8Array): RgbImage | undefined {
    const entry = this.entries.get(source);
    if (entry !== undefined && sameBytes(entry.encoded, encoded)) {
      this.hits++;
      return entry.image;
    }
    this.misses++;
    return undefined;
  }

  /**
   * Offers the image decoded from `encoded` under `source`; true when it is held afterwards. A stale
   * entry under the key (other bytes) is dropped first. The encoded bytes are copied (the caller's
   * buffer may be reused); the image is kept as it is and must not be written to afterwards.
   */
  offer(source: string, encoded: Uint8Array, image: RgbImage): boolean {
    const old = this.entries.get(source);
    if (old !== undefined) {
      if (sameBytes(old.encoded, encoded)) return true; // two concurrent misses of one image
      this.entries.delete(source);
      this.bytesHeld -= entryBytes(old.encoded, old.image);
    }
    const size = entryBytes(encoded, image);
    if (this.bytesHeld + size > this.budgetBytes) return false;
    this.entries.set(source, { encoded: new Uint8Array(encoded), image });
    this.bytesHeld += size;
    return true;
  }

  stats(): DecodedImageCacheStats {
    const { budgetBytes, bytesHeld, hits, misses } = this;
    return { budgetBytes, bytesHeld, entries: this.entries.size, hits, misses };
  }
}

/** Adds the hits and misses of `next` to `base` (the totals across thread restarts). */
export function addDecodeCacheCounts(
  base: Readonly<DecodedImageCacheStats>,
  next: Readonly<DecodedImageCacheStats>,
): DecodedImageCacheStats {
  return { ...next, hits: base.hits + next.hits, misses: base.misses + next.misses };
}
