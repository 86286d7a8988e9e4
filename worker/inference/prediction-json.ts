/**
 * The response body of SageMaker's object-detection endpoint (SPEC part 1, 1.4), byte for byte in
 * style: `{"prediction": [[4.0, 0.93, 0.1, 0.2, 0.5, 0.6], ...]}`. Every number in a row is written as
 * a float (an integral value gets `.0`), as the MXNet/Python container writes them, so clients that
 * branch on int vs float after json.loads see what they saw from SageMaker. Pure.
 */
import { ClusterError } from '../../shared/errors.js';

/** [class, score, xmin, ymin, xmax, ymax]: class id 0-based, box normalised to the original image. */
export type PredictionRow = readonly number[];

function formatFloat(x: number): string {
  if (!Number.isFinite(x)) throw new ClusterError('INTERNAL', `prediction value ${x} is not finite`);
  const text = String(x);
  return Number.isInteger(x) && !/e/i.test(text) ? `${text}.0` : text;
}

/** `{"prediction": [...]}` without a trailing newline. */
export function formatPrediction(rows: readonly PredictionRow[]): string {
  const body = rows.map((row) => `[${row.map(formatFloat).join(', ')}]`).join(', ');
  return `{"prediction": [${body}]}`;
}
