/**
 * A push decoder for RecordIO bytes, with no I/O (the shape of grpc-js `stream-decoder.ts`): feed it
 * chunks in file order with `write(chunk)`, get back the records they complete, and call `end()` at the
 * end of the data so that a truncated tail is an error rather than a silent loss.
 *
 * Speed: a whole record (cflag 0) that lies inside one chunk is returned as a `subarray` of that chunk,
 * with no copy; parts that straddle chunks and the leading parts of multi-part records are copied.
 * Invariant: once write() returns, the decoder holds no reference to the chunk (only the records it
 * returned may be views of it), so a caller may reuse a chunk buffer as soon as it is done with those
 * records.
 *
 * Ordering rules enforced (dmlc-core only checks the magic): a record starts with a part of cflag 0 or 1;
 * after cflag 1 or 2 the next part must be cflag 2 or 3; cflag 4..7 never occurs. Every error is a
 * RecordIOError naming the source and the byte offset, and the decoder stays failed afterwards.
 */
import { RecordIOError } from '../errors.js';
import {
  CFLAG,
  firstAlignedMagic,
  lrecCflag,
  lrecLength,
  MAGIC_BYTES,
  paddedLength,
  RECORD_HEADER_BYTES,
  RECORDIO_LEGACY_MAGIC,
  RECORDIO_MAGIC,
  RECORDIO_MAX_LENGTH,
} from './record.js';

export interface DecodedRecord {
  /** Byte offset of the record's first magic in the file. */
  offset: number;
  /** The record's data, with escaped magic words re-inserted. May share memory with the input chunk. */
  payload: Buffer;
}

export interface RecordDecoderOptions {
  /** File or URL named in errors. */
  source: string;
  /** File offset of the first byte given to write() (for byte-range reads); default 0. */
  baseOffset?: number;
  /** Largest payload accepted, after joining parts; default 2^29 - 1 (the writer's limit). */
  maxRecordBytes?: number;
}

type Phase = 'header' | 'body' | 'pad';
const EMPTY = Buffer.alloc(0);

export class RecordDecoder {
  readonly source: string;
  private readonly maxRecordBytes: number;
  /** File offset of the first byte of the next chunk. */
  private chunkOffset: number;
  private phase: Phase = 'header';
  private readonly header = Buffer.alloc(RECORD_HEADER_BYTES);
  private headerFill = 0;
  private partOffset = 0;
  private partCflag = 0;
  private partLength = 0;
  private partBody: Buffer = EMPTY;
  private partFill = 0;
  private padLeft = 0;
  /** The part's last data bytes (length % 4) and then its padding: the word checkPaddedWord looks at. */
  private readonly paddedWord = Buffer.alloc(4);
  private paddedWordFill = 0;
  /** Offset of the record being assembled, or -1 between records. */
  private recordOffset = -1;
  /** Parts (and re-inserted magics) of a multi-part record so far. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private failure: unknown = null;

  constructor(options: RecordDecoderOptions) {
    this.source = options.source;
    this.chunkOffset = options.baseOffset ?? 0;
    this.maxRecordBytes = options.maxRecordBytes ?? RECORDIO_MAX_LENGTH;
  }

  /** File offset of the next byte the decoder expects. */
  get position(): number {
    return this.chunkOffset;
  }

  /** Offset of the record whose parts are being read (its head is valid), or -1 between records. */
  get pendingRecordOffset(): number {
    return this.recordOffset;
  }

  /** True between records (nothing buffered): ending here is not a truncation. */
  get atRecordBoundary(): boolean {
    return this.phase === 'header' && this.headerFill === 0 && this.recordOffset < 0;
  }

  /** How many more bytes would at least be needed to finish the current part (a hint for exact reads). */
  get bytesNeeded(): number {
    const nextHeader =
      this.partCflag === CFLAG.first || this.partCflag === CFLAG.middle ? RECORD_HEADER_BYTES : 0;
    if (this.phase === 'header') return RECORD_HEADER_BYTES - this.headerFill;
    if (this.phase === 'pad') return this.padLeft + nextHeader;
    const pad = paddedLength(this.partLength) - this.partLength;
    return this.partLength - this.partFill + pad + nextHeader;
  }

  /**
   * Decodes `chunk` and appends the records it completes to `out` (returned). On an error, the
   * records decoded before it are already in `out`, so a caller can pass them on before failing.
   */
  write(chunk: Buffer, out: DecodedRecord[] = []): DecodedRecord[] {
    if (this.failure) throw this.failure;
    let pos = 0;
    try {
      while (pos < chunk.length) {
        if (this.atRecordBoundary) pos = this.wholeRecords(chunk, pos, out);
        if (pos < chunk.length) pos = this.step(chunk, pos, out);
      }
    } catch (err) {
      this.failure = err;
      throw err;
    }
    this.chunkOffset += chunk.length;
    return out;
  }

