/**
 * A live view of one session over `GET /ws?sessionId=`. It keeps the newest
 * state (versions only move forward), reconnects with exponential backoff and
 * jitter after any drop (asking for a resync with `last_known_version`),
 * sends heartbeat PINGs that double as clock samples, and drops a socket
 * that has gone quiet so a half-open connection cannot freeze a clock face.
 */
import type { CredentialOptions, Credentials } from './auth.js';
import { ClockEstimator, localNow, type ClockEstimate } from './clock.js';
import { SyncKairosClient } from './rest.js';
import { participantRemainingMs } from './time.js';
import type { ServerMessage, SyncState, TimeoutAction } from './types.js';

/** The subset of the WHATWG WebSocket the SDK uses (browser, Node ≥ 22, or `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A WebSocket constructor. */
export type WebSocketFactory = new (url: string) => WebSocketLike;

/** Timer functions; injectable so tests can drive time. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Connection status of a subscription. */
export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why a state was delivered. */
export type StateSource = 'STATE_UPDATE' | 'STATE_SYNC';

/** `TIME_EXPIRED`: the server applied a timeout. */
export interface TimeExpired {
  sessionId: string;
  /** Server time at which the timeout was applied. */
  timestamp: number;
  participant_id: string | null;
  action: TimeoutAction;
}

/** Listeners by event name. */
export interface SubscriptionEvents {
  /** A newer state arrived. */
  state: (state: SyncState, source: StateSource) => void;
  /** The connection status changed. */
  status: (status: ConnectionStatus) => void;
  /** The server applied a timeout (sent before the STATE_UPDATE that shows it). */
  expired: (event: TimeExpired) => void;
  /** The session was deleted; the subscription is closed. */
  deleted: () => void;
  /** A protocol `ERROR` from the server (the connection stays open). */
  error: (error: { code: string; message: string }) => void;
  /** The clock estimate changed. */
  clock: (estimate: ClockEstimate) => void;
}

/**
 * Options for {@link SessionSubscription}. The credential is the client's
 * when a `client` is given (they then share refreshed tokens), else the
 * `apiKey`/`token`/`refreshToken` here.
 */
export interface SubscriptionOptions extends CredentialOptions {
  /** Server origin; defaults to `client.baseUrl` or the page origin. */
  baseUrl?: string;
  /** REST client whose `baseUrl` and credential are used. */
  client?: SyncKairosClient;
  /** WebSocket implementation; defaults to the global `WebSocket`. */
  WebSocket?: WebSocketFactory;
  /** Local clock (epoch ms); defaults to {@link localNow}. */
  now?: () => number;
  /** Timers; default to the global ones. */
  timers?: Timers;
  /** Random source in [0, 1) for jitter. */
  random?: () => number;
  /** Shared clock estimator (e.g. one per server); a fresh one by default. */
  clock?: ClockEstimator;
  /** PING interval (default 10 s); each PONG is also a clock sample. */
  heartbeatIntervalMs?: number;
  /** Reconnect when nothing was received for this long (default 25 s). */
  heartbeatTimeoutMs?: number;
  /** PINGs sent back-to-back after connecting, for a quick clock estimate (default 5). */
  clockBurst?: number;
  /** Interval between resampling bursts (default 30 s). */
  clockResampleMs?: number;
  /**
   * Extra bursts this long after connecting (default [1500, 5000] ms): the
   * first burst often lands while the page is still busy loading, and those
   * inflated round trips would otherwise set the uncertainty until the next
   * resample.
   */
  clockWarmupMs?: number[];
  /** First reconnect delay before jitter (default 250 ms). */
  reconnectInitialMs?: number;
  /** Largest reconnect delay before jitter (default 10 s). */
  reconnectMaxMs?: number;
}

const OPEN = 1;

/**
 * The server stamps whole milliseconds, truncated: the true instant lies in
 * [t, t+1). Its midpoint removes a systematic 0.5 ms bias from the offset.
 */
export function serverStampMidpoint(t: number): number {
  return Number.isInteger(t) ? t + 0.5 : t;
}

