import type { ConvInfo } from './im2col.js';

/**
 * A strided transposed convolution (the input gradient of a strided conv) split by output phase, so
 * that each phase is an ordinary stride-1 convolution of dy, which XNNPACK runs at full speed, instead
 * of dy · W^T followed by a scatter-add of every patch (col2im) in JS.
 *
 * Forward, per axis: y[o] = sum_k x[o*s + k*d - p] w[k]. So dx[i] = sum over (o, k) with
 * o*s + k*d - p = i of dy[o] w[k]. For i = s*a + r (phase r in [0, s)), tap k contributes when
 * (r + p - k*d) is a multiple of s, reading dy[a + t] with offset t = (r + p - k*d) / s. Valid taps are
 * s / gcd(s, d) apart, so their offsets are d / gcd(s, d) apart: the phase is a stride-1 correlation of
 * dy with the valid taps (ordered by increasing offset) at that dilation, padded by -min(t) before.
 * The plan is pure arithmetic on the Conv2DInfo; the kernel (conv2d-backprop-input.ts) runs it.
 * The filter gradient splits x by the same phases (planeLayout, toPhasePlanes: used by im2col.ts).
 */
export interface AxisPhase {
  /** r: the phase's first input row (column); its positions are r, r + s, r + 2s, ... */
  phase: number;
  /** How many input positions the phase has: ceil((in - r) / s). */
  size: number;
  /** Filter taps k in order of increasing dy offset; empty when no tap reaches the phase or it has no positions. */
  taps: number[];
  /** The stride-1 correlation's dilation, pads before and after (both >= 0 in a usable plan). */
  dilation: number;
  padBefore: number;
  padAfter: number;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The phases of one axis, or null when a phase would need a negative pad (the caller falls back). */
export function axisPhases(
  inSize: number,
  outSize: number,
  filterSize: number,
  stride: number,
  dilation: number,
  padBefore: number,
): AxisPhase[] | null {
  const phases: AxisPhase[] = [];
  const phaseDilation = dilation / gcd(stride, dilation);
  for (let r = 0; r < stride; r++) {
    const size = Math.max(0, Math.ceil((inSize - r) / stride));
    const taps: number[] = [];
    for (let k = filterSize - 1; k >= 0; k--) {
      if ((r + padBefore - k * dilation) % stride === 0) taps.push(k);
    }
    if (taps.length === 0 || size === 0) {
      phases.push({ phase: r, size, taps: [], dilation: 1, padBefore: 0, padAfter: 0 });
      continue;
    }
    const firstOffset = (r + padBefore - taps[0]! * dilation) / stride;
    const before = 0 - firstOffset; // not -firstOffset, which is -0 for 0
    const after = size - outSize - before + (taps.length - 1) * phaseDilation;
    if (before < 0 || after < 0) return null;
    phases.push({ phase: r, size, taps, dilation: phaseDilation, padBefore: before, padAfter: after });
  }
  return phases;
}

/** Row and column phases of a strided backward convolution, or null (stride 1, or a negative pad). */
export function stridePhases(info: ConvInfo): { rows: AxisPhase[]; cols: AxisPhase[] } | null {
  if (info.strideHeight === 1 && info.strideWidth === 1) return null;
  const rows = axisPhases(
    info.inHeight,
    info.outHeight,
    info.filterHeight,
    info.strideHeight,
    info.dilationHeight,
    info.padInfo.top,
  );
  const cols = axisPhases(
    info.inWidth,
    info.outWidth,
    info.filterWidth,
    info.strideWidth,
    info.dilationWidth,
    info.padInfo.left,
  );
  return rows && cols ? { rows, cols } : null;
}

/**
 * The phase's filter [taps(h), taps(w), outChannels, inChannels] from an HWIO filter: the taps in
 * offset order with in/out swapped, so conv(dy, phaseFilter) is the phase of dx.
 */
export function phaseFilter(
  w: Float32Array,
  shape: readonly number[],
  tapsH: readonly number[],
  tapsW: readonly number[],
  out: Float32Array,
): void {
  const [, kw = 0, inC = 0, outC = 0] = shape;
  let at = 0;
  for (const h of tapsH) {
    for (const k of tapsW) {
      const tap = (h * kw + k) * inC * outC;
      for (let o = 0; o < outC; o++) {
        for (let i = 0; i < inC; i++) out[at + o * inC + i] = w[tap + i * outC + o]!;
      }
      at += inC * outC;
    }
  }
}

/**
 * Writes one phase's result [batch, rows.size, cols.size, C] into dx [batch, inH, inW, C] at rows
 * r + s*a, columns c + s*b.
 */
export function scatterPhase(
  part: Float32Array,
  info: ConvInfo,
  rows: AxisPhase,
  cols: AxisPhase,
  dx: Float32Array,
): void {
  const channels = info.inChannels;
  const { inHeight, inWidth, strideHeight, strideWidth } = info;
  const pixelStep = strideWidth * channels;
  let src = 0;
  for (let b = 0; b < info.batchSize; b++) {
    for (let a = 0; a < rows.size; a++) {
      let dst = ((b * inHeight + rows.phase + a * strideHeight) * inWidth + cols.phase) * channels;
      for (let j = 0; j < cols.size; j++) {
        for (let c = 0; c < channels; c++) dx[dst + c] = part[src + c]!;
        src += channels;
        dst += pixelStep;
      }
    }
  }
}

/**
 * How toChannelPlanes lays x out: one plane of height x width per (image, channel, stride phase).
 * A strided convolution without dilation is split by phase (rh, rw) = (ih mod sh, iw mod sw), so that
 * each tap reads one phase plane at stride 1: its patch-matrix rows become runs of plane rows (the
 * stride-1 copies) instead of element-by-element strided reads.
 */
export interface PlaneLayout {
  phasesH: number;
  phasesW: number;
  height: number;
  width: number;
}

export function planeLayout(info: ConvInfo): PlaneLayout {
  const strided = info.strideHeight > 1 || info.strideWidth > 1;
  if (!strided || info.dilationHeight > 1 || info.dilationWidth > 1) {
    return { phasesH: 1, phasesW: 1, height: info.inHeight, width: info.inWidth };
  }
  return {
    phasesH: info.strideHeight,
    phasesW: info.strideWidth,
    height: Math.ceil(info.inHeight / info.strideHeight),
    width: Math.ceil(info.inWidth / info.strideWidth),
  };
}

/** Floats of the planes: >= x's size (phases of odd sizes are padded with zeros). */
export function planesSize(info: ConvInfo): number {
  const l = planeLayout(info);
  return info.batchSize * info.inChannels * l.phasesH * l.phasesW * l.height * l.width;
}

/** toChannelPlanes (im2col.ts) for a phased layout. */
export function toPhasePlanes(x: Float32Array, info: ConvInfo, l: PlaneLayout, planes: Float32Array): void {
  const { inHeight, inWidth, inChannels: channels } = info;
  const planeSize = l.height * l.width;
  const phases = l.phasesH * l.phasesW;
  if (inHeight % l.phasesH !== 0 || inWidth % l.phasesW !== 0) planes.fill(0, 0, planesSize(info));
  let src = 0;
  for (let b = 0; b < info.batchSize; b++) {
    for (let ih = 0; ih < inHeight; ih++) {
      const rh = ih % l.phasesH;
      const rowBase = b * channels * phases * planeSize + rh * l.phasesW * planeSize;
      const rowAt = ((ih - rh) / l.phasesH) * l.width;
      for (let iw = 0; iw < inWidth; iw++) {
        const rw = iw % l.phasesW;
        let dst = rowBase + rw * planeSize + rowAt + (iw - rw) / l.phasesW;
        for (let c = 0; c < channels; c++) {
          planes[dst] = x[src++]!;
          dst += phases * planeSize;
        }
      }
    }
  }
}
