import type { Rng } from '../random.js';
import type { Background, Distractor, PixelBox, Scene, SceneObject } from './scene.js';
import { isInsideShape } from './shapes.js';

/**
 * A small rasteriser for synthetic scenes: RGB bytes on a Uint8Array (clamped by hand: a
 * Uint8ClampedArray is twice as slow to update), one inside-test per pixel centre (no anti-aliasing;
 * JPEG smooths edges anyway). Pure: the only randomness is the noise,
 * drawn from the Rng passed in.
 *
 * Drawing order: background gradient, clutter, objects in scene order (later ones occlude earlier
 * ones), then noise over everything. An owner mask records which object each pixel shows, so the
 * labels describe what is really visible:
 * - the box of an object is the tight box of its visible pixels (the VOC convention);
 * - an object with less than DIFFICULT_VISIBLE_FRACTION of its pixels visible is marked difficult
 *   (ignored by VOC07 mAP); one under DROPPED_VISIBLE_FRACTION is not labelled at all.
 */
export const DIFFICULT_VISIBLE_FRACTION = 0.4;
export const DROPPED_VISIBLE_FRACTION = 0.1;

export interface RenderedObject {
  classId: number;
  /** Corners normalised to [0, 1] by the image size (SPEC 3.4). */
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  difficult: boolean;
  /** Visible pixels / pixels the object covers when drawn. */
  visibleFraction: number;
}

export interface RenderedScene {
  width: number;
  height: number;
  /** Interleaved RGB, row-major, width·height·3 bytes. */
  pixels: Uint8Array;
  objects: RenderedObject[];
}

interface Canvas {
  size: number;
  rgb: Uint8Array;
  /** 0 = background or clutter, i + 1 = scene object i. */
  owner: Uint8Array;
}

export function renderScene(scene: Scene, rng: Rng): RenderedScene {
  if (scene.objects.length > 254) throw new RangeError('renderScene: at most 254 objects per scene');
  const size = scene.size;
  const canvas: Canvas = { size, rgb: new Uint8Array(size * size * 3), owner: new Uint8Array(size * size) };
  fillBackground(canvas, scene.background);
  for (const d of scene.distractors) drawDistractor(canvas, d);
  const drawnPixels = scene.objects.map((o, i) => fillShape(canvas, o, i + 1));
  addNoise(canvas, scene.background.noiseAmplitude, rng);
  const objects = labelVisibleObjects(canvas, scene.objects, drawnPixels);
  return { width: size, height: size, pixels: canvas.rgb, objects };
}

/** Rounds to the nearest byte value, saturating at 0 and 255. */
function clampByte(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
}

function fillBackground({ size, rgb }: Canvas, bg: Background): void {
  // gradientPosition (scene.ts) expanded to t = base + ax·x + ay·y for speed.
  const cos = Math.cos(bg.angle);
  const sin = Math.sin(bg.angle);
  const norm = Math.abs(cos) + Math.abs(sin);
  const ax = cos / (size * norm);
  const ay = sin / (size * norm);
  const base = 0.5 - (0.5 * (cos + sin)) / norm + 0.5 * (ax + ay);
  const [r0, g0, b0] = bg.from;
  const [dr, dg, db] = [bg.to[0] - r0, bg.to[1] - g0, bg.to[2] - b0];
  for (let y = 0, p = 0; y < size; y++) {
    for (let x = 0; x < size; x++, p += 3) {
      const t = base + ax * x + ay * y;
      // t is in [0, 1] at pixel centres, so these stay within the two (valid) colours: no clamp.
      rgb[p] = r0 + dr * t + 0.5;
      rgb[p + 1] = g0 + dg * t + 0.5;
      rgb[p + 2] = b0 + db * t + 0.5;
    }
  }
}

/** Pixel rows and columns whose centres may fall inside a box, clipped to the canvas. */
function pixelSpan(box: PixelBox, size: number) {
  return {
    x0: Math.max(0, Math.floor(box.left)),
    x1: Math.min(size, Math.ceil(box.left + box.width)),
    y0: Math.max(0, Math.floor(box.top)),
    y1: Math.min(size, Math.ceil(box.top + box.height)),
  };
}

/**
 * Fills a shape into its box; `ownerId` > 0 marks the pixels in the owner mask. Returns the number of
 * pixels drawn.
 */
function fillShape(
  canvas: Canvas,
  shape: Pick<SceneObject, 'kind' | 'box' | 'colour'> & { shading?: SceneObject['shading'] },
  ownerId: number,
): number {
  const { box, colour, kind } = shape;
  const { du, dv } = shape.shading ?? { du: 0, dv: 0 };
  const { x0, x1, y0, y1 } = pixelSpan(box, canvas.size);
  const cx = box.left + box.width / 2;
  const cy = box.top + box.height / 2;
  let drawn = 0;
  for (let y = y0; y < y1; y++) {
    const v = (y + 0.5 - cy) / (box.height / 2);
    for (let x = x0; x < x1; x++) {
      const u = (x + 0.5 - cx) / (box.width / 2);
      if (!isInsideShape(kind, u, v)) continue;
      const scale = 1 + du * u + dv * v;
      const p = y * canvas.size + x;
      canvas.rgb[3 * p] = clampByte(colour[0] * scale);
      canvas.rgb[3 * p + 1] = clampByte(colour[1] * scale);
      canvas.rgb[3 * p + 2] = clampByte(colour[2] * scale);
      if (ownerId > 0) canvas.owner[p] = ownerId;
      drawn++;
    }
  }
  return drawn;
}

