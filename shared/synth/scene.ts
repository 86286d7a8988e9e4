import type { Rng } from '../random.js';
import { SHAPE_KINDS, type ShapeKind } from './shapes.js';

/**
 * Scene generation: a pure function from an Rng to a plain description of one synthetic image
 * (background, clutter, objects in drawing order). The rasteriser (rasterise.ts) turns it into pixels.
 *
 * Invariants: every object box lies inside the image; colours are drawn independently of the class;
 * an object never covers more than `maxCoverFraction` of the box of an object drawn before it, so
 * occlusion exists but stays bounded (the rasteriser measures what is really visible).
 */
export type Rgb = readonly [number, number, number];

/** A box in pixels (floats): left/top corner and size, like SageMaker annotations. */
export interface PixelBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface SceneObject {
  classId: number;
  kind: ShapeKind;
  box: PixelBox;
  colour: Rgb;
  /** Brightness slope across the object: the colour is scaled by 1 + du·u + dv·v (u, v in [-1, 1]). */
  shading: { du: number; dv: number };
}

/** Background clutter that is not an object: small blobs and thin lines. */
export type Distractor =
  | { type: 'blob'; kind: ShapeKind; box: PixelBox; colour: Rgb }
  | { type: 'line'; x0: number; y0: number; x1: number; y1: number; widthPx: number; colour: Rgb };

export interface Background {
  /** Linear gradient from `from` to `to` along the direction `angle` (radians). */
  from: Rgb;
  to: Rgb;
  angle: number;
  /** Peak amplitude of the per-pixel noise added over the whole image, in 8-bit levels. */
  noiseAmplitude: number;
}

export interface Scene {
  size: number;
  background: Background;
  distractors: Distractor[];
  objects: SceneObject[];
}

export interface SceneOptions {
  /** Width and height of the (square) image in pixels. */
  imageSize: number;
  /** Number of shape classes (the first `classCount` of SHAPE_KINDS). */
  classCount: number;
  minObjects: number;
  maxObjects: number;
  /** Object size as sqrt(width·height) / imageSize, drawn uniformly in [min, max]. */
  minSizeFraction: number;
  maxSizeFraction: number;
  /** Largest width/height ratio (and its inverse), drawn log-uniformly. */
  maxAspect: number;
  /** A new object may cover at most this fraction of an earlier object's box. */
  maxCoverFraction: number;
}

export const DEFAULT_SCENE_OPTIONS: Readonly<SceneOptions> = Object.freeze({
  imageSize: 128,
  classCount: 5,
  minObjects: 1,
  maxObjects: 4,
  minSizeFraction: 0.12,
  maxSizeFraction: 0.6,
  maxAspect: 1.6,
  maxCoverFraction: 0.5,
});

/** Smallest RGB distance between an object and what lies under it. */
const MIN_CONTRAST = 90;
const PLACEMENT_TRIES = 20;
const COLOUR_TRIES = 30;

export function generateScene(rng: Rng, options: SceneOptions): Scene {
  const background = generateBackground(rng);
  const distractors = generateDistractors(rng, options.imageSize);
  const objects: SceneObject[] = [];
  const count = options.minObjects + rng.int(options.maxObjects - options.minObjects + 1);
  for (let i = 0; i < count; i++) {
    const classId = rng.int(options.classCount);
    const box = placeBox(rng, options, objects);
    if (!box) continue;
    const under = colourUnder(background, options.imageSize, box, objects);
    objects.push({
      classId,
      kind: SHAPE_KINDS[classId]!,
      box,
      colour: contrastingColour(rng, under),
      shading: { du: rng.uniform(-0.2, 0.2), dv: rng.uniform(-0.2, 0.2) },
    });
  }
  return { size: options.imageSize, background, distractors, objects };
}

function randomColour(rng: Rng): Rgb {
  return [rng.int(256), rng.int(256), rng.int(256)];
}

function generateBackground(rng: Rng): Background {
  return {
    from: randomColour(rng),
    to: randomColour(rng),
    angle: rng.uniform(0, 2 * Math.PI),
    noiseAmplitude: rng.uniform(4, 16),
  };
}

