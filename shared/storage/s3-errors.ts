import { errorMessage, StorageError } from '../errors.js';

/**
 * Maps errors from @aws-sdk/client-s3 (service exceptions carry the S3 error code as `name` and the
 * HTTP status in `$metadata`) and from the credential chain or the network to a StorageError that
 * names the URL and says what to check.
 */
const CREDENTIAL_HINT =
  'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance/task role; ' +
  'for an S3-compatible store also pass --s3-endpoint';

const HINTS: Record<string, string> = {
  CredentialsProviderError: `no AWS credentials found (${CREDENTIAL_HINT})`,
  InvalidAccessKeyId: `the access key id is not known to the store (${CREDENTIAL_HINT})`,
  SignatureDoesNotMatch: `the request signature does not match: wrong secret key? (${CREDENTIAL_HINT})`,
  ExpiredToken: `the session token has expired (${CREDENTIAL_HINT})`,
  InvalidToken: `the session token is invalid (${CREDENTIAL_HINT})`,
  AccessDenied: 'access denied (S3 also answers 403 for a missing key when s3:ListBucket is not granted)',
  PermanentRedirect: 'the bucket is in another region: set AWS_REGION to the bucket region',
  AuthorizationHeaderMalformed:
    'the request was signed for the wrong region: set AWS_REGION to the bucket region',
  ECONNREFUSED: 'connection refused: is the endpoint (--s3-endpoint / AWS_ENDPOINT_URL_S3) right and up?',
  ENOTFOUND: 'host not found: check --s3-endpoint / AWS_ENDPOINT_URL_S3 and the bucket name',
};

export function s3ErrorCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('E') ? code : err.name;
}

export function s3HttpStatus(err: unknown): number | undefined {
  const metadata = (err as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata;
  return typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

/** Wraps `err` from operation `op` on `url`; an abort becomes the signal's own reason, unwrapped. */
export function toS3StorageError(
  url: string,
  bucket: string,
  op: string,
  err: unknown,
  signal: AbortSignal | undefined,
): unknown {
  if (signal?.aborted) return signal.reason;
  if (err instanceof StorageError) return err;
  const code = s3ErrorCode(err);
  if (code === 'NoSuchBucket') {
    return new StorageError(url, `${op} failed: bucket '${bucket}' does not exist`, {
      cause: err,
      code: 'NOT_FOUND',
    });
  }
  if (code === 'NoSuchKey' || code === 'NotFound' || s3HttpStatus(err) === 404) {
    return new StorageError(url, `${op} failed: no such object`, { cause: err, code: 'NOT_FOUND' });
  }
  const hint = (code !== undefined ? HINTS[code] : undefined) ?? statusHint(err);
  const detail = hint ?? `${errorMessage(err)}${code && code !== 'Error' ? ` (${code})` : ''}`;
  return new StorageError(url, `${op} failed: ${detail}`, { cause: err });
}

/** A HEAD answer (stat) has no body, so the SDK knows only the status: 'UnknownError (Unknown)'. */
function statusHint(err: unknown): string | undefined {
  if (s3HttpStatus(err) !== 403) return undefined;
  return `access denied (HTTP 403 with no error code): a wrong access key or secret, or no permission on this object (${CREDENTIAL_HINT})`;
}
