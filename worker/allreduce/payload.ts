/**
 * The values of a ring message (pure). A sender hands over one contiguous view; a receiver may
 * hold the payload as the pieces it arrived in (views of its socket reads, in order), so that
 * the ring sums or copies them where they lie instead of first joining them into one buffer.
 * Pieces start at any byte offset and a value may straddle two of them.
 */
export type Payload = Uint8Array | readonly Uint8Array[];

export function payloadParts(p: Payload): readonly Uint8Array[] {
  return p instanceof Uint8Array ? [p] : p;
}

export function payloadByteLength(p: Payload): number {
  if (p instanceof Uint8Array) return p.byteLength;
  let n = 0;
  for (const part of p) n += part.byteLength;
  return n;
}

/** The payload as one view: itself when it is one piece, else a copy of its pieces joined. */
export function joinPayload(p: Payload): Uint8Array {
  if (p instanceof Uint8Array) return p;
  if (p.length === 1) return p[0]!;
  const out = new Uint8Array(payloadByteLength(p));
  let at = 0;
  for (const part of p) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** Reused for pieces that do not start on a value boundary (one synchronous call at a time). */
const SCRATCH_BYTES = 64 * 1024;
const scratch = new Uint8Array(SCRATCH_BYTES);

/**
 * Calls `visit(block, index)` for consecutive blocks of the payload's values in order, where
 * `block` is a view whose byteOffset is a multiple of `width` (ready for a Float32Array or
 * Uint16Array over it) and `index` is the number of values before it. A piece that starts
 * misaligned, and a value split between two pieces, pass through a small scratch buffer; every
 * other byte is visited where it lies. `visit` must be done with `block` when it returns.
 */
export function forEachAlignedBlock(
  p: Payload,
  width: number,
  visit: (block: Uint8Array, index: number) => void,
): void {
  let index = 0;
  const carry = new Uint8Array(width);
  let carried = 0;
  for (const part of payloadParts(p)) {
    let pos = 0;
    if (carried > 0) {
      const n = Math.min(width - carried, part.byteLength);
      carry.set(part.subarray(0, n), carried);
      carried += n;
      pos = n;
      if (carried < width) continue;
      visit(carry, index++);
      carried = 0;
    }
    const whole = Math.floor((part.byteLength - pos) / width) * width;
    visitAligned(part.subarray(pos, pos + whole), width, index, visit);
    index += whole / width;
    pos += whole;
    carried = part.byteLength - pos;
    carry.set(part.subarray(pos), 0);
  }
  if (carried > 0) throw new RangeError(`payload length is not a multiple of ${width} bytes`);
}

function visitAligned(
  bytes: Uint8Array,
  width: number,
  index: number,
  visit: (block: Uint8Array, index: number) => void,
): void {
  if (bytes.byteOffset % width === 0) {
    if (bytes.byteLength > 0) visit(bytes, index);
    return;
  }
  for (let at = 0; at < bytes.byteLength; at += SCRATCH_BYTES) {
    const piece = bytes.subarray(at, at + SCRATCH_BYTES);
    const block = scratch.subarray(0, piece.byteLength);
    block.set(piece);
    visit(block, index + at / width);
  }
}
