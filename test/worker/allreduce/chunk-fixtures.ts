import type { ChunkHead } from '../../../worker/allreduce/chunk-codec.js';
import type { ChunkStreamListener } from '../../../worker/allreduce/chunk-stream-decoder.js';

/** A message as a ChunkStreamListener saw it: its fields, declared length and payload pieces. */
export interface SeenChunk extends ChunkHead {
  byteLength: number;
  data: Uint8Array[];
}

/** A listener that records every message it is told about, checking the begin/data/end order. */
export function recordChunks(): { listener: ChunkStreamListener; chunks: SeenChunk[] } {
  const chunks: SeenChunk[] = [];
  let open: SeenChunk | undefined;
  const listener: ChunkStreamListener = {
    begin(head, byteLength) {
      if (open) throw new Error('begin before the previous message ended');
      open = { ...head, byteLength, data: [] };
    },
    data(bytes) {
      if (!open) throw new Error('data outside a message');
      open.data.push(bytes);
    },
    end() {
      if (!open) throw new Error('end without begin');
      chunks.push(open);
      open = undefined;
    },
  };
  return { listener, chunks };
}
