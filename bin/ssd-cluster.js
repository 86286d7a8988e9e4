#!/usr/bin/env node
// Entry point of the `ssd-cluster` CLI. The project ships TypeScript sources and runs them
// through tsx's loader (a runtime dependency), so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
