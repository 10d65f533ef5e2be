// A virtual-time scheduler and a simulated network + server for unit tests:
// nothing here reads the real clock, so results are exact and repeatable.
import type { Timers, WebSocketLike } from '../../src/subscription.js';
import type { SyncState } from '../../src/types.js';

/** Virtual time: `now()` only moves when `advance()` is called. */
export class VirtualTime implements Timers {
  /** True time in ms (epoch-like). */
  t = 1_764_000_000_000;
  private seq = 0;
  private queue: Array<{ at: number; seq: number; fn: () => void; id: number }> = [];

  setTimeout(fn: () => void, ms: number): number {
    const id = ++this.seq;
    this.queue.push({ at: this.t + Math.max(0, ms), seq: id, fn, id });
    return id;
  }

  clearTimeout(h: unknown): void {
    this.queue = this.queue.filter((q) => q.id !== h);
  }

  /** Runs every timer due within `ms`, in time order, then sets the clock to the end. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.queue[0];
      if (!next || next.at > end) break;
      this.queue.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }

  pendingTimers(): number {
    return this.queue.length;
  }
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Network shape: one-way delays in ms as functions (called per message). */
export interface NetShape {
  up: () => number;
  down: () => number;
}

/**
 * A simulated SyncKairos server reachable through {@link FakeNet.WebSocket}.
 * The server clock is the true time, truncated to whole ms like the real one;
 * the client's clock is `true + clientSkewMs`.
 */
export class FakeNet {
  readonly sockets: FakeSocket[] = [];
  /** Messages the server received, parsed. */
  readonly received: Array<Record<string, unknown>> = [];
  /** When false, new connections never open and existing ones go silent. */
  up = true;
  /** The state sent as STATE_SYNC on connect / RECONNECT (null: none). */
  state: SyncState | null = null;
  /** When false, PONG omits client_time (a plain 2.0 server). */
  echoClientTime = true;

  constructor(
    readonly vt: VirtualTime,
    public shape: NetShape,
    public clientSkewMs: number,
  ) {}

  /** The client's local clock. */
  clientNow = (): number => this.vt.t + this.clientSkewMs;
  /** The server's clock (whole ms). */
  serverNow(): number {
    return Math.floor(this.vt.t);
  }

  /** The WebSocket constructor to hand to the SDK. */
  get WebSocket(): new (url: string) => WebSocketLike {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const net = this;
    return class extends FakeSocket {
      constructor(url: string) {
        super(net, url);
      }
    };
  }

  /** Sends a server message to every open socket. */
  broadcast(msg: Record<string, unknown>): void {
    for (const s of this.sockets) if (s.readyState === 1) s.deliver(msg);
  }
}

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(
    readonly net: FakeNet,
    readonly url: string,
  ) {
    net.sockets.push(this);
    if (!net.up) return; // the connection attempt hangs, like a dead host
    const d = net.shape.up() + net.shape.down();
    net.vt.setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
      const sid = new URL(url).searchParams.get('sessionId');
      this.deliver({ type: 'CONNECTED', sessionId: sid, timestamp: net.serverNow() });
      if (net.state) this.deliver({ type: 'STATE_SYNC', sessionId: sid, timestamp: net.serverNow(), state: net.state });
    }, d);
  }

  /** Server → client, after the down delay. */
  deliver(msg: Record<string, unknown>): void {
    const data = JSON.stringify(msg);
    this.net.vt.setTimeout(() => {
      if (this.readyState === 1) this.onmessage?.({ data });
    }, this.net.shape.down());
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    const net = this.net;
    net.vt.setTimeout(() => {
      if (!net.up || this.readyState !== 1) return;
      const msg = JSON.parse(data) as Record<string, unknown>;
      net.received.push(msg);
      if (msg.type === 'PING') {
        const pong: Record<string, unknown> = { type: 'PONG', timestamp: net.serverNow() };
        if (net.echoClientTime && 'client_time' in msg) pong.client_time = msg.client_time;
        this.deliver(pong);
      } else if (msg.type === 'RECONNECT' && net.state) {
        this.deliver({ type: 'STATE_SYNC', sessionId: net.state.session_id, timestamp: net.serverNow(), state: net.state });
      }
    }, net.shape.up());
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.net.vt.setTimeout(() => this.onclose?.({ code, reason }), 0);
  }

  /** The server side drops the connection. */
  serverClose(code: number, reason = ''): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.net.vt.setTimeout(() => this.onclose?.({ code, reason }), this.net.shape.down());
  }
}

/** A running two-player chess-clock state for tests, rendered at `serverTime`. */
export function chessState(over: Partial<SyncState> & { serverTime: number; version?: number }): SyncState {
  const { serverTime, ...rest } = over;
  const started = serverTime - 2_000;
  const base: SyncState = {
    session_id: '6f1c1d3e-9a55-4d2e-9a31-2a4d6f6f0b11',
    sync_mode: 'per_participant',
    status: 'running',
    version: 2,
    participants: [
      { participant_id: 'white', participant_index: 0, total_time_ms: 60_000, time_used_ms: 0, time_remaining_ms: 58_000, cycle_count: 0, is_active: true, has_expired: false },
      { participant_id: 'black', participant_index: 1, total_time_ms: 60_000, time_used_ms: 0, time_remaining_ms: 60_000, cycle_count: 0, is_active: false, has_expired: false },
    ],
    active_participant_id: 'white',
    active_group_id: null,
    total_time_ms: 60_000,
    time_per_cycle_ms: null,
    increment_ms: 0,
    action_on_timeout: { type: 'end_session' },
    auto_advance: false,
    cycle_started_at: new Date(started).toISOString(),
    session_started_at: new Date(started).toISOString(),
    session_completed_at: null,
    created_at: new Date(started - 5_000).toISOString(),
    updated_at: new Date(started).toISOString(),
    metadata: {},
    server_time_ms: serverTime,
    deadline_ms: started + 60_000,
  };
  return { ...base, ...rest };
}
