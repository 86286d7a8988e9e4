import { Metadata, status } from '@grpc/grpc-js';
import test from 'ava';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { createMemoryLogger } from '../../../shared/logging.js';
import { fromServiceError, RpcError, toStatus } from '../../../shared/rpc/status.js';

function serviceError(code: number, details: string, metadata = new Metadata()) {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

const mapped = test.macro({
  exec(t, code: ClusterError['code'], grpc: number) {
    const s = toStatus(new ClusterError(code, 'boom'));
    t.is(s.code, grpc);
    t.is(s.details, 'boom');
    t.deepEqual(s.metadata?.get('ssd-cluster-code'), [code]);
  },
  title: (_, code: string, grpc: number) => `toStatus maps ${code} to ${status[grpc]}`,
});
test(mapped, 'STALE_GENERATION', status.FAILED_PRECONDITION);
test(mapped, 'ABORTED', status.CANCELLED);
test(mapped, 'PEER_LOST', status.UNAVAILABLE);
test(mapped, 'PROTOCOL', status.INVALID_ARGUMENT);
test(mapped, 'TIMEOUT', status.DEADLINE_EXCEEDED);
test(mapped, 'NOT_FOUND', status.NOT_FOUND);
test(mapped, 'CHECKPOINT_CORRUPT', status.DATA_LOSS);

test('toStatus maps an AbortSignal abort to CANCELLED', (t) => {
  const controller = new AbortController();
  controller.abort();
  t.is(toStatus(controller.signal.reason).code, status.CANCELLED);
});

test('toStatus maps an unknown error to UNKNOWN and logs its stack', (t) => {
  const logger = createMemoryLogger();
  const s = toStatus(new TypeError('x is undefined'), logger);
  t.is(s.code, status.UNKNOWN);
  t.is(s.details, 'x is undefined');
  t.is(logger.entries[0]?.level, 'error');
  t.regex(String(logger.entries[0]?.fields.stack), /TypeError: x is undefined/);
});

test('fromServiceError keeps the exact code sent in metadata and names the path', (t) => {
  const s = toStatus(new ClusterError('COORDINATOR_LOST', 'coordinator went away'));
  const err = fromServiceError('/pkg.Svc/Join', serviceError(s.code, s.details, s.metadata!));
  t.true(err instanceof RpcError);
  t.true(isClusterError(err, 'COORDINATOR_LOST'));
  t.is(err.message, '/pkg.Svc/Join failed with UNAVAILABLE: coordinator went away');
  t.is((err as RpcError).path, '/pkg.Svc/Join');
});

test('fromServiceError maps a bare gRPC status by its code', (t) => {
  t.is(fromServiceError('/a/B', serviceError(status.FAILED_PRECONDITION, 'old')).code, 'STALE_GENERATION');
  t.is(fromServiceError('/a/B', serviceError(status.UNAVAILABLE, 'refused')).code, 'PEER_LOST');
  t.is(fromServiceError('/a/B', serviceError(status.RESOURCE_EXHAUSTED, 'too big')).code, 'INTERNAL');
  const other = fromServiceError('/a/B', new Error('socket hang up'));
  t.is(other.code, 'INTERNAL');
  t.regex(other.message, /\/a\/B failed/);
});
