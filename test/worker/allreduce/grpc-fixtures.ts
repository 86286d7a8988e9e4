import type {
  ServerInterceptingCall,
  ServerInterceptingCallInterface,
  ServerInterceptor,
} from '@grpc/grpc-js';
import type { ExecutionContext } from 'ava';
import { RpcServer } from '../../../shared/rpc/server.js';
import {
  GrpcRingTransport,
  type GrpcRingTransportOptions,
} from '../../../worker/allreduce/grpc-transport.js';
import { neighbours } from '../../../worker/allreduce/schedule.js';
import {
  type PeerHandler,
  type PeerServer,
  peerProto,
  peerServiceImplementation,
  startPeerServer,
} from '../../../worker/peer-service.js';

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

/**
 * A grpc-js server whose Peer.OpenRing is `openRing` (a scripted left neighbour), closed at
 * teardown. With `hideStream`, a server interceptor (public grpc-js API) wraps every call in an
 * object that delegates the call methods but exposes no HTTP/2 stream, so the peer service's
 * sink must write through grpc-js.
 */
export async function startScriptedPeer(
  t: ExecutionContext,
  openRing: PeerHandler['openRing'],
  options: { hideStream?: boolean } = {},
): Promise<string> {
  const interceptors: ServerInterceptor[] = options.hideStream ? [(_method, call) => hideStream(call)] : [];
  const server = new RpcServer({ channelOptions: { interceptors } });
  server.addService(
    peerProto().service,
    peerServiceImplementation({
      ping: () => ({ generation: 0, rank: 0, size: 0, layoutHash: '' }),
      openRing,
    }),
  );
  t.teardown(() => server.close());
  return `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
}

/** Typed as the class grpc-js declares; the server only calls the interface's methods. */
function hideStream(call: ServerInterceptingCallInterface): ServerInterceptingCall {
  const hidden = new Proxy(call, {
    get(target, property) {
      if (property === 'stream' || property === 'nextCall') return undefined;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return hidden as ServerInterceptingCall;
}
