import { ClusterError } from '../../shared/errors.js';
import { addF16Into, copyF16Into } from './fp16.js';
import { AlignedBlocks } from './payload.js';
import type { Range } from './schedule.js';
import type { ChunkDtype, ChunkHeader, PayloadReceiver } from './transport.js';

export interface RangeReceiverOptions {
  /** The whole buffer being all-reduced. */
  buffer: Float32Array;
  /** Where this message's values go. */
  range: Range;
  dtype: ChunkDtype;
  /** Reduce-scatter adds; all-gather overwrites. */
  isReduce: boolean;
  /** Names the sender in errors, e.g. `rank 2`. */
  sender: string;
  /** Called with the payload's byte length once all of it has been consumed. */
  onDone(byteLength: number): void;
}

/**
 * The ring's side of a receive (pure: bytes in, buffer updated): checks a message's header
 * against the range it must fill, then adds or copies its payload into `buffer` piece by piece
 * as it arrives, where the pieces lie. A float32 copy goes byte for byte; sums and binary16
 * values go through aligned blocks (payload.ts).
 */
export class RangeReceiver implements PayloadReceiver {
  private readonly dst: Float32Array;
  private bytes: Uint8Array | undefined;
  private filled = 0;
  private blocks: AlignedBlocks | undefined;
  private expectedBytes = 0;

  constructor(private readonly o: RangeReceiverOptions) {
    this.dst = o.buffer.subarray(o.range.start, o.range.end);
  }

  begin(h: ChunkHeader): void {
    const { dtype, range, isReduce } = this.o;
    const width = dtype === 'f16' ? 2 : 4;
    this.expectedBytes = this.dst.length * width;
    if (h.dtype !== dtype || h.offset !== range.start || h.byteLength !== this.expectedBytes) {
      throw new ClusterError(
        'PROTOCOL',
        `ring all-reduce: step ${h.step} chunk ${h.chunk} from ${this.o.sender} has ${h.dtype} offset ` +
          `${h.offset} and ${h.byteLength} bytes; expected ${dtype} offset ${range.start} and ` +
          `${this.expectedBytes} bytes (do all workers use the same --gradient-compression?)`,
      );
    }
    const { dst } = this;
    if (dtype === 'f32' && !isReduce) this.bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    else this.blocks = new AlignedBlocks(width, (b, index) => this.apply(b, index, width));
  }

  data(bytes: Uint8Array): void {
    if (this.bytes) this.bytes.set(bytes, this.filled);
    else this.blocks!.push(bytes);
    this.filled += bytes.byteLength;
  }

  end(): void {
    this.blocks?.finish();
    if (this.filled !== this.expectedBytes)
      throw new ClusterError(
        'PROTOCOL',
        `ring all-reduce: ${this.o.sender} sent ${this.filled} of ${this.expectedBytes} bytes`,
      );
    this.o.onDone(this.filled);
  }

  private apply(b: Uint8Array, index: number, width: number): void {
    const n = b.byteLength / width;
    const into = this.dst.subarray(index, index + n);
    if (this.o.dtype === 'f32') addInto(into, new Float32Array(b.buffer, b.byteOffset, n));
    else if (this.o.isReduce) addF16Into(into, new Uint16Array(b.buffer, b.byteOffset, n));
    else copyF16Into(into, new Uint16Array(b.buffer, b.byteOffset, n));
  }
}

/**
 * dst[i] += src[i], unrolled by 8: V8 compiles this to about half the time of the plain loop
 * (measured 11.7 -> 6.2 ms per 32 MiB on the 2-core dev machine).
 */
export function addInto(dst: Float32Array, src: Float32Array): void {
  const n = src.length;
  const m = n - (n % 8);
  let i = 0;
  for (; i < m; i += 8) {
    dst[i]! += src[i]!;
    dst[i + 1]! += src[i + 1]!;
    dst[i + 2]! += src[i + 2]!;
    dst[i + 3]! += src[i + 3]!;
    dst[i + 4]! += src[i + 4]!;
    dst[i + 5]! += src[i + 5]!;
    dst[i + 6]! += src[i + 6]!;
    dst[i + 7]! += src[i + 7]!;
  }
  for (; i < n; i++) dst[i]! += src[i]!;
}