  /** Declares the end of the data; throws if it cuts a record short. */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.atRecordBoundary) return;
    this.failure = this.truncation();
    throw this.failure;
  }

  /** Fast path: whole single-part records inside the chunk, as zero-copy views. */
  private wholeRecords(chunk: Buffer, pos: number, out: DecodedRecord[]): number {
    while (pos + RECORD_HEADER_BYTES <= chunk.length) {
      const lrec = chunk.readUInt32LE(pos + 4);
      if (chunk.readUInt32LE(pos) !== RECORDIO_MAGIC || lrec >>> 29 !== CFLAG.whole) break;
      const length = lrec & RECORDIO_MAX_LENGTH;
      const end = pos + RECORD_HEADER_BYTES + paddedLength(length);
      if (end > chunk.length || length > this.maxRecordBytes) break;
      // A damaged length: the general path below reports it.
      if (firstAlignedMagic(chunk.subarray(pos + RECORD_HEADER_BYTES, end)) >= 0) break;
      out.push({
        offset: this.chunkOffset + pos,
        payload: chunk.subarray(pos + RECORD_HEADER_BYTES, pos + RECORD_HEADER_BYTES + length),
      });
      pos = end;
    }
    return pos;
  }

  /** General path: advances the state machine by one phase's worth of the chunk. */
  private step(chunk: Buffer, pos: number, out: DecodedRecord[]): number {
    const available = chunk.length - pos;
    if (this.phase === 'header') {
      const n = Math.min(RECORD_HEADER_BYTES - this.headerFill, available);
      chunk.copy(this.header, this.headerFill, pos, pos + n);
      this.headerFill += n;
      if (this.headerFill === RECORD_HEADER_BYTES) {
        this.headerFill = 0;
        this.onHeader(this.chunkOffset + pos + n - RECORD_HEADER_BYTES, out);
      }
      return pos + n;
    }
    if (this.phase === 'body') {
      const n = Math.min(this.partLength - this.partFill, available);
      // A part is kept as a view only if it completes a record in this write() (see the invariant above).
      const completesRecord = this.partCflag === CFLAG.whole || this.partCflag === CFLAG.last;
      if (this.partFill === 0 && n === this.partLength && completesRecord)
        this.partBody = chunk.subarray(pos, pos + n);
      else {
        if (this.partFill === 0) this.partBody = Buffer.allocUnsafe(this.partLength);
        chunk.copy(this.partBody, this.partFill, pos, pos + n);
      }
      const from = this.partFill;
      this.partFill += n;
      this.checkPartData(from);
      if (this.partFill === this.partLength) this.afterBody(out);
      return pos + n;
    }
    const n = Math.min(this.padLeft, available);
    chunk.copy(this.paddedWord, this.paddedWordFill, pos, pos + n);
    this.paddedWordFill += n;
    this.padLeft -= n;
    if (this.padLeft === 0) {
      this.checkPaddedWord();
      this.finishPart(out);
    }
    return pos + n;
  }

  private onHeader(offset: number, out: DecodedRecord[]): void {
    const magic = this.header.readUInt32LE(0);
    const lrec = this.header.readUInt32LE(4);
    this.checkMagic(magic, offset);
    const cflag = lrecCflag(lrec);
    const length = lrecLength(lrec);
    this.checkCflag(cflag, offset);
    if (this.recordOffset < 0) this.recordOffset = offset;
    if (this.partsBytes + length > this.maxRecordBytes) {
      throw new RecordIOError(
        this.source,
        this.recordOffset,
        `record length ${this.partsBytes + length} exceeds the limit of ${this.maxRecordBytes} bytes`,
      );
    }
    this.partOffset = offset;
    this.partCflag = cflag;
    this.partLength = length;
    this.partFill = 0;
    this.partBody = EMPTY;
    this.phase = 'body';
    if (length === 0) this.afterBody(out);
  }

  private checkMagic(magic: number, offset: number): void {
    if (magic === RECORDIO_MAGIC) return;
    const hex = `0x${magic.toString(16).padStart(8, '0')}`;
    const where = this.recordOffset < 0 ? '' : ` (inside the multi-part record at byte ${this.recordOffset})`;
    const why =
      magic === RECORDIO_LEGACY_MAGIC
        ? `legacy dmlc-core magic ${hex} (30-bit length) is not supported`
        : `bad magic ${hex}, expected 0x${RECORDIO_MAGIC.toString(16)}`;
    throw new RecordIOError(this.source, offset, `${why}${where}`);
  }

  private checkCflag(cflag: number, offset: number): void {
    if (cflag > CFLAG.last)
      throw new RecordIOError(this.source, offset, `invalid cflag ${cflag} (must be 0..3)`);
    const continuing = this.recordOffset >= 0;
    const isContinuation = cflag === CFLAG.middle || cflag === CFLAG.last;
    if (continuing && !isContinuation) {
      throw new RecordIOError(
        this.source,
        offset,
        `bad cflag sequence: cflag ${cflag} where the multi-part record at byte ${this.recordOffset} needs a middle (2) or last (3) part`,
      );
    }
    if (!continuing && isContinuation) {
      throw new RecordIOError(
        this.source,
        offset,
        `bad cflag sequence: cflag ${cflag} (${cflag === CFLAG.middle ? 'middle' : 'last'} part) without a first part`,
      );
    }
  }

  /**
   * The part's data so far, from `from` on, holds no aligned magic word. The writer escapes every one,
   * so a hit is a part head that this part's length runs over: the length is damaged. Checked as the
   * data arrives, so a huge damaged length fails at the first head it swallows; and a record that
   * passes holds no head a byte-range scan could resynchronise on (range-scan.ts relies on this).
   */
  private checkPartData(from: number): void {
    const hit = firstAlignedMagic(this.partBody.subarray(0, this.partFill), from & ~3);
    if (hit >= 0) throw this.damagedLength(hit);
  }

  /**
   * The last word of a padded part is no magic either: the writer pads with zeros. A length 1..3 bytes
   * into the next head would otherwise take the rest of its magic as padding, and lose that record.
   */
  private checkPaddedWord(): void {
    if (this.paddedWord.equals(MAGIC_BYTES)) throw this.damagedLength(this.partLength & ~3);
  }

  /** `hit`: offset in the part's data of the magic word the part runs over. */
  private damagedLength(hit: number): RecordIOError {
    const what = this.partOffset === this.recordOffset ? 'the record' : `its part at byte ${this.partOffset}`;
    return new RecordIOError(
      this.source,
      this.recordOffset,
      `damaged length: ${what} claims ${this.partLength} bytes, running over the record head at byte ` +
        `${this.partOffset + RECORD_HEADER_BYTES + hit} (data never holds an aligned magic word: the writer escapes them)`,
    );
  }

  private afterBody(out: DecodedRecord[]): void {
    this.padLeft = paddedLength(this.partLength) - this.partLength;
    this.phase = 'pad';
    if (this.padLeft === 0) {
      this.finishPart(out);
      return;
    }
    this.paddedWordFill = this.partLength & 3;
    this.partBody.copy(this.paddedWord, 0, this.partLength - this.paddedWordFill, this.partLength);
  }

  private finishPart(out: DecodedRecord[]): void {
    this.phase = 'header';
    const body = this.partBody;
    this.partBody = EMPTY;
    if (this.partCflag === CFLAG.whole) {
      out.push({ offset: this.recordOffset, payload: body });
      this.recordOffset = -1;
      return;
    }
    this.parts.push(body);
    this.partsBytes += body.length;
    if (this.partCflag === CFLAG.last) {
      out.push({ offset: this.recordOffset, payload: Buffer.concat(this.parts, this.partsBytes) });
      this.parts = [];
      this.partsBytes = 0;
      this.recordOffset = -1;
      return;
    }
    // The writer dropped a magic word here; put it back.
    this.parts.push(MAGIC_BYTES);
    this.partsBytes += MAGIC_BYTES.length;
  }

  private truncation(): RecordIOError {
    const ends = `the data ends at byte ${this.chunkOffset}`;
    if (this.phase === 'header' && this.headerFill > 0) {
      const at = this.chunkOffset - this.headerFill;
      return new RecordIOError(
        this.source,
        at,
        `truncated record header: ${ends}, ${this.headerFill} of 8 bytes in`,
      );
    }
    if (this.phase === 'header') {
      return new RecordIOError(
        this.source,
        this.recordOffset,
        `truncated multi-part record: ${ends} before its last part (cflag 3)`,
      );
    }
    const what = this.phase === 'body' ? `body (${this.partFill} of ${this.partLength} bytes)` : 'padding';
    const part = this.partOffset === this.recordOffset ? '' : ` in the part at byte ${this.partOffset}`;
    return new RecordIOError(this.source, this.recordOffset, `truncated record ${what}${part}: ${ends}`);
  }
}
