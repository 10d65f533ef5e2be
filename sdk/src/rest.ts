/**
 * Typed REST client for every endpoint of API.md. It unwraps `{data: ...}`
 * and turns error bodies into {@link SyncKairosError}s, so application code
 * deals in states and codes, not HTTP.
 */
import { Credentials, type CredentialOptions } from './auth.js';
import { SyncKairosError, errorFromResponse } from './errors.js';
import type {
  CreateSessionRequest,
  EventsPage,
  MintTokenRequest,
  MintedToken,
  ServerTime,
  SwitchRequest,
  SwitchResult,
  SyncState,
} from './types.js';

/**
 * Options for {@link SyncKairosClient}. The credential (`apiKey`, or `token`
 * with an optional `refreshToken`) is sent as `Authorization: Bearer` on
 * REST and as `?token=` on the WebSocket.
 */
export interface ClientOptions extends CredentialOptions {
  /** Server origin, e.g. `http://localhost:3000` (no trailing path needed). Defaults to the page origin in browsers. */
  baseUrl?: string;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** A `fetch` implementation; defaults to the global one. */
  fetch?: typeof fetch;
  /** Per-request timeout in ms (default 10000). */
  timeoutMs?: number;
}

function defaultBaseUrl(): string {
  const loc = (globalThis as { location?: { origin?: string } }).location;
  if (loc?.origin && loc.origin !== 'null') return loc.origin;
  throw new SyncKairosError('VALIDATION_ERROR', 'baseUrl is required outside a browser page', 0);
}