/** A live subscription to one session. Create it with {@link subscribe} or `new`. */
export class SessionSubscription {
  /** The session followed. */
  readonly sessionId: string;
  /** The clock estimate used by {@link serverNow}. */
  readonly clock: ClockEstimator;
  private readonly client: SyncKairosClient;
  /** The credential the current socket was opened with (to invalidate it if refused). */
  private wsCredential: string | undefined;
  /** Whether the current socket got CONNECTED (a socket closed before it may have been refused). */
  private connected = false;
  /** Bumped per connect attempt, so a token fetched for an abandoned attempt is not used. */
  private connectSeq = 0;
  private readonly WS: WebSocketFactory;
  private readonly now: () => number;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly clockBurst: number;
  private readonly clockResampleMs: number;
  private readonly clockWarmupMs: number[];
  private resampleRound = 0;
  private readonly reconnectInitialMs: number;
  private readonly reconnectMaxMs: number;
  private listeners: { [K in keyof SubscriptionEvents]: Set<SubscriptionEvents[K]> } = {
    state: new Set(),
    status: new Set(),
    expired: new Set(),
    deleted: new Set(),
    error: new Set(),
    clock: new Set(),
  };
  private ws: WebSocketLike | null = null;
  private _state: SyncState | null = null;
  /** Newest version accepted; reset to 0 when the server lost the session. */
  private floorVersion = 0;
  /** The server said the session does not exist; its close 1008 that follows is final. */
  private notFound = false;
  private _status: ConnectionStatus = 'connecting';
  private attempt = 0;
  private reconnects = 0;
  private stopped = false;
  /**
   * Since when we have been waiting for the server (connect attempt or an
   * unanswered PING); null while it is answering. Measured from our own
   * request, so a throttled background tab whose timers fire late is not
   * mistaken for a dead connection.
   */
  private awaitingSince: number | null = null;
  private pending = new Map<number, number>();
  private burstLeft = 0;
  private heartbeatTimer: unknown = null;
  private resampleTimer: unknown = null;
  private reconnectTimer: unknown = null;

  constructor(sessionId: string, options: SubscriptionOptions = {}) {
    this.sessionId = sessionId;
    const { apiKey, token, refreshToken, refreshMarginMs } = options;
    this.client =
      options.client ??
      new SyncKairosClient({
        ...(options.baseUrl !== undefined ? { baseUrl: options.baseUrl } : {}),
        ...(apiKey !== undefined ? { apiKey } : {}),
        ...(token !== undefined ? { token } : {}),
        ...(refreshToken !== undefined ? { refreshToken } : {}),
        ...(refreshMarginMs !== undefined ? { refreshMarginMs } : {}),
      });
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (!WS) throw new Error('no WebSocket implementation: pass options.WebSocket');
    this.WS = WS;
    this.now = options.now ?? localNow;
    this.timers = options.timers ?? {
      setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
    };
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? new ClockEstimator();
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 25_000;
    this.clockBurst = options.clockBurst ?? 5;
    this.clockResampleMs = options.clockResampleMs ?? 30_000;
    this.clockWarmupMs = options.clockWarmupMs ?? [1_500, 5_000];
    this.reconnectInitialMs = options.reconnectInitialMs ?? 250;
    this.reconnectMaxMs = options.reconnectMaxMs ?? 10_000;
    this.connect();
  }

  /** The newest state seen, or null before the first one. */
  get state(): SyncState | null {
    return this._state;
  }

  /** Current connection status. */
  get status(): ConnectionStatus {
    return this._status;
  }

  /** The credential the socket is opened with (shared with the client's REST calls). */
  get credentials(): Credentials {
    return this.client.credentials;
  }

  /** How many times the socket was re-opened after a drop. */
  get reconnectCount(): number {
    return this.reconnects;
  }

  /** Estimated server clock now (epoch ms). */
  serverNow(): number {
    return this.clock.serverNow(this.now());
  }

  /** A participant's remaining time now, from the newest state and the clock estimate. */
  remainingMs(participantId: string, serverNow: number = this.serverNow()): number | undefined {
    return this._state ? participantRemainingMs(this._state, participantId, serverNow) : undefined;
  }

  /** Registers a listener; returns the function that removes it. */
  on<K extends keyof SubscriptionEvents>(event: K, listener: SubscriptionEvents[K]): () => void {
    this.listeners[event].add(listener);
    return () => {
      this.listeners[event].delete(listener);
    };
  }

