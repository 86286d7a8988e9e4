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
  copyPayloadInto(p, out);
  return out;
}

/** Copies the payload's bytes, piece by piece, to the start of `out` (which must be long enough). */
export function copyPayloadInto(p: Payload, out: Uint8Array): void {
  let at = 0;
  for (const part of payloadParts(p)) {
    out.set(part, at);
    at += part.byteLength;
  }
}

/** Reused for pieces that do not start on a value boundary (one synchronous call at a time). */
const SCRATCH_BYTES = 64 * 1024;
const scratch = new Uint8Array(SCRATCH_BYTES);

export type BlockVisitor = (block: Uint8Array, index: number) => void;

/**
 * Cuts a payload that arrives piece by piece into blocks of whole values: `visit(block, index)`
 * gets views whose byteOffset is a multiple of `width` (ready for a Float32Array or Uint16Array
 * over them), `index` being the number of values before the block. A piece that starts
 * misaligned, and a value split between two pieces, pass through a small scratch buffer; every
 * other byte is visited where it lies. `visit` must be done with `block` when it returns.
 */
export class AlignedBlocks {
  private index = 0;
  private readonly carry: Uint8Array;
  private carried = 0;

  constructor(
    private readonly width: number,
    private readonly visit: BlockVisitor,
  ) {
    this.carry = new Uint8Array(width);
  }

  push(part: Uint8Array): void {
    const { width } = this;
    let pos = 0;
    if (this.carried > 0) {
      pos = Math.min(width - this.carried, part.byteLength);
      this.carry.set(part.subarray(0, pos), this.carried);
      this.carried += pos;
      if (this.carried < width) return;
      this.visit(this.carry, this.index++);
      this.carried = 0;
    }
    const whole = Math.floor((part.byteLength - pos) / width) * width;
    this.visitAligned(part.subarray(pos, pos + whole));
    pos += whole;
    this.carried = part.byteLength - pos;
    this.carry.set(part.subarray(pos), 0);
  }

  /** Throws when the pieces ended inside a value. */
  finish(): void {
    if (this.carried > 0) throw new RangeError(`payload length is not a multiple of ${this.width} bytes`);
  }

  private visitAligned(bytes: Uint8Array): void {
    const { width } = this;
    if (bytes.byteOffset % width === 0) {
      if (bytes.byteLength > 0) this.visit(bytes, this.index);
    } else {
      for (let at = 0; at < bytes.byteLength; at += SCRATCH_BYTES) {
        const piece = bytes.subarray(at, at + SCRATCH_BYTES);
        const block = scratch.subarray(0, piece.byteLength);
        block.set(piece);
        this.visit(block, this.index + at / width);
      }
    }
    this.index += bytes.byteLength / width;
  }
}

/** AlignedBlocks over a whole payload at once. */
export function forEachAlignedBlock(p: Payload, width: number, visit: BlockVisitor): void {
  const blocks = new AlignedBlocks(width, visit);
  for (const part of payloadParts(p)) blocks.push(part);
  blocks.finish();
}
