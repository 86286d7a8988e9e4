import { ClusterError } from '../../shared/errors.js';
import type { CliCommand } from '../command.js';

/** Placeholder for a command whose issue is still open; it fails loudly, never pretends. */
export function notImplemented(name: string): CliCommand {
  return {
    name,
    summary: `${name} (not implemented yet)`,
    usage: `ssd-cluster ${name}: not implemented yet`,
    run: async () => {
      throw new ClusterError('INTERNAL', `the '${name}' command is not implemented yet`);
    },
  };
}
