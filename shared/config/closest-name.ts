/** "Did you mean ...?" for unknown keys and flags. Pure. */

function normalise(name: string): string {
  return name.toLowerCase().replaceAll('-', '_');
}

/** Levenshtein distance (insert, delete, substitute), one row at a time. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitute = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitute));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The candidate nearest to `name` (case and '-' vs '_' ignored), or undefined when none is close:
 * within a third of the name's length, or a candidate that contains the name or is contained in it.
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const wanted = normalise(name);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const c = normalise(candidate);
    const distance = editDistance(wanted, c);
    const related = wanted.length >= 4 && (c.includes(wanted) || wanted.includes(c));
    const limit = related ? Number.POSITIVE_INFINITY : Math.max(2, Math.floor(wanted.length / 3));
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}
