import net from 'node:net';
import type { ExecutionContext } from 'ava';
import { runCli } from './run-cli.js';

/** A TCP port this test holds on 0.0.0.0 (where the coordinator and the workers listen) until it ends. */
export async function portInUse(t: ExecutionContext): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/**
 * runCli, also collecting what is written meanwhile to the process's own stderr, where libraries log
 * (grpc-js does). Run it from serial tests: the capture covers the whole process.
 */
export async function runCliCatchingStderr(argv: string[]) {
  const write = process.stderr.write;
  let written = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    written += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { ...(await runCli(argv)), processStderr: written };
  } finally {
    process.stderr.write = write;
  }
}
