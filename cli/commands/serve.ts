import { errorMessage, isAbortError, UsageError } from '../../shared/errors.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { INVOCATION_CONTENT_TYPES } from '../../worker/inference/http-routing.js';
import { loadPredictor, type Predictor } from '../../worker/inference/predictor.js';
import { DEFAULT_MAX_IN_FLIGHT, startInferenceServer } from '../../worker/inference/server.js';
import { intFlag, numberFlag, parseCommandArgs } from '../args.js';
import { type CliCommand, writeJsonLine } from '../command.js';
import { compileModelSettings, MODEL_OPTIONS_HELP, modelOptions } from './predict.js';

const DEFAULT_PORT = 8080;
const DEFAULT_MAX_BODY_MB = 20;

const usage = `Usage: ssd-cluster serve --model MODEL [--port ${DEFAULT_PORT}] [--host 0.0.0.0] [options]

Serves a trained model over HTTP with SageMaker's hosting contract:
  GET  /ping          200 {"status":"ok"} once the model is loaded and warmed up; 503 before and while stopping
  POST /invocations   body: one image, Content-Type ${INVOCATION_CONTENT_TYPES.join(', ')}
                      -> 200 application/json {"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}
                      (as 'ssd-cluster predict' prints; boxes normalised to the image, class a float id)
Errors are JSON {"error": "..."}: 400 empty or undecodable body, 404 other paths, 405 wrong method,
413 body over --max-body-mb, 415 other content types, 503 not ready or too busy. Requests run
concurrently up to --max-in-flight; the network runs one batch at a time, requests that arrive
meanwhile share the next one. One JSON log line per request on stderr (status, bytes, ms).

The port is listening before the model loads; the first stdout line is {"url", "port"}. SIGTERM or
SIGINT stops accepting, lets requests in progress finish (up to 10 s), and exits with 0.

Options:
  --port N               TCP port (default ${DEFAULT_PORT}, or SAGEMAKER_BIND_TO_PORT when set; 0 picks a free one)
  --host ADDR            address to listen on (default 0.0.0.0)
  --max-body-mb N        largest request body in MiB (default ${DEFAULT_MAX_BODY_MB})
  --max-in-flight N      invocations at once before 503 (default ${DEFAULT_MAX_IN_FLIGHT})
${MODEL_OPTIONS_HELP}
`;

const options = {
  ...modelOptions,
  port: { type: 'string' },
  host: { type: 'string' },
  'max-body-mb': { type: 'string' },
  'max-in-flight': { type: 'string' },
} as const;

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function maxBodyBytesOf(value: string | undefined): number {
  const mb = numberFlag('max-body-mb', value) ?? DEFAULT_MAX_BODY_MB;
  if (!(mb > 0 && mb <= 1024)) {
    throw new UsageError(`--max-body-mb: expected a number in (0, 1024], got '${value}'`);
  }
  return Math.floor(mb * 1024 * 1024);
}

/** --port, else SAGEMAKER_BIND_TO_PORT (empty reads as unset), else the default; errors name their source. */
function portOf(flag: string | undefined, env: string | undefined): number {
  const range = { min: 0, max: 65535 };
  if (flag !== undefined) return intFlag('port', flag, range)!;
  if (env === undefined || env.trim() === '') return DEFAULT_PORT;
  const port = Number(env);
  if (!Number.isInteger(port) || port < range.min || port > range.max)
    throw new UsageError(`SAGEMAKER_BIND_TO_PORT: expected an integer from 0 to 65535, got '${env}'`);
  return port;
}

export const command: CliCommand = {
  name: 'serve',
  summary: "serve a trained model with SageMaker's hosting contract (/ping, /invocations)",
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('serve', argv, options);
    const settings = compileModelSettings(values);
    const port = portOf(values.port, ctx.env.SAGEMAKER_BIND_TO_PORT);
    const maxBodyBytes = maxBodyBytesOf(values['max-body-mb']);
    const maxInFlight =
      intFlag('max-in-flight', values['max-in-flight'], { min: 1 }) ?? DEFAULT_MAX_IN_FLIGHT;
    const { signal, logger } = ctx;
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    let predictor: Predictor | undefined;
    const server = await startInferenceServer({
      host: values.host ?? '0.0.0.0',
      port,
      maxBodyBytes,
      maxInFlight,
      logger,
    }).catch(async (err: unknown) => {
      await storage.close();
      throw err;
    });
    try {
      writeJsonLine(ctx.stdout, { url: server.url, port: server.port });
      logger.info('listening; loading the model', { url: server.url, model: settings.model });
      predictor = await loadPredictor(settings.model, { ...settings, storage, logger, signal });
      server.ready(predictor);
      logger.info('serving', { url: server.url });
      await untilAborted(signal);
      logger.info('stopping', { reason: errorMessage(signal.reason) });
      return 0;
    } catch (err) {
      if (signal.aborted && isAbortError(err)) return 0; // stopped while the model was loading
      throw err;
    } finally {
      // Requests in progress finish before the model goes away.
      await server.close();
      await predictor?.close();
      await storage.close();
    }
  },
};
