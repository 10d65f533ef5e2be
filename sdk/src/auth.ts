/**
 * Credentials (API.md "Authentication and authorization"): an API key for a
 * trusted backend, or a session token for an end-user device, optionally
 * with a provider that hands out fresh tokens. One {@link Credentials} is
 * shared by a REST client and its subscriptions, so a token refreshed for
 * one is the token the other uses next.
 */
import { SyncKairosError } from './errors.js';

/** Returns a fresh session token, e.g. by asking your backend to mint one. */
export type TokenProvider = () => string | Promise<string>;

/** How a client authenticates; every field optional (no credential: an open server). */
export interface CredentialOptions {
  /** An API key (backends only: it has full access to every session). */
  apiKey?: string;
  /**
   * A session token (JWT), or a provider called for the first token and for
   * every refresh (when no `refreshToken` is given).
   */
  token?: string | TokenProvider;
  /** Called for a fresh token when the current one nears its `exp` or the server refused it. */
  refreshToken?: TokenProvider;
  /** How long before `exp` a token is refreshed (default 30 s). */
  refreshMarginMs?: number;
}

/** The claims of a session token the SDK reads; unverified, for scheduling and display only. */
export interface TokenClaims {
  /** Session id the token is for. */
  sid?: string;
  /** `viewer`, `participant` or `controller`. */
  role?: string;
  /** Participant id, for a participant token. */
  sub?: string;
  /** Expiry, Unix seconds. */
  exp?: number;
}

function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/**
 * The payload of a JWT, decoded but NOT verified (the server verifies): the
 * SDK only reads `exp` to refresh in time and `role`/`sub` to show the right
 * controls. Null for anything that is not a JWT with a JSON object payload.
 */
export function decodeTokenClaims(token: string): TokenClaims | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const payload = JSON.parse(base64UrlDecode(parts[1])) as unknown;
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return null;
    const p = payload as Record<string, unknown>;
    const out: TokenClaims = {};
    if (typeof p.sid === 'string') out.sid = p.sid;
    if (typeof p.role === 'string') out.role = p.role;
    if (typeof p.sub === 'string') out.sub = p.sub;
    if (typeof p.exp === 'number' && Number.isFinite(p.exp)) out.exp = p.exp;
    return out;
  } catch {
    return null;
  }
}

/** A token's `exp` in epoch ms, when it is a JWT that has one. */
export function tokenExpiresAtMs(token: string): number | undefined {
  const exp = decodeTokenClaims(token)?.exp;
  return exp === undefined ? undefined : exp * 1000;
}

/**
 * The credential a client presents, kept fresh. Tokens are refreshed
 * lazily: {@link get} returns the cached one while it is good for longer
 * than the margin, and asks the provider otherwise or after
 * {@link invalidate} (the server refused it). Concurrent callers share one
 * provider call.
 */
export class Credentials {
  /** Whether a fresh token can be had (a provider is configured). */
  readonly canRefresh: boolean;
  /** How long before `exp` a token counts as due for refresh. */
  readonly refreshMarginMs: number;
  private readonly apiKey: string | undefined;
  private readonly provider: TokenProvider | undefined;
  private readonly now: () => number;
  private token_: string | undefined;
  private stale = false;
  private inflight: Promise<string> | null = null;

  constructor(options: CredentialOptions = {}, now: () => number = Date.now) {
    if (options.apiKey !== undefined && options.token !== undefined) {
      throw new SyncKairosError('VALIDATION_ERROR', 'give either apiKey or token, not both', 0);
    }
    this.apiKey = options.apiKey;
    this.token_ = typeof options.token === 'string' ? options.token : undefined;
    this.provider = options.refreshToken ?? (typeof options.token === 'function' ? options.token : undefined);
    this.canRefresh = this.provider !== undefined;
    this.refreshMarginMs = options.refreshMarginMs ?? 30_000;
    this.now = now;
  }

  /** Whether any credential is configured. */
  get configured(): boolean {
    return this.apiKey !== undefined || this.token_ !== undefined || this.provider !== undefined;
  }

  /**
   * The credential to use now without waiting, or undefined when none is
   * configured or a token must first be fetched from the provider.
   */
  current(): string | undefined {
    if (this.apiKey !== undefined) return this.apiKey;
    if (this.token_ === undefined) return undefined;
    if (this.provider && this.needsRefresh(this.token_)) return undefined;
    return this.token_;
  }

