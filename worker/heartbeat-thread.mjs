// The worker's heartbeat, on its own thread. A training step can keep the main thread busy for many
// seconds (tfjs kernels on CPU backends are synchronous), and a heartbeat that waits for it would
// make the coordinator declare a busy worker lost. This thread shares nothing with the training but
// the messages below, so it beats on time whatever the main thread is doing.
//
// Plain JavaScript on purpose: worker threads do not inherit the tsx loader in Node 20.
//
// Messages in:  { type: 'position', generation, position }  |  { type: 'stop' }
// Messages out: { type: 'generation', generation }  (the coordinator moved past ours)
//               { type: 'lost', message }            (unreachable for longer than the timeout)
import { parentPort, workerData } from 'node:worker_threads';
import { credentials, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const { address, workerId, intervalMs, coordinatorTimeoutMs, protoDir } = workerData;
const definition = loadSync('cluster.proto', {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [protoDir],
});
const Coordinator = loadPackageDefinition(definition).ssdcluster.v1.Coordinator;
const client = new Coordinator(address, credentials.createInsecure());

let generation = 0;
let position = { epoch: 0, step: 0, phase: 'idle', bucket: 0 };
let lastContact = Date.now();
let stopped = false;
let timer;

function beat() {
  const deadline = new Date(Date.now() + Math.max(1000, intervalMs * 2));
  client.heartbeat({ workerId, generation, position }, { deadline }, (err, answer) => {
    if (stopped) return;
    if (err) {
      if (Date.now() - lastContact > coordinatorTimeoutMs) {
        parentPort.postMessage({
          type: 'lost',
          message: `no answer from the coordinator for ${coordinatorTimeoutMs} ms: ${err.message}`,
        });
        lastContact = Date.now();
      }
    } else {
      lastContact = Date.now();
      if (answer.generation > generation)
        parentPort.postMessage({ type: 'generation', generation: answer.generation });
    }
    timer = setTimeout(beat, intervalMs);
  });
}

parentPort.on('message', (message) => {
  if (message.type === 'position') {
    generation = message.generation;
    position = message.position;
  } else if (message.type === 'stop') {
    stopped = true;
    clearTimeout(timer);
    client.close();
    parentPort.close();
  }
});

beat();
