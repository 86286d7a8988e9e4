import type { Client, ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import type { ExecutionContext } from 'ava';
import { createRpcClient, openServerStream, type RpcCallOptions } from '../../../shared/rpc/client.js';
import { loadProto, methodOf } from '../../../shared/rpc/proto.js';
import { RpcServer, type RpcServerOptions } from '../../../shared/rpc/server.js';

/** peer.proto's service, used here only as a generic service with a unary and a streaming method. */
export const peer = loadProto('peer.proto');
export const PEER = 'ssdcluster.peer.v1.Peer';
export const peerService = peer.service(PEER);

export interface Ping {
  generation: number;
}
export interface Pong {
  generation: number;
  rank: number;
  size: number;
  layoutHash: string;
}
export interface Open {
  generation: number;
  fromRank: number;
  layoutHash: string;
}
export interface Chunk {
  step: number;
  data: Uint8Array;
}
export const pingMethod = methodOf<Ping, Pong>(peerService, 'Ping');
export const openMethod = methodOf<Open, Chunk>(peerService, 'OpenRing');

export interface FixtureHandlers {
  Ping?: (call: ServerUnaryCall<Ping, Pong>, callback: sendUnaryData<Pong>) => void;
  OpenRing?: (call: ServerWritableStream<Open, Chunk>) => void;
}

/** A server on 127.0.0.1:0 with the given handlers and a client to it, both closed at teardown. */
export async function startFixture(
  t: ExecutionContext,
  handlers: FixtureHandlers,
  options: RpcServerOptions = {},
) {
  const server = new RpcServer(options);
  const defaults: Required<FixtureHandlers> = {
    Ping: (_call, cb) => cb(null, { generation: 0, rank: 0, size: 1, layoutHash: '' }),
    OpenRing: (call) => call.end(),
  };
  server.addService(peerService, { ...defaults, ...handlers });
  t.teardown(() => server.close());
  const port = await server.listen('127.0.0.1:0');
  const client = createRpcClient(`127.0.0.1:${port}`);
  t.teardown(() => client.close());
  return { server, port, client };
}

/** Opens OpenRing on the fixture server with a neutral request. */
export function openFixtureStream(
  client: Client,
  onMessage: (m: Chunk) => void = () => {},
  options?: RpcCallOptions,
) {
  return openServerStream(
    client,
    openMethod,
    { generation: 0, fromRank: 0, layoutHash: '' },
    onMessage,
    options,
  );
}
