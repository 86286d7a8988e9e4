/**
 * Produces items 0..count-1 with up to `window` productions in flight and consumes them strictly in
 * index order: the shape of both `synth` (draw + JPEG-encode, then append) and `pack` (read + check
 * + re-encode, then append). `produce(i)` starts synchronously when called, so CPU work in it
 * overlaps with the async work (libuv threads, storage) of the ones already in flight.
 *
 * When consuming fails or the signal aborts, productions still in flight are left to settle unseen.
 */
export async function produceInOrder<T>(
  count: number,
  window: number,
  produce: (index: number) => Promise<T>,
  consume: (value: T, index: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const inFlight: Promise<T>[] = [];
  let next = 0;
  for (let index = 0; index < count; index++) {
    signal?.throwIfAborted();
    while (inFlight.length < Math.max(1, window) && next < count) {
      const production = produce(next++);
      production.catch(() => {}); // awaited below in order; if we stop early, its failure is moot
      inFlight.push(production);
    }
    await consume(await inFlight.shift()!, index);
  }
}
