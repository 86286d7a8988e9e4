import type { ExecutionContext } from 'ava';
import {
  GrpcRingTransport,
  type GrpcRingTransportOptions,
} from '../../../worker/allreduce/grpc-transport.js';
import { neighbours } from '../../../worker/allreduce/schedule.js';
import { type PeerServer, startPeerServer } from '../../../worker/peer-service.js';

export interface RingNode {
  transport: GrpcRingTransport;
  server: PeerServer;
  address: string;
}

/** `size` transports, each behind its own peer server on 127.0.0.1:0, closed at teardown. */
export async function startNodes(
  t: ExecutionContext,
  size: number,
  options: GrpcRingTransportOptions = {},
): Promise<RingNode[]> {
  const nodes: RingNode[] = [];
  for (let rank = 0; rank < size; rank++) {
    const transport = new GrpcRingTransport({ connectTimeoutMs: 5000, ...options });
    const server = await startPeerServer({ handler: transport, address: '127.0.0.1:0' });
    t.teardown(async () => {
      await transport.close();
      await server.close();
    });
    nodes.push({ transport, server, address: `127.0.0.1:${server.port}` });
  }
  return nodes;
}

/** Every node joins `generation` (all at once, as after a membership change). */
export function joinAll(
  nodes: readonly RingNode[],
  generation: number,
  options: { layoutHash?: (rank: number) => string; signal?: AbortSignal } = {},
) {
  const size = nodes.length;
  return Promise.allSettled(
    nodes.map((node, rank) =>
      node.transport.join(
        {
          generation,
          rank,
          size,
          leftAddress: nodes[neighbours(rank, size).left]!.address,
          layoutHash: options.layoutHash?.(rank) ?? 'layout-1',
        },
        options.signal ?? AbortSignal.timeout(10_000),
      ),
    ),
  );
}