  /** The credential to use, asking the provider first when the token is missing, stale or near `exp`. */
  async get(): Promise<string | undefined> {
    const now = this.current();
    if (now !== undefined || !this.provider) return now;
    return this.refresh();
  }

  /** Asks the provider for a fresh token now (one call however many wait). */
  refresh(): Promise<string> {
    const provider = this.provider;
    if (!provider) return Promise.reject(new SyncKairosError('UNAUTHORIZED', 'no token provider to refresh the token with', 0));
    this.inflight ??= (async () => {
      try {
        let t: string;
        try {
          t = await provider();
        } catch (e) {
          throw new SyncKairosError('UNAUTHORIZED', `the token provider failed: ${String((e as Error)?.message ?? e)}`, 0, undefined, undefined, { cause: e });
        }
        if (typeof t !== 'string' || t === '') throw new SyncKairosError('UNAUTHORIZED', 'the token provider returned no token', 0);
        this.set(t);
        return t;
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }

  /** Replaces the token (e.g. one your app refreshed itself). */
  set(token: string): void {
    this.token_ = token;
    this.stale = false;
  }

  /** The server refused `credential`: the next {@link get} fetches a fresh token (if it is still the current one). */
  invalidate(credential: string | undefined): void {
    if (credential !== undefined && credential === this.token) this.stale = true;
  }

  private needsRefresh(token: string): boolean {
    if (this.stale) return true;
    const at = tokenExpiresAtMs(token);
    return at !== undefined && at - this.refreshMarginMs <= this.now();
  }

  /** The session token held now (fresh or not); undefined for an API key or before the first fetch. */
  get token(): string | undefined {
    return this.token_;
  }
}

/** Timer functions (the subset of the globals {@link keepTokenFresh} uses); injectable for tests. */
export interface RefreshTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of {@link keepTokenFresh}. */
export interface KeepFreshOptions {
  /** Timers; default to the global ones. */
  timers?: RefreshTimers;
  /** Local clock, epoch ms (default `Date.now`). */
  now?: () => number;
  /** Delay before retrying a failed refresh (default 5 s). */
  retryMs?: number;
  /** Told about each failed refresh (the old token stays in use until it expires). */
  onError?: (error: unknown) => void;
}

/** setTimeout's largest delay (about 24.8 days); longer ones would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Refreshes `credentials`' token `refreshMarginMs` before its `exp` (read
 * from the JWT payload, unverified), again and again, so a reconnect never
 * waits for the provider and a token never lapses on an open socket.
 * Returns the function that stops it. Does nothing without a provider or
 * for a token without `exp`.
 */
export function keepTokenFresh(credentials: Credentials, options: KeepFreshOptions = {}): () => void {
  const timers = options.timers ?? {
    setTimeout: (fn: () => void, ms: number) => globalThis.setTimeout(fn, ms),
    clearTimeout: (h: unknown) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  };
  const now = options.now ?? Date.now;
  const retryMs = options.retryMs ?? 5_000;
  let stopped = false;
  let timer: unknown = null;
  const wait = (ms: number) => {
    timer = timers.setTimeout(tick, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
  };
  const arm = () => {
    if (stopped) return;
    const token = credentials.token;
    const at = token === undefined ? undefined : tokenExpiresAtMs(token);
    if (token !== undefined && at === undefined) return;
    wait(at === undefined ? 0 : at - credentials.refreshMarginMs - now());
  };
  function tick(): void {
    timer = null;
    if (stopped) return;
    const token = credentials.token;
    const at = token === undefined ? undefined : tokenExpiresAtMs(token);
    // Someone set a newer token since this timer was armed: wait for that one's turn.
    if (at !== undefined && at - credentials.refreshMarginMs > now()) {
      arm();
      return;
    }
    credentials.refresh().then(arm, (e: unknown) => {
      if (stopped) return;
      options.onError?.(e);
      wait(retryMs);
    });
  }
  if (credentials.canRefresh) arm();
  return () => {
    stopped = true;
    if (timer !== null) timers.clearTimeout(timer);
    timer = null;
  };
}
