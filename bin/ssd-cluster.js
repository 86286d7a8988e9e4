#!/usr/bin/env node
// Entry point of the `ssd-cluster` CLI. The project ships TypeScript sources and runs them
// through tsx's loader (a runtime dependency), so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
// The AWS SDK warns once per process that it will require Node 22 from 2027; engines says >= 20.19.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