  /** Stops for good: closes the socket, cancels timers, no reconnect. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.dropSocket(1000, 'client closed');
    this.setStatus('closed');
  }

  private emit<K extends keyof SubscriptionEvents>(event: K, ...args: Parameters<SubscriptionEvents[K]>): void {
    for (const l of [...this.listeners[event]]) {
      try {
        (l as (...a: Parameters<SubscriptionEvents[K]>) => void)(...args);
      } catch (e) {
        // A throwing listener must not break the connection; report it asynchronously.
        this.timers.setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }

  private setStatus(s: ConnectionStatus): void {
    if (this._status === s) return;
    this._status = s;
    this.emit('status', s);
  }

  /**
   * Opens a socket with the current credential; when a token must first come
   * from the provider (none yet, near `exp`, or refused), waits for it.
   */
  private connect(): void {
    if (this.stopped) return;
    const seq = ++this.connectSeq;
    const creds = this.client.credentials;
    const now = creds.current();
    if (now !== undefined || !creds.canRefresh) {
      this.open(now);
      return;
    }
    creds.get().then(
      (t) => {
        if (!this.stopped && seq === this.connectSeq) this.open(t);
      },
      (e: unknown) => {
        if (this.stopped || seq !== this.connectSeq) return;
        this.emit('error', { code: 'UNAUTHORIZED', message: String((e as Error)?.message ?? e) });
        this.scheduleReconnect();
      },
    );
  }

