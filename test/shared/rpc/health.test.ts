import {
  type Client,
  type ClientDuplexStream,
  credentials,
  loadPackageDefinition,
  makeGenericClientConstructor,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import test from 'ava';
import { addHealthAndReflection, healthService } from '../../../shared/rpc/health.js';
import { RpcServer } from '../../../shared/rpc/server.js';
import { PEER, peer, peerService } from './peer-fixture.js';

async function startServer(t: import('ava').ExecutionContext) {
  const server = new RpcServer();
  server.addService(peerService, { Ping: () => {}, OpenRing: () => {} });
  const health = addHealthAndReflection(server, {
    packageDefinitions: [peer.packageDefinition],
    services: [PEER],
  });
  t.teardown(() => server.close());
  const port = await server.listen('127.0.0.1:0');
  return { port, health };
}

type ListReply = { listServicesResponse: { service: { name: string }[] } };
type ReflectionClient = Client & {
  ServerReflectionInfo(): ClientDuplexStream<{ listServices: string }, ListReply>;
};
type Callback<T> = (err: Error | null, value?: T) => void;

function check(port: number, service: string, t: import('ava').ExecutionContext): Promise<string> {
  const Client = makeGenericClientConstructor(healthService, 'Health');
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as {
    Check(req: { service: string }, cb: Callback<{ status: string }>): void;
    close(): void;
  };
  t.teardown(() => client.close());
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res!.status))),
  );
}

test('the health service answers SERVING for the server and its service, then NOT_SERVING', async (t) => {
  const { port, health } = await startServer(t);
  t.is(await check(port, '', t), 'SERVING');
  t.is(await check(port, PEER, t), 'SERVING');
  health.setServing(PEER, false);
  t.is(await check(port, PEER, t), 'NOT_SERVING');
  await t.throwsAsync(check(port, 'no.such.Service', t), { message: /NOT_FOUND/ });
});

test('server reflection lists the peer service', async (t) => {
  const { port } = await startServer(t);
  const reflectionProto = new URL(
    '../../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto',
    import.meta.url,
  );
  const pkg = loadPackageDefinition(loadSync(reflectionProto.pathname)) as never as {
    grpc: {
      reflection: { v1: { ServerReflection: new (addr: string, creds: unknown) => ReflectionClient } };
    };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(
    `127.0.0.1:${port}`,
    credentials.createInsecure(),
  );
  t.teardown(() => client.close());
  const call = client.ServerReflectionInfo();
  const reply = new Promise<ListReply>((resolve, reject) => {
    call.once('data', resolve);
    call.once('error', reject);
  });
  call.write({ listServices: '' });
  const names = (await reply).listServicesResponse.service.map((s) => s.name);
  call.end();
  t.true(names.includes(PEER), names.join(', '));
});
