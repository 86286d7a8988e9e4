import test from 'ava';
import { isInsideShape, SHAPE_KINDS, type ShapeKind } from '../../../shared/synth/shapes.js';

const GRID = 101;

/** The unit box sampled on a grid: which cells each shape covers. */
function mask(kind: ShapeKind): boolean[] {
  const out: boolean[] = [];
  for (let y = 0; y < GRID; y++) {
    for (let x = 0; x < GRID; x++)
      out.push(isInsideShape(kind, (2 * x) / (GRID - 1) - 1, (2 * y) / (GRID - 1) - 1));
  }
  return out;
}

test('every shape reaches all four edges of its unit box, so the drawn box is the label box', (t) => {
  for (const kind of SHAPE_KINDS) {
    const m = mask(kind);
    const xs = m.flatMap((inside, i) => (inside ? [i % GRID] : []));
    const ys = m.flatMap((inside, i) => (inside ? [Math.floor(i / GRID)] : []));
    // Tips (star, triangle apex, diamond) touch an edge in a single point: allow two grid cells.
    t.true(Math.min(...xs) <= 2, `${kind} left edge`);
    t.true(Math.max(...xs) >= GRID - 3, `${kind} right edge`);
    t.true(Math.min(...ys) <= 2, `${kind} top edge`);
    t.true(Math.max(...ys) >= GRID - 3, `${kind} bottom edge`);
  }
});

test('no point outside the unit box is inside any shape', (t) => {
  for (const kind of SHAPE_KINDS) {
    for (const [u, v] of [
      [1.01, 0],
      [-1.01, 0],
      [0, 1.01],
      [0, -1.01],
    ] as const) {
      t.false(isInsideShape(kind, u, v), `${kind} at (${u}, ${v})`);
    }
  }
});

test('any two shape kinds differ on at least a tenth of the unit box', (t) => {
  const masks = SHAPE_KINDS.map(mask);
  for (let a = 0; a < masks.length; a++) {
    for (let b = a + 1; b < masks.length; b++) {
      const differing = masks[a]!.filter((inside, i) => inside !== masks[b]![i]).length;
      t.true(
        differing > 0.1 * GRID * GRID,
        `${SHAPE_KINDS[a]} vs ${SHAPE_KINDS[b]}: ${differing} cells differ`,
      );
    }
  }
});

const insideAt = test.macro({
  exec(t, kind: ShapeKind, u: number, v: number, expected: boolean) {
    t.is(isInsideShape(kind, u, v), expected);
  },
  title: (_, kind, u, v, expected) => `${kind} ${expected ? 'contains' : 'excludes'} (${u}, ${v})`,
});

test(insideAt, 'ring', 0, 0, false);
test(insideAt, 'ring', 0.8, 0, true);
test(insideAt, 'circle', 0.8, 0.8, false);
test(insideAt, 'square', 0.95, -0.95, true);
test(insideAt, 'plus', 0.8, 0.8, false);
test(insideAt, 'plus', 0.9, 0, true);
test(insideAt, 'triangle', -0.9, -0.9, false);
test(insideAt, 'triangle', 0, -0.9, true);
test(insideAt, 'star', 0, 0, true);
test(insideAt, 'diamond', 0.6, 0.6, false);
test(insideAt, 'cross', 0.9, 0.9, true);
test(insideAt, 'cross', 0.9, 0, false);
