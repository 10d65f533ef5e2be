// Subscription protocol behaviour over the simulated network: version order,
// reconnect with backoff + jitter + RECONNECT, heartbeat timeout, deletion.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionSubscription, type ConnectionStatus } from '../../src/subscription.js';
import { FakeNet, VirtualTime, chessState, rng } from '../support/sim.js';

function setup(opts: { random?: () => number } = {}) {
  const vt = new VirtualTime();
  const net = new FakeNet(vt, { up: () => 5, down: () => 5 }, 0);
  net.state = chessState({ serverTime: vt.t, version: 3 });
  const statuses: ConnectionStatus[] = [];
  const sub = new SessionSubscription(net.state.session_id, {
    baseUrl: 'http://sim.invalid',
    WebSocket: net.WebSocket,
    now: net.clientNow,
    timers: vt,
    random: opts.random ?? rng(3),
    heartbeatIntervalMs: 1_000,
    heartbeatTimeoutMs: 3_000,
  });
  sub.on('status', (s) => statuses.push(s));
  return { vt, net, sub, statuses };
}

describe('SessionSubscription', () => {
  it('builds the ws URL from the base URL', () => {
    const { net, sub } = setup();
    assert.equal(net.sockets[0]!.url, `ws://sim.invalid/ws?sessionId=${net.state!.session_id}`);
    sub.close();
  });

  it('versions only move forward', () => {
    const { vt, net, sub } = setup();
    const seen: number[] = [];
    sub.on('state', (s) => seen.push(s.version));
    vt.advance(100);
    assert.equal(sub.status, 'open');
    assert.equal(sub.state?.version, 3);
    const sid = net.state!.session_id;
    net.broadcast({ type: 'STATE_UPDATE', sessionId: sid, timestamp: 0, state: chessState({ serverTime: vt.t, version: 5 }) });
    net.broadcast({ type: 'STATE_UPDATE', sessionId: sid, timestamp: 0, state: chessState({ serverTime: vt.t, version: 4 }) });
    net.broadcast({ type: 'STATE_SYNC', sessionId: sid, timestamp: 0, state: chessState({ serverTime: vt.t, version: 5 }) });
    vt.advance(100);
    assert.equal(sub.state?.version, 5);
    assert.deepEqual(seen, [3, 5]);
    sub.close();
  });

  it('reconnects with growing, jittered backoff and asks for a resync with last_known_version', () => {
    const { vt, net, sub, statuses } = setup({ random: () => 0.5 });
    vt.advance(100);
    net.up = false;
    net.sockets[0]!.serverClose(1001, 'server shutting down');
    vt.advance(10);
    assert.equal(sub.status, 'reconnecting');
    // Attempts while down hang; the heartbeat watchdog (3 s) abandons each and backs off further.
    const opened: number[] = [];
    const before = net.sockets.length;
    for (let i = 0; i < 40_000 && net.sockets.length < before + 4; i++) {
      const n = net.sockets.length;
      vt.advance(1);
      if (net.sockets.length > n) opened.push(vt.t);
    }
    const gaps = opened.slice(1).map((t, i) => t - opened[i]!);
    // With random()=0.5 a delay is 0.75 × cap; caps 250, 500, 1000, 2000 … plus the 3 s watchdog.
    assert.ok(gaps.length >= 3);
    assert.ok(gaps[1]! > gaps[0]! && gaps[2]! > gaps[1]!, `gaps grow: ${gaps.join(', ')}`);
    net.up = true;
    net.state = chessState({ serverTime: vt.t, version: 6 });
    vt.advance(30_000);
    assert.equal(sub.status, 'open');
    assert.equal(sub.state?.version, 6);
    const reconnect = net.received.filter((m) => m.type === 'RECONNECT').at(-1);
    assert.deepEqual(reconnect, { type: 'RECONNECT', last_known_version: 3 });
    assert.ok(sub.reconnectCount >= 1);
    assert.deepEqual(statuses.slice(0, 2), ['open', 'reconnecting']);
    assert.equal(statuses.at(-1), 'open');
    sub.close();
  });

  it('jitter spreads the first reconnect delay over [cap/2, cap]', () => {
    const delays: number[] = [];
    for (const r of [0, 0.999]) {
      const { vt, net, sub } = setup({ random: () => r });
      vt.advance(100);
      const closedAt = vt.t + 5; // serverClose delivers after the 5 ms down delay
      net.sockets[0]!.serverClose(1001);
      while (net.sockets.length === 1) vt.advance(1);
      delays.push(vt.t - closedAt);
      sub.close();
    }
    assert.ok(delays[0]! >= 125 && delays[0]! <= 127, `min delay ${delays[0]}`);
    assert.ok(delays[1]! >= 248 && delays[1]! <= 251, `max delay ${delays[1]}`);
  });

  it('a silent (half-open) connection is dropped by the heartbeat watchdog and replaced', () => {
    const { vt, net, sub } = setup();
    vt.advance(100);
    net.up = false; // the server stops answering but never closes
    const silentAt = vt.t;
    while (sub.status === 'open' && vt.t - silentAt < 20_000) vt.advance(10);
    const detectedAfter = vt.t - silentAt;
    // Next PING within one interval (1 s), then the 3 s timeout, checked at the following tick.
    assert.ok(detectedAfter > 3_000 && detectedAfter <= 5_100, `dropped after ${detectedAfter} ms`);
    net.up = true;
    vt.advance(5_000);
    assert.equal(sub.status, 'open');
    assert.ok(net.sockets.length >= 2);
    sub.close();
  });

  it('late timers (a throttled background tab) do not look like a dead connection', () => {
    const vt = new VirtualTime();
    const net = new FakeNet(vt, { up: () => 5, down: () => 5 }, 0);
    net.state = chessState({ serverTime: vt.t, version: 3 });
    // Browsers may run a hidden tab's timers a minute late; messages still arrive promptly.
    const lateTimers = {
      setTimeout: (fn: () => void, ms: number) => vt.setTimeout(fn, ms >= 1_000 ? ms + 60_000 : ms),
      clearTimeout: (h: unknown) => vt.clearTimeout(h),
    };
    const sub = new SessionSubscription(net.state.session_id, {
      baseUrl: 'http://sim.invalid', WebSocket: net.WebSocket, now: net.clientNow, timers: lateTimers, random: rng(5),
      heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 3_000,
    });
    vt.advance(10 * 60_000);
    assert.equal(sub.status, 'open');
    assert.equal(net.sockets.length, 1, 'never reconnected');
    sub.close();
  });

  it('SESSION_NOT_FOUND after a restart accepts a re-created session from version 1', () => {
    const { vt, net, sub } = setup();
    const errors: string[] = [];
    sub.on('error', (e) => errors.push(e.code));
    vt.advance(100);
    assert.equal(sub.state?.version, 3);
    net.broadcast({ type: 'ERROR', code: 'SESSION_NOT_FOUND', message: 'session not found' });
    net.broadcast({ type: 'STATE_UPDATE', sessionId: 'x', timestamp: 0, state: chessState({ serverTime: vt.t, version: 1 }) });
    vt.advance(100);
    assert.deepEqual(errors, ['SESSION_NOT_FOUND']);
    assert.equal(sub.state?.version, 1);
    sub.close();
  });

  it('SESSION_DELETED and close 1008 stop for good; close() leaves no timers behind', () => {
    const { vt, net, sub } = setup();
    let deleted = 0;
    sub.on('deleted', () => deleted++);
    vt.advance(100);
    net.broadcast({ type: 'SESSION_DELETED', sessionId: 'x', timestamp: 0 });
    vt.advance(100_000);
    assert.equal(deleted, 1);
    assert.equal(sub.status, 'closed');
    assert.equal(net.sockets.length, 1, 'no reconnect after deletion');
    assert.equal(vt.pendingTimers(), 0);

    const b = setup();
    b.vt.advance(100);
    b.net.sockets[0]!.serverClose(1008, 'sessionId must be a UUID');
    b.vt.advance(100_000);
    assert.equal(b.sub.status, 'closed');
    assert.equal(b.net.sockets.length, 1);
  });

  it('TIME_EXPIRED reaches listeners', () => {
    const { vt, net, sub } = setup();
    const got: Array<string | null> = [];
    sub.on('expired', (e) => got.push(e.participant_id));
    vt.advance(100);
    net.broadcast({ type: 'TIME_EXPIRED', sessionId: 'x', timestamp: vt.t, participant_id: 'white', action: { type: 'end_session' } });
    vt.advance(100);
    assert.deepEqual(got, ['white']);
    sub.close();
  });
});