  private open(credential: string | undefined): void {
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.client.wsUrl(this.sessionId, credential));
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.wsCredential = credential;
    this.connected = false;
    this.awaitingSince = this.now();
    this.pending.clear();
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.onMessage(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // Errors are followed by close; the close handler decides what to do.
    };
    this.armHeartbeat();
  }

  private onMessage(data: unknown): void {
    this.awaitingSince = null;
    if (typeof data !== 'string') return;
    let msg: ServerMessage;
    try {
      msg = JSON.parse(data) as ServerMessage;
    } catch {
      return;
    }
    switch (msg.type) {
      case 'CONNECTED':
        this.attempt = 0;
        this.connected = true;
        this.setStatus('open');
        // Ask for the full state; STATE_SYNC answers (a newer server also sends one unasked).
        this.send({ type: 'RECONNECT', ...(this._state ? { last_known_version: this._state.version } : {}) });
        this.burstLeft = this.clockBurst;
        this.ping();
        this.resampleRound = 0;
        this.armResample();
        break;
      case 'STATE_UPDATE':
      case 'STATE_SYNC':
        this.applyState(msg.state, msg.type);
        break;
      case 'TIME_EXPIRED':
        this.emit('expired', {
          sessionId: msg.sessionId,
          timestamp: msg.timestamp,
          participant_id: msg.participant_id,
          action: msg.action,
        });
        break;
      case 'SESSION_DELETED':
        this.floorVersion = 0;
        this.emit('deleted');
        this.close();
        break;
      case 'PONG':
        this.onPong(msg.timestamp, msg.client_time);
        break;
      case 'ERROR':
        if (msg.code === 'SESSION_NOT_FOUND') {
          // The server does not have the session (never created, expired, or lost
          // by a restarted memory engine). It closes with 1008 next (API.md,
          // Limits), and the subscription ends: retrying would only ask again.
          this.floorVersion = 0;
          this.notFound = true;
        }
        this.emit('error', { code: msg.code, message: msg.message });
        break;
      default:
        break;
    }
  }

  private applyState(state: SyncState, source: StateSource): void {
    if (!state || typeof state.version !== 'number') return;
    if (state.version <= this.floorVersion) return;
    this.floorVersion = state.version;
    this._state = state;
    this.emit('state', state, source);
  }

  private send(msg: Record<string, unknown>): void {
    const ws = this.ws;
    if (ws && ws.readyState === OPEN) {
      try {
        ws.send(JSON.stringify(msg));
      } catch {
        // The close handler will reconnect.
      }
    }
  }

  private ping(): void {
    const t = this.now();
    // The wire carries an integer key (exact through any JSON parser); the precise send time stays here.
    let key = Math.round(t);
    while (this.pending.has(key)) key += 1;
    this.pending.set(key, t);
    this.awaitingSince ??= t;
    if (this.pending.size > 32) this.pending.delete(this.pending.keys().next().value as number);
    this.send({ type: 'PING', client_time: key });
  }

  private onPong(serverTime: number, clientTime: number | undefined): void {
    const receivedAt = this.now();
    let sentAt: number | undefined;
    if (typeof clientTime === 'number' && this.pending.has(clientTime)) {
      sentAt = this.pending.get(clientTime);
      this.pending.delete(clientTime);
    } else if (clientTime === undefined && this.pending.size > 0) {
      // A server that does not echo client_time: PONGs come back in order.
      const first = this.pending.keys().next().value as number;
      sentAt = this.pending.get(first);
      this.pending.delete(first);
    }
    if (
      sentAt !== undefined &&
      typeof serverTime === 'number' &&
      this.clock.addSample({ sentAt, serverTime: serverStampMidpoint(serverTime), receivedAt })
    ) {
      const est = this.clock.estimate();
      if (est) this.emit('clock', est);
    }
    if (this.burstLeft > 1) {
      this.burstLeft -= 1;
      this.ping();
    } else {
      this.burstLeft = 0;
    }
  }

  private armHeartbeat(): void {
    if (this.heartbeatTimer !== null) this.timers.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = this.timers.setTimeout(() => {
      this.heartbeatTimer = null;
      if (this.stopped || !this.ws) return;
      if (this.awaitingSince !== null && this.now() - this.awaitingSince > this.heartbeatTimeoutMs) {
        // Half-open or stuck connection: drop it and reconnect.
        this.dropSocket(4000, 'heartbeat timeout');
        this.onClose(4000, 'heartbeat timeout');
        return;
      }
      if (this._status === 'open') this.ping();
      this.armHeartbeat();
    }, Math.min(this.heartbeatIntervalMs, this.heartbeatTimeoutMs));
  }

  private armResample(): void {
    if (this.resampleTimer !== null) this.timers.clearTimeout(this.resampleTimer);
    const round = this.resampleRound;
    const prev = round > 0 ? (this.clockWarmupMs[round - 1] ?? 0) : 0;
    const delay = round < this.clockWarmupMs.length ? this.clockWarmupMs[round]! - prev : this.clockResampleMs;
    this.resampleTimer = this.timers.setTimeout(() => {
      this.resampleTimer = null;
      if (this.stopped || this._status !== 'open') return;
      this.resampleRound += 1;
      this.burstLeft = 3;
      this.ping();
      this.armResample();
    }, Math.max(0, delay));
  }

  private clearTimers(): void {
    if (this.heartbeatTimer !== null) this.timers.clearTimeout(this.heartbeatTimer);
    if (this.resampleTimer !== null) this.timers.clearTimeout(this.resampleTimer);
    this.heartbeatTimer = null;
    this.resampleTimer = null;
  }

  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      // Already closed.
    }
  }

  private onClose(code: number, reason: string): void {
    this.ws = null;
    this.clearTimers();
    this.burstLeft = 0;
    if (this.stopped) return;
    const creds = this.client.credentials;
    if (code === 1008 && reason === 'token expired') {
      // API.md: the server closes a socket whose token expired; reconnect with a fresh one.
      if (!creds.canRefresh) {
        this.emit('error', { code: 'UNAUTHORIZED', message: 'token expired, and no token provider to refresh it' });
        this.close();
        return;
      }
      creds.invalidate(this.wsCredential);
      this.reconnects += 1;
      this.setStatus('reconnecting');
      this.connect();
      return;
    }
    if (!this.connected && creds.canRefresh) {
      // Closed before CONNECTED: the upgrade may have been refused (401/403 cannot be
      // read from a browser WebSocket), so the next attempt asks for a fresh token.
      creds.invalidate(this.wsCredential);
    }
    if (code === 1008 && this.notFound) {
      // SESSION_NOT_FOUND was already reported; nothing to retry.
      this.close();
      return;
    }
    if (code === 1008) {
      // Policy violation: a malformed session id; retrying cannot help.
      this.emit('error', { code: 'VALIDATION_ERROR', message: 'the server refused the session id (close 1008)' });
      this.close();
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.setStatus('reconnecting');
    const cap = Math.min(this.reconnectMaxMs, this.reconnectInitialMs * 2 ** this.attempt);
    const delay = cap / 2 + (this.random() * cap) / 2;
    this.attempt = Math.min(this.attempt + 1, 30);
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = null;
      this.reconnects += 1;
      this.connect();
    }, delay);
  }
}

/** Subscribes to a session: `subscribe(id, { baseUrl }).on('state', render)`. */
export function subscribe(sessionId: string, options: SubscriptionOptions = {}): SessionSubscription {
  return new SessionSubscription(sessionId, options);
}