/** Parses `Retry-After` (seconds or an HTTP date) into ms. */
function retryAfter(h: string | null): number | undefined {
  if (!h) return undefined;
  const secs = Number(h);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(h);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** REST access to one SyncKairos server. Cheap to create; holds no connections. */
export class SyncKairosClient {
  /** Normalised origin (no trailing slash). */
  readonly baseUrl: string;
  /** The credential this client presents; subscriptions made with this client share it. */
  readonly credentials: Credentials;
  private readonly headers: Record<string, string>;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? defaultBaseUrl()).replace(/\/+$/, '');
    this.headers = { ...(options.headers ?? {}) };
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') {
      throw new SyncKairosError('VALIDATION_ERROR', 'no fetch implementation available', 0);
    }
    this.fetchImpl = f.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.credentials = new Credentials(options);
  }

  /**
   * The WebSocket URL for a session (`ws(s)://host/ws?sessionId=...`), with
   * `&token=` when a credential is given: browsers cannot set headers on a WebSocket.
   */
  wsUrl(sessionId: string, credential?: string): string {
    const u = new URL(this.baseUrl + '/ws');
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.searchParams.set('sessionId', sessionId);
    if (credential !== undefined) u.searchParams.set('token', credential);
    return u.toString();
  }

  /** Creates a session (201); `SESSION_EXISTS` when the id is live. */
  createSession(body: CreateSessionRequest): Promise<SyncState> {
    return this.data<SyncState>('POST', '/v1/sessions', body);
  }

  /** Reads a session; `SESSION_NOT_FOUND` when absent. */
  getSession(sessionId: string): Promise<SyncState> {
    return this.data<SyncState>('GET', `/v1/sessions/${enc(sessionId)}`);
  }

  /** pending → running; the lowest-index participant becomes active. */
  start(sessionId: string): Promise<SyncState> {
    return this.data<SyncState>('POST', `/v1/sessions/${enc(sessionId)}/start`, {});
  }

  /** Ends the active turn (the hot path). Guards in `body` make double presses produce one switch. */
  switch(sessionId: string, body: SwitchRequest = {}): Promise<SwitchResult> {
    return this.data<SwitchResult>('POST', `/v1/sessions/${enc(sessionId)}/switch`, body);
  }

  /** running → paused; the elapsed part of the cycle is charged. */
  pause(sessionId: string): Promise<SyncState> {
    return this.data<SyncState>('POST', `/v1/sessions/${enc(sessionId)}/pause`, {});
  }

  /** paused → running; a new cycle for the same participant. */
  resume(sessionId: string): Promise<SyncState> {
    return this.data<SyncState>('POST', `/v1/sessions/${enc(sessionId)}/resume`, {});
  }

  /** Any non-terminal status → completed. */
  complete(sessionId: string): Promise<SyncState> {
    return this.data<SyncState>('POST', `/v1/sessions/${enc(sessionId)}/complete`, {});
  }

  /** (ext) Any non-terminal status → cancelled. */
  cancel(sessionId: string): Promise<SyncState> {
    return this.data<SyncState>('POST', `/v1/sessions/${enc(sessionId)}/cancel`, {});
  }

  /** Deletes a session (idempotent); live subscribers get SESSION_DELETED. */
  async deleteSession(sessionId: string): Promise<void> {
    await this.request('DELETE', `/v1/sessions/${enc(sessionId)}`);
  }

  /**
   * (ext) Mints a session token for an end-user device (API key only): a
   * viewer, a participant (`participant_id` required) or a controller.
   */
  mintToken(sessionId: string, body: MintTokenRequest): Promise<MintedToken> {
    return this.data<MintedToken>('POST', `/v1/sessions/${enc(sessionId)}/tokens`, body);
  }

  /** (ext) One page of the audit trail; `AUDIT_UNAVAILABLE`/503 when no audit store is configured. */
  async events(sessionId: string, opts: { cursor?: string; limit?: number } = {}): Promise<EventsPage> {
    const q = new URLSearchParams();
    if (opts.cursor !== undefined) q.set('cursor', opts.cursor);
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    const qs = q.toString();
    const body = await this.request('GET', `/v1/sessions/${enc(sessionId)}/events${qs ? '?' + qs : ''}`);
    return body as EventsPage;
  }

  /** `GET /v1/time`: the server clock (not wrapped in `data`). */
  async time(): Promise<ServerTime> {
    return (await this.request('GET', '/v1/time')) as ServerTime;
  }

  /** Liveness. */
  async health(): Promise<{ status: string }> {
    return (await this.request('GET', '/health')) as { status: string };
  }

  /** Readiness; throws `SERVICE_UNAVAILABLE` when not ready. */
  async ready(): Promise<Record<string, unknown>> {
    return (await this.request('GET', '/ready')) as Record<string, unknown>;
  }

  private async data<T>(method: string, path: string, body?: unknown): Promise<T> {
    const out = (await this.request(method, path, body)) as { data?: T } | undefined;
    if (!out || typeof out !== 'object' || !('data' in out)) {
      throw new SyncKairosError('INVALID_RESPONSE', `${method} ${path}: response has no "data"`, 200);
    }
    return out.data as T;
  }

  /**
   * One request with the current credential. A 401 on a token that a
   * provider can replace is retried once with a fresh token: the server
   * executed nothing, so even a switch is safe to repeat.
   */
  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const credential = await this.credentials.get();
    try {
      return await this.send(method, path, body, credential);
    } catch (e) {
      if (!(e instanceof SyncKairosError) || e.status !== 401 || credential === undefined || !this.credentials.canRefresh) throw e;
      this.credentials.invalidate(credential);
      return this.send(method, path, body, await this.credentials.get());
    }
  }

  /** Resolves with the parsed JSON body (undefined for 204). */
  private async send(method: string, path: string, body: unknown, credential: string | undefined): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json', ...this.headers };
    if (credential !== undefined) headers.authorization = `Bearer ${credential}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const ctl = typeof AbortController === 'function' ? new AbortController() : undefined;
    const timer = ctl ? setTimeout(() => ctl.abort(), this.timeoutMs) : undefined;
    let res: Response;
    try {
      res = await this.fetchImpl(this.baseUrl + path, {
        method,
        headers,
        ...(payload !== undefined ? { body: payload } : {}),
        ...(ctl ? { signal: ctl.signal } : {}),
      });
    } catch (e) {
      throw new SyncKairosError('NETWORK_ERROR', `${method} ${path}: ${String((e as Error)?.message ?? e)}`, 0, undefined, undefined, { cause: e });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    const text = res.status === 204 ? '' : await res.text();
    let json: unknown = undefined;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        if (res.ok) throw new SyncKairosError('INVALID_RESPONSE', `${method} ${path}: body is not JSON`, res.status);
      }
    }
    if (res.ok) return json;
    const err = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined)?.error;
    const fallback =
      res.status === 404
        ? 'NOT_FOUND'
        : res.status === 503
          ? 'SERVICE_UNAVAILABLE'
          : res.status === 429
            ? 'RATE_LIMITED'
            : res.status === 401
              ? 'UNAUTHORIZED'
              : res.status === 403
                ? 'FORBIDDEN'
                : 'INTERNAL_ERROR';
    throw errorFromResponse(
      err?.code ?? fallback,
      err?.message ?? `${method} ${path}: HTTP ${res.status}`,
      res.status,
      err?.details,
      retryAfter(res.headers.get('retry-after')),
    );
  }
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

/**
 * A random v4 UUID for a new session. Uses `crypto.randomUUID` where the page
 * is a secure context and `crypto.getRandomValues` elsewhere (plain-http LAN pages).
 */
export function newSessionId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
