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

/** True when `e` is a {@link SyncKairosError}, optionally with the given code. */
export function isSyncKairosError(e: unknown, code?: ErrorCode): e is SyncKairosError {
  return e instanceof SyncKairosError && (code === undefined || e.code === code);
}
