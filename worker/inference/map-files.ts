/**
 * Validation rows (worker/train/validation.ts, 7 numbers each, pixel boxes) written as the JSON arrays
 * `ssd-cluster map` reads (shared/eval/map-input.ts):
 *   ground truth  {"image": name, "class": int, "box": [xmin, ymin, xmax, ymax], "difficult": bool}
 *   detections    {"image": name, "class": int, "score": number, "box": [xmin, ymin, xmax, ymax]}
 * One object per line, in row order, so map adds each image's boxes in the order the rows did. The
 * float32 values print exactly (a float32 is a double, and JSON prints doubles round-trip), so map on
 * these files computes the very numbers the rows give.
 *
 * Image names must sort (by code unit) the way the sample indices do, because the VOC accumulator breaks
 * score ties by image id: recordImageNames zero-pads the index for that reason.
 */
import { ROW_WIDTH } from '../train/validation.js';

/** `<source>#<index>`, the index zero-padded to the width of the last one (`data.rec#007` of 120). */
export function recordImageNames(source: string, size: number): (index: number) => string {
  const width = String(Math.max(0, size - 1)).length;
  return (index) => `${source}#${String(index).padStart(width, '0')}`;
}

/** The image's path below the folder (`sub/cat.jpg`), or the whole URL when it is not below it. */
export function folderImageName(folder: string, imageUrl: string): string {
  const prefix = folder.endsWith('/') ? folder : `${folder}/`;
  return imageUrl.startsWith(prefix) ? imageUrl.slice(prefix.length) : imageUrl;
}

function jsonArray(lines: readonly string[]): string {
  return lines.length === 0 ? '[]\n' : `[\n${lines.join(',\n')}\n]\n`;
}

/** Ground-truth rows [image, class, xmin, ymin, xmax, ymax, difficult] as map's --ground-truth file. */
export function groundTruthJson(rows: Float32Array, imageName: (index: number) => string): string {
  const lines: string[] = [];
  for (let r = 0; r + ROW_WIDTH <= rows.length; r += ROW_WIDTH) {
    const entry = {
      image: imageName(rows[r]!),
      class: rows[r + 1]!,
      box: Array.from(rows.subarray(r + 2, r + 6)),
      difficult: rows[r + 6]! !== 0,
    };
    lines.push(JSON.stringify(entry));
  }
  return jsonArray(lines);
}

/** Detection rows [image, class, score, xmin, ymin, xmax, ymax] as map's --detections file. */
export function detectionsJson(rows: Float32Array, imageName: (index: number) => string): string {
  const lines: string[] = [];
  for (let r = 0; r + ROW_WIDTH <= rows.length; r += ROW_WIDTH) {
    const entry = {
      image: imageName(rows[r]!),
      class: rows[r + 1]!,
      score: rows[r + 2]!,
      box: Array.from(rows.subarray(r + 3, r + 7)),
    };
    lines.push(JSON.stringify(entry));
  }
  return jsonArray(lines);
}
