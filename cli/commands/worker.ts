import type { CliCommand } from '../command.js';
import { notImplemented } from './not-implemented.js';

export const command: CliCommand = notImplemented('worker');
