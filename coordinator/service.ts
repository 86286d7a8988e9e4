import type { handleUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { type Logger, noopLogger } from '../shared/logging.js';
import { addHealthAndReflection, type HealthReporter } from '../shared/rpc/health.js';
import { RpcServer, unaryHandler } from '../shared/rpc/server.js';
import { toStatus } from '../shared/rpc/status.js';
import type { Coordinator } from './coordinator.js';
import {
  COORDINATOR_SERVICE,
  coordinatorProto,
  type JoinRequestMsg,
  type JoinResponseMsg,
} from './protocol.js';

/** gRPC handlers: decode, call the coordinator, encode; errors become statuses in shared/rpc/status.ts. */
export function coordinatorHandlers(
  c: Coordinator,
  logger: Logger = noopLogger,
): UntypedServiceImplementation {
  const join: handleUnaryCall<JoinRequestMsg, JoinResponseMsg> = (call, callback) => {
    try {
      callback(null, c.join(call.request, call.getPeer()));
    } catch (err) {
      callback(toStatus(err, logger));
    }
  };
  return {
    Join: join,
    Heartbeat: unaryHandler((req: Parameters<Coordinator['heartbeat']>[0]) => c.heartbeat(req), logger),
    GetAssignment: unaryHandler(
      (req: Parameters<Coordinator['getAssignment']>[0], signal) => c.getAssignment(req, signal),
      logger,
    ),
    ReportStep: unaryHandler((req: Parameters<Coordinator['reportStep']>[0]) => c.reportStep(req), logger),
    ReportEpoch: unaryHandler(
      (req: Parameters<Coordinator['reportEpoch']>[0], signal) => c.reportEpoch(req, signal),
      logger,
    ),
    ReportDone: unaryHandler((req: Parameters<Coordinator['reportDone']>[0]) => {
      c.reportDone(req);
      return {};
    }, logger),
    Leave: unaryHandler((req: Parameters<Coordinator['leave']>[0]) => {
      c.leave(req);
      return {};
    }, logger),
  };
}

export interface CoordinatorServer {
  port: number;
  health: HealthReporter;
  close(): Promise<void>;
}

/** Serves the coordinator, gRPC health and reflection on `address` (e.g. 0.0.0.0:7070). */
export async function startCoordinatorServer(
  c: Coordinator,
  address: string,
  logger: Logger = noopLogger,
): Promise<CoordinatorServer> {
  const { proto, service } = coordinatorProto();
  const server = new RpcServer({ logger });
  server.addService(service, coordinatorHandlers(c, logger));
  const health = addHealthAndReflection(server, {
    packageDefinitions: [proto.packageDefinition],
    services: [COORDINATOR_SERVICE],
  });
  const port = await server.listen(address);
  return {
    port,
    health,
    close: async () => {
      health.setServing('', false);
      health.setServing(COORDINATOR_SERVICE, false);
      await server.close();
    },
  };
}
