/**
 * The shape classes of the synthetic data set, as inside-tests in the unit box: `u` runs from -1
 * (left edge of the object's box) to 1 (right edge), `v` from -1 (top) to 1 (bottom). A shape fills
 * its box exactly in both directions, so its pixel box is the label box (before occlusion).
 *
 * Class ids follow this order: `--classes K` uses the first K kinds. The first kinds are the most
 * distinct ones, so small K gives an easier data set.
 */
export const SHAPE_KINDS = [
  'circle',
  'square',
  'triangle',
  'plus',
  'ring',
  'star',
  'diamond',
  'cross',
] as const;

export type ShapeKind = (typeof SHAPE_KINDS)[number];

/** Half the width of a plus sign's bars, in unit-box coordinates. */
const PLUS_HALF_BAR = 0.34;
/** Half the width of a diagonal cross's bars (perpendicular distance), in unit-box coordinates. */
const CROSS_HALF_BAR = 0.24;
/** Inner radius of a ring relative to its outer radius. */
const RING_HOLE = 0.55;
/** Inner radius of a star's concave corners relative to its tips. */
const STAR_INNER = 0.45;
const STAR_POINTS = 5;

/** A polygon as flat [x0, y0, x1, y1, ...] in unit-box coordinates. */
type Polygon = readonly number[];

function starPolygon(): Polygon {
  const points: number[] = [];
  for (let i = 0; i < 2 * STAR_POINTS; i++) {
    const radius = i % 2 === 0 ? 1 : STAR_INNER;
    const angle = -Math.PI / 2 + (i * Math.PI) / STAR_POINTS;
    points.push(radius * Math.cos(angle), radius * Math.sin(angle));
  }
  return fitToUnitBox(points);
}

/** Stretches a polygon so that its bounding box is exactly [-1, 1] x [-1, 1]. */
function fitToUnitBox(points: number[]): Polygon {
  const xs = points.filter((_, i) => i % 2 === 0);
  const ys = points.filter((_, i) => i % 2 === 1);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  return points.map((p, i) =>
    i % 2 === 0 ? (2 * (p - x0)) / (x1 - x0) - 1 : (2 * (p - y0)) / (y1 - y0) - 1,
  );
}

const STAR = starPolygon();

/** Even-odd rule point-in-polygon test. */
function isInsidePolygon(polygon: Polygon, u: number, v: number): boolean {
  let inside = false;
  const n = polygon.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = polygon[2 * i]!;
    const yi = polygon[2 * i + 1]!;
    const xj = polygon[2 * j]!;
    const yj = polygon[2 * j + 1]!;
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function isInsideBox(u: number, v: number): boolean {
  return u >= -1 && u <= 1 && v >= -1 && v <= 1;
}

/** Whether the point (u, v) of the unit box lies inside the shape. */
export function isInsideShape(kind: ShapeKind, u: number, v: number): boolean {
  switch (kind) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return isInsideBox(u, v);
    case 'triangle':
      // Apex at the top centre, base along the bottom edge.
      return v <= 1 && Math.abs(u) <= (v + 1) / 2;
    case 'plus':
      return isInsideBox(u, v) && (Math.abs(u) <= PLUS_HALF_BAR || Math.abs(v) <= PLUS_HALF_BAR);
    case 'ring': {
      const r2 = u * u + v * v;
      return r2 <= 1 && r2 >= RING_HOLE * RING_HOLE;
    }
    case 'star':
      return isInsidePolygon(STAR, u, v);
    case 'diamond':
      return Math.abs(u) + Math.abs(v) <= 1;
    case 'cross':
      // Both diagonals of the box, as bars.
      return isInsideBox(u, v) && Math.min(Math.abs(u - v), Math.abs(u + v)) <= CROSS_HALF_BAR * Math.SQRT2;
  }
}
