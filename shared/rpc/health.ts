import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, service as healthService } from 'grpc-health-check';
import type { RpcServer } from './server.js';

export { healthService };

/** What a component flips when it starts or stops serving (grpc.health.v1 statuses). */
export interface HealthReporter {
  /** `service` is a full service name, or '' for the whole server. */
  setServing(service: string, serving: boolean): void;
}

/**
 * Adds grpc.health.v1.Health (Check and Watch) and server reflection (v1 and v1alpha) to
 * `server`. Every named service and the whole server ('') start as SERVING; call
 * `setServing(name, false)` when shutting down so load balancers and probes see it first.
 */
export function addHealthAndReflection(
  server: RpcServer,
  options: { packageDefinitions: readonly PackageDefinition[]; services: readonly string[] },
): HealthReporter {
  const initial: Record<string, 'SERVING'> = { '': 'SERVING' };
  for (const name of options.services) initial[name] = 'SERVING';
  const health = new HealthImplementation(initial);
  health.addToServer(server.server);
  const merged: PackageDefinition = Object.assign({}, ...options.packageDefinitions);
  new ReflectionService(merged).addToServer(server.server);
  return {
    setServing: (service, serving) => health.setStatus(service, serving ? 'SERVING' : 'NOT_SERVING'),
  };
}