function drawDistractor(canvas: Canvas, d: Distractor): void {
  if (d.type === 'blob') fillShape(canvas, d, 0);
  else drawLine(canvas, d);
}

/** A segment of width `widthPx`: every pixel centre within widthPx/2 of it. */
function drawLine(canvas: Canvas, line: Extract<Distractor, { type: 'line' }>): void {
  const { x0, y0, x1, y1, widthPx, colour } = line;
  const half = widthPx / 2;
  const halfSquared = half * half;
  const span = pixelSpan(
    {
      left: Math.min(x0, x1) - half,
      top: Math.min(y0, y1) - half,
      width: Math.abs(x1 - x0) + widthPx,
      height: Math.abs(y1 - y0) + widthPx,
    },
    canvas.size,
  );
  const [dx, dy] = [x1 - x0, y1 - y0];
  const lengthSquared = dx * dx + dy * dy || 1;
  for (let y = span.y0; y < span.y1; y++) {
    for (let x = span.x0; x < span.x1; x++) {
      const [px, py] = [x + 0.5 - x0, y + 0.5 - y0];
      const t = Math.max(0, Math.min(1, (px * dx + py * dy) / lengthSquared));
      const [ex, ey] = [px - t * dx, py - t * dy];
      if (ex * ex + ey * ey > halfSquared) continue;
      const p = 3 * (y * canvas.size + x);
      canvas.rgb[p] = colour[0];
      canvas.rgb[p + 1] = colour[1];
      canvas.rgb[p + 2] = colour[2];
    }
  }
}

/**
 * Triangular noise in [-amplitude, amplitude] on every channel: the sum of two random bytes, looked
 * up in a table of rounded levels. The bytes come from an inline xorshift32 seeded by the Rng (a
 * closure call per value would dominate the whole render at 512 px); two values per 32-bit draw.
 */
function addNoise({ rgb }: Canvas, amplitude: number, rng: Rng): void {
  const levels = new Int16Array(511);
  for (let s = 0; s < 511; s++) levels[s] = Math.round(((s - 255) * amplitude) / 255);
  let x = rng.nextUint32() | 1; // xorshift32 must not start at 0
  const n = rgb.length;
  for (let i = 0; i < n; i += 2) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    rgb[i] = clampByte(rgb[i]! + levels[(x & 255) + ((x >>> 8) & 255)]!);
    if (i + 1 < n) rgb[i + 1] = clampByte(rgb[i + 1]! + levels[((x >>> 16) & 255) + ((x >>> 24) & 255)]!);
  }
}

/** How many pixels of the owner mask inside `box` show object `ownerId`, and their tight bounds. */
function visiblePixels({ size, owner }: Canvas, box: PixelBox, ownerId: number) {
  const { x0, x1, y0, y1 } = pixelSpan(box, size);
  const bounds = { count: 0, x0: size, y0: size, x1: -1, y1: -1 };
  for (let y = y0; y < y1; y++) {
    for (let x = x0, p = y * size + x0; x < x1; x++, p++) {
      if (owner[p] !== ownerId) continue;
      bounds.count++;
      if (x < bounds.x0) bounds.x0 = x;
      if (x > bounds.x1) bounds.x1 = x;
      if (y < bounds.y0) bounds.y0 = y;
      if (y > bounds.y1) bounds.y1 = y;
    }
  }
  return bounds;
}

/** Visible pixel counts and tight boxes from the owner mask, turned into labels. */
function labelVisibleObjects(
  canvas: Canvas,
  objects: readonly SceneObject[],
  drawnPixels: readonly number[],
): RenderedObject[] {
  const out: RenderedObject[] = [];
  const size = canvas.size;
  objects.forEach((o, i) => {
    // An object's pixels all lie inside its own box, so only that box needs scanning.
    const b = visiblePixels(canvas, o.box, i + 1);
    const visibleFraction = drawnPixels[i]! > 0 ? b.count / drawnPixels[i]! : 0;
    if (visibleFraction < DROPPED_VISIBLE_FRACTION) return;
    out.push({
      classId: o.classId,
      xmin: b.x0 / size,
      ymin: b.y0 / size,
      xmax: (b.x1 + 1) / size,
      ymax: (b.y1 + 1) / size,
      difficult: visibleFraction < DIFFICULT_VISIBLE_FRACTION,
      visibleFraction,
    });
  });
  return out;
}
