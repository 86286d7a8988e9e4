// Entry of the prepare thread (prepare-thread.ts). Plain JavaScript on purpose: worker threads do not
// inherit the tsx loader in Node 20, so the thread registers it before loading the TypeScript side.
import { register } from 'tsx/esm/api';

register();
await import('./prepare-thread-main.ts');
