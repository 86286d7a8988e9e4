import { ClusterError } from '../errors.js';

/**
 * Matching images to their SageMaker annotation files by name (SPEC part 1, section 2: a.jpg <->
 * a.json), relative to the two folders, so `images/x/a.jpg` pairs with `annotations/x/a.json`. Pure:
 * takes the listed URLs, returns the pairs sorted by image path (the order of record keys 0..n-1).
 */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;

export interface ImageAnnotationPair {
  /** Path relative to the folders, without extension (`x/a`). */
  name: string;
  imageUrl: string;
  annotationUrl: string;
}

/** `dir` as a listing prefix: with exactly one trailing slash. */
export function folderPrefix(dir: string): string {
  return `${dir.replace(/\/+$/, '')}/`;
}

function splitExtension(relative: string): { stem: string; extension: string } {
  const slash = relative.lastIndexOf('/');
  const dot = relative.lastIndexOf('.');
  if (dot <= slash + 1) return { stem: relative, extension: '' };
  return { stem: relative.slice(0, dot), extension: relative.slice(dot).toLowerCase() };
}

/** Files under `prefix` with one of `extensions`, by stem; two files with one stem are an error. */
function byStem(urls: readonly string[], prefix: string, extensions: readonly string[], what: string) {
  const out = new Map<string, string>();
  for (const url of urls) {
    if (!url.startsWith(prefix)) continue;
    const { stem, extension } = splitExtension(url.slice(prefix.length));
    if (!extensions.includes(extension)) continue;
    const other = out.get(stem);
    if (other !== undefined)
      throw new ClusterError('ANNOTATION', `${url}: another ${what} has the same name: ${other}`);
    out.set(stem, url);
  }
  return out;
}

/**
 * Pairs every image (.jpg, .jpeg, .png) under `imagesDir` with the .json of the same relative name
 * under `annotationsDir`. An image without annotation, or an annotation without image, is an error
 * naming the file that has no partner. Other files are ignored.
 */
export function pairImagesWithAnnotations(
  imageUrls: readonly string[],
  annotationUrls: readonly string[],
  imagesDir: string,
  annotationsDir: string,
): ImageAnnotationPair[] {
  const imagesPrefix = folderPrefix(imagesDir);
  const annotationsPrefix = folderPrefix(annotationsDir);
  const images = byStem(imageUrls, imagesPrefix, IMAGE_EXTENSIONS, 'image');
  const annotations = byStem(annotationUrls, annotationsPrefix, ['.json'], 'annotation');
  for (const [stem, url] of annotations) {
    if (!images.has(stem))
      throw new ClusterError(
        'ANNOTATION',
        `${url}: no image ${imagesPrefix}${stem}.{jpg,jpeg,png} for this annotation`,
      );
  }
  const pairs: ImageAnnotationPair[] = [];
  for (const [stem, imageUrl] of images) {
    const annotationUrl = annotations.get(stem);
    if (annotationUrl === undefined)
      throw new ClusterError(
        'ANNOTATION',
        `${imageUrl}: no annotation ${annotationsPrefix}${stem}.json for this image`,
      );
    pairs.push({ name: stem, imageUrl, annotationUrl });
  }
  return pairs.sort((a, b) => (a.imageUrl < b.imageUrl ? -1 : a.imageUrl > b.imageUrl ? 1 : 0));
}
