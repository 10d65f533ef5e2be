/**
 * Typed errors: every failure carries the contract's error `code`, so callers
 * branch on codes (`CONFLICT`, `INVALID_STATE_TRANSITION`, ...) rather than
 * parsing messages.
 */

/** Error codes of API.md, plus the SDK's own `NETWORK_ERROR` / `INVALID_RESPONSE`. */
export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'SESSION_NOT_FOUND'
  | 'SESSION_EXISTS'
  | 'INVALID_STATE_TRANSITION'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_YOUR_TURN'
  | 'SERVICE_UNAVAILABLE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NOT_FOUND'
  | 'INTERNAL_ERROR'
  | 'NETWORK_ERROR'
  | 'INVALID_RESPONSE'
  // Codes added by newer servers still arrive, as plain strings.
  | (string & {});

/** A failed SyncKairos call: HTTP status (0 when no response), code, message, details. */
export class SyncKairosError extends Error {
  /** The contract's error code. */
  readonly code: ErrorCode;
  /** HTTP status, or 0 when the request never got a response. */
  readonly status: number;
  /** Field-level details (`VALIDATION_ERROR` names the field here). */
  readonly details: Record<string, unknown> | undefined;
  /** From `Retry-After` on 429/503, in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    status: number,
    details?: Record<string, unknown>,
    retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SyncKairosError';
    this.code = code;
    this.status = status;
    this.details = details;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * 401 `UNAUTHORIZED`: no credential, or one the server does not accept
 * (unknown API key, bad signature, expired token). A client with a token
 * provider has already asked it for a fresh token and retried once.
 */
export class UnauthorizedError extends SyncKairosError {
  constructor(message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super('UNAUTHORIZED', message, 401, details, undefined, options);
    this.name = 'UnauthorizedError';
  }
}

/**
 * 403: the credential is valid but does not allow this call (a viewer
 * switching, a token of another session, a participant starting the game).
 * `code` is `FORBIDDEN`, or `NOT_YOUR_TURN` for {@link NotYourTurnError}.
 */
export class ForbiddenError extends SyncKairosError {
  constructor(message: string, details?: Record<string, unknown>, code: ErrorCode = 'FORBIDDEN', options?: { cause?: unknown }) {
    super(code, message, 403, details, undefined, options);
    this.name = 'ForbiddenError';
  }
}

/**
 * 403 `NOT_YOUR_TURN`: a participant pressed while another clock runs. Not a
 * fault of the app: the turn passed before the press arrived, so the usual
 * handling is to ignore it, like a `CONFLICT`.
 */
export class NotYourTurnError extends ForbiddenError {
  constructor(message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, details, 'NOT_YOUR_TURN', options);
    this.name = 'NotYourTurnError';
  }
}

/**
 * The error for a failed response: the access-control subclasses for 401 and
 * 403 (so `instanceof` works as well as `code`), a plain {@link SyncKairosError} otherwise.
 */
export function errorFromResponse(
  code: ErrorCode,
  message: string,
  status: number,
  details?: Record<string, unknown>,
  retryAfterMs?: number,
): SyncKairosError {
  if (status === 401) return new UnauthorizedError(message, details);
  if (status === 403) return code === 'NOT_YOUR_TURN' ? new NotYourTurnError(message, details) : new ForbiddenError(message, details, code);
  return new SyncKairosError(code, message, status, details, retryAfterMs);
}

/** True when `e` is a {@link SyncKairosError}, optionally with the given code. */
export function isSyncKairosError(e: unknown, code?: ErrorCode): e is SyncKairosError {
  return e instanceof SyncKairosError && (code === undefined || e.code === code);
}