function generateDistractors(rng: Rng, size: number): Distractor[] {
  const out: Distractor[] = [];
  const blobs = 2 + rng.int(9);
  for (let i = 0; i < blobs; i++) {
    const w = size * rng.uniform(0.015, 0.05);
    const h = size * rng.uniform(0.015, 0.05);
    const kind = (['circle', 'square', 'diamond'] as const)[rng.int(3)]!;
    const box = { left: rng.uniform(0, size - w), top: rng.uniform(0, size - h), width: w, height: h };
    out.push({ type: 'blob', kind, box, colour: randomColour(rng) });
  }
  const lines = rng.int(4);
  for (let i = 0; i < lines; i++) {
    const length = size * rng.uniform(0.15, 0.5);
    const angle = rng.uniform(0, Math.PI);
    const x0 = rng.uniform(0, size);
    const y0 = rng.uniform(0, size);
    const [x1, y1] = [x0 + length * Math.cos(angle), y0 + length * Math.sin(angle)];
    out.push({ type: 'line', x0, y0, x1, y1, widthPx: rng.uniform(0.8, 2), colour: randomColour(rng) });
  }
  return out;
}

/** Draws a box that keeps every earlier object at most `maxCoverFraction` covered, or undefined. */
function placeBox(rng: Rng, options: SceneOptions, earlier: readonly SceneObject[]): PixelBox | undefined {
  const size = options.imageSize;
  for (let attempt = 0; attempt < PLACEMENT_TRIES; attempt++) {
    const side = size * rng.uniform(options.minSizeFraction, options.maxSizeFraction);
    const aspect = Math.exp(rng.uniform(-1, 1) * Math.log(options.maxAspect));
    const width = Math.min(size, side * Math.sqrt(aspect));
    const height = Math.min(size, side / Math.sqrt(aspect));
    const box = { left: rng.uniform(0, size - width), top: rng.uniform(0, size - height), width, height };
    const covers = earlier.some(
      (e) => intersectionArea(box, e.box) > options.maxCoverFraction * e.box.width * e.box.height,
    );
    if (!covers) return box;
  }
  return undefined;
}

export function intersectionArea(a: PixelBox, b: PixelBox): number {
  const w = Math.min(a.left + a.width, b.left + b.width) - Math.max(a.left, b.left);
  const h = Math.min(a.top + a.height, b.top + b.height) - Math.max(a.top, b.top);
  return w > 0 && h > 0 ? w * h : 0;
}

/** The background gradient's colour at pixel (x, y). */
export function backgroundColourAt(bg: Background, size: number, x: number, y: number): Rgb {
  const t = gradientPosition(bg.angle, size, x, y);
  return [0, 1, 2].map((c) => bg.from[c]! + (bg.to[c]! - bg.from[c]!) * t) as unknown as Rgb;
}

/** Where (x, y) lies along the gradient, in [0, 1]. */
export function gradientPosition(angle: number, size: number, x: number, y: number): number {
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const projection = ((x / size - 0.5) * cos + (y / size - 0.5) * sin) / (Math.abs(cos) + Math.abs(sin));
  return 0.5 + projection;
}

/** Colours an object must stand out from: the background at its corners and centre, and overlapped objects. */
function colourUnder(bg: Background, size: number, box: PixelBox, earlier: readonly SceneObject[]): Rgb[] {
  const right = box.left + box.width;
  const bottom = box.top + box.height;
  const points: [number, number][] = [
    [box.left, box.top],
    [right, box.top],
    [box.left, bottom],
    [right, bottom],
    [box.left + box.width / 2, box.top + box.height / 2],
  ];
  const colours = points.map(([x, y]) => backgroundColourAt(bg, size, x, y));
  for (const e of earlier) if (intersectionArea(box, e.box) > 0) colours.push(e.colour);
  return colours;
}

function colourDistance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

function contrastingColour(rng: Rng, avoid: readonly Rgb[]): Rgb {
  let best = randomColour(rng);
  let bestDistance = Math.min(...avoid.map((c) => colourDistance(best, c)));
  for (let i = 1; i < COLOUR_TRIES && bestDistance < MIN_CONTRAST; i++) {
    const candidate = randomColour(rng);
    const distance = Math.min(...avoid.map((c) => colourDistance(candidate, c)));
    if (distance > bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}
