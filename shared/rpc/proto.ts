import { fileURLToPath } from 'node:url';
import {
  type GrpcObject,
  loadPackageDefinition,
  type MethodDefinition,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { ClusterError } from '../errors.js';

/** The repository's proto/ directory. */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/**
 * proto-loader options used for every .proto of the project, in one place:
 * - camelCase field names in TypeScript (`layout_hash` -> `layoutHash`);
 * - 64-bit integers as JS numbers (generations, rounds and offsets stay far below 2^53);
 * - enums as their names; absent fields filled with defaults; `bytes` as Buffer views.
 */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export interface LoadedProto {
  /** What proto-loader produced; reflection needs it. */
  packageDefinition: PackageDefinition;
  /** `service('ssdcluster.peer.v1.Peer')` -> the grpc-js service definition. */
  service(fullName: string): ServiceDefinition;
}

const cache = new Map<string, LoadedProto>();

/** Loads (once per process) a .proto file from proto/, e.g. `loadProto('peer.proto')`. */
export function loadProto(fileName: string): LoadedProto {
  const hit = cache.get(fileName);
  if (hit) return hit;
  let packageDefinition: PackageDefinition;
  try {
    packageDefinition = loadSync(fileName, PROTO_LOADER_OPTIONS);
  } catch (err) {
    throw new ClusterError('INTERNAL', `cannot load ${PROTO_DIR}${fileName}`, { cause: err });
  }
  const root = loadPackageDefinition(packageDefinition);
  const loaded: LoadedProto = {
    packageDefinition,
    service: (fullName) => lookupService(root, fileName, fullName),
  };
  cache.set(fileName, loaded);
  return loaded;
}

function lookupService(root: GrpcObject, fileName: string, fullName: string): ServiceDefinition {
  let node: unknown = root;
  for (const part of fullName.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  const service = (node as { service?: ServiceDefinition } | undefined)?.service;
  if (!service) throw new ClusterError('INTERNAL', `${fileName} defines no service ${fullName}`);
  return service;
}

/** The method definition of `service` named `method`, typed by the caller. */
export function methodOf<Req, Res>(service: ServiceDefinition, method: string): MethodDefinition<Req, Res> {
  const def = service[method];
  if (!def) throw new ClusterError('INTERNAL', `service has no method ${method}`);
  return def as MethodDefinition<Req, Res>;
}
