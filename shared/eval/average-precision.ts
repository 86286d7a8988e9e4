/**
 * Average precision from a ranked list of outcomes (pure). Two metrics:
 *
 * - 'voc07', the 11-point interpolated AP of VOC2007 (`use_07_metric=True`), used for every SSD / GluonCV /
 *   SageMaker-era VOC07 number: AP = (1/11) * sum over t of max(precision where recall >= t), 0 if none.
 *   The thresholds are those of `np.arange(0., 1.1, 0.1)` as py-faster-rcnn, GluonCV and detectron2 compute
 *   them, i.e. k * 0.1 in float64: 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001 are a hair
 *   above 0.3, 0.6 and 0.7. So a recall of exactly 3/10 does NOT reach the 0.3 threshold: TP,TP,TP,FP,FP with
 *   10 positives gives 3/11, not the 4/11 that exact tenths would give (SPEC Part 2, section 3).
 * - 'area', the all-point AP of VOC2010+: the area under the precision envelope mpre[i] = max(mpre[i:]),
 *   summed over the steps where recall changes, with sentinels (0, 0) in front and (1, 0) behind.
 */
export type ApMetric = 'voc07' | 'area';

export const AP_METRICS: readonly ApMetric[] = ['voc07', 'area'];

/** The 11 recall thresholds, bit-identical to numpy's arange(0, 1.1, 0.1). */
export const VOC07_RECALL_THRESHOLDS: readonly number[] = Array.from({ length: 11 }, (_, k) => k * 0.1);

export interface PrecisionRecall {
  recall: Float64Array;
  precision: Float64Array;
}

/**
 * Cumulative recall and precision over outcomes sorted by score descending (true = TP, false = FP).
 * Detections ignored because they hit a difficult box must be left out before calling this: they change
 * neither count, and leaving them out avoids the 0/0 precision py-faster-rcnn turns into NaN.
 */
export function precisionRecall(isTruePositive: ArrayLike<boolean>, numPositives: number): PrecisionRecall {
  const n = isTruePositive.length;
  const recall = new Float64Array(n);
  const precision = new Float64Array(n);
  let tp = 0;
  for (let k = 0; k < n; k++) {
    if (isTruePositive[k]) tp++;
    recall[k] = tp / numPositives;
    precision[k] = tp / (k + 1);
  }
  return { recall, precision };
}

/** Sums the 11 maxima, then divides once (GluonCV adds p/11 eleven times: 1.0000000000000002 for a perfect class). */
export function elevenPointAp({ recall, precision }: PrecisionRecall): number {
  let sum = 0;
  for (const t of VOC07_RECALL_THRESHOLDS) {
    let p = 0;
    for (let k = 0; k < recall.length; k++) {
      if (recall[k]! >= t && precision[k]! > p) p = precision[k]!;
    }
    sum += p;
  }
  return sum / 11;
}

export function areaAp({ recall, precision }: PrecisionRecall): number {
  const n = recall.length;
  const mrec = new Float64Array(n + 2);
  const mpre = new Float64Array(n + 2);
  mrec.set(recall, 1);
  mrec[n + 1] = 1;
  mpre.set(precision, 1);
  for (let i = n; i >= 0; i--) mpre[i] = Math.max(mpre[i]!, mpre[i + 1]!);
  let ap = 0;
  for (let i = 0; i <= n; i++) {
    if (mrec[i + 1] !== mrec[i]) ap += (mrec[i + 1]! - mrec[i]!) * mpre[i + 1]!;
  }
  return ap;
}

export function averagePrecision(metric: ApMetric, curve: PrecisionRecall): number {
  return metric === 'voc07' ? elevenPointAp(curve) : areaAp(curve);
}
