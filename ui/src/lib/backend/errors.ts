// Errors that cross the backend boundary: `{code, message}` with an HTTP status (0 when there is
// none: desktop app commands, network failures). The UI shows `message` to the operator.

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** The server refused the token (the browser goes back to the sign-in screen). */
  get unauthorized(): boolean {
    return this.status === 401 || this.code === 'unauthorized';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Turns anything thrown or rejected into an ApiError (a `{code, message}` object keeps both). */
export function toApiError(e: unknown, status = 0): ApiError {
  if (e instanceof ApiError) return e;
  if (isObj(e) && typeof e.message === 'string' && e.message !== '') {
    const code = typeof e.code === 'string' && e.code !== '' ? e.code : e instanceof Error ? 'client' : 'error';
    const st = typeof e.status === 'number' ? e.status : status;
    return new ApiError(st, code, e.message);
  }
  if (typeof e === 'string' && e !== '') return new ApiError(status, 'error', e);
  return new ApiError(status, 'error', 'Something went wrong (no details were given).');
}

/** The sentence to show for an error. */
export function errorMessage(e: unknown): string {
  return toApiError(e).message;
}

/**
 * An error from an HTTP response: the JSON body's `{code, message}` when there is one, else the
 * status line and whatever text came back.
 */
export function errorFromResponse(status: number, statusText: string, body: string): ApiError {
  try {
    const v: unknown = JSON.parse(body);
    if (isObj(v) && typeof v.message === 'string') {
      return new ApiError(status, typeof v.code === 'string' ? v.code : `http_${status}`, v.message);
    }
  } catch {
    /* not JSON */
  }
  const text = body.trim().slice(0, 300);
  const what = statusText || `HTTP ${status}`;
  const msg =
    status === 401
      ? 'The operator token was refused. Sign in again.'
      : text
        ? `${what}: ${text}`
        : `The server answered ${status} ${statusText}`.trim();
  return new ApiError(status, status === 401 ? 'unauthorized' : `http_${status}`, msg);
}
