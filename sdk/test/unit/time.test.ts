// "Calculate, don't count": remaining time is a function of (state, server now).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  activeRemainingMs,
  cycleElapsedMs,
  formatClock,
  groupRemainingMs,
  participantElapsedMs,
  participantRemainingMs,
  sessionRemainingMs,
} from '../../src/time.js';
import { SessionSubscription } from '../../src/subscription.js';
import { FakeNet, VirtualTime, chessState, rng } from '../support/sim.js';

const T = 1_764_000_000_000;

describe('time helpers', () => {
  it('active participant: remaining = deadline − now, passive participant: its bank', () => {
    const s = chessState({ serverTime: T });
    assert.equal(participantRemainingMs(s, 'white', T), 58_000);
    assert.equal(participantRemainingMs(s, 'white', T + 1_234), 56_766);
    assert.equal(participantRemainingMs(s, 'black', T + 1_234), 60_000);
    assert.equal(participantRemainingMs(s, 'white', T + 999_999), 0, 'never below zero');
    assert.equal(participantRemainingMs(s, 'nobody', T), undefined);
    assert.equal(activeRemainingMs(s, T + 500), 57_500);
    assert.equal(sessionRemainingMs(s, T + 500), 57_500);
    assert.equal(cycleElapsedMs(s, T), 2_000);
    assert.equal(participantElapsedMs(s, 'white', T + 1_000), 3_000);
    assert.equal(participantElapsedMs(s, 'black', T + 1_000), 0);
  });

  it('without deadline_ms (a plain 2.0 server) uses cycle_started_at + total_time_ms', () => {
    const s = chessState({ serverTime: T });
    delete s.deadline_ms;
    delete s.server_time_ms;
    assert.equal(participantRemainingMs(s, 'white', T + 1_000), 57_000);
  });

  it('paused: nothing runs, the rendered banks stand', () => {
    const s = chessState({ serverTime: T, status: 'paused', cycle_started_at: null, deadline_ms: null });
    s.participants[0]!.time_remaining_ms = 41_000;
    assert.equal(participantRemainingMs(s, 'white', T + 10_000), 41_000);
    assert.equal(sessionRemainingMs(s, T), null);
    assert.equal(cycleElapsedMs(s, T + 10_000), 0);
  });

  it('deadline_ms null while running (nothing can expire): the rendered value stands', () => {
    const s = chessState({ serverTime: T, deadline_ms: null });
    s.participants[0]!.time_remaining_ms = 0;
    assert.equal(participantRemainingMs(s, 'white', T + 5_000), 0);
  });

  it('expired participant shows zero', () => {
    const s = chessState({ serverTime: T, status: 'expired', deadline_ms: null });
    s.participants[0]!.has_expired = true;
    s.participants[0]!.time_remaining_ms = 0;
    assert.equal(participantRemainingMs(s, 'white', T), 0);
  });

  it('per_group: members of the active group share the running bank', () => {
    const s = chessState({ serverTime: T, sync_mode: 'per_group', active_group_id: 'a' });
    s.participants[0]!.group_id = 'a';
    s.participants[1]!.group_id = 'b';
    s.participants.push({ ...s.participants[0]!, participant_id: 'white2', participant_index: 2, is_active: false });
    assert.equal(participantRemainingMs(s, 'white2', T + 100), 57_900, 'an inactive member of the active group runs');
    assert.equal(groupRemainingMs(s, 'a', T + 100), 57_900);
    assert.equal(groupRemainingMs(s, 'b', T + 100), 60_000);
    assert.equal(groupRemainingMs(s, 'zzz', T), undefined);
  });

  it('global: one session clock for everyone', () => {
    const s = chessState({ serverTime: T, sync_mode: 'global' });
    assert.equal(participantRemainingMs(s, 'black', T + 100), 57_900);
  });

  it('formatClock rounds up and switches to tenths under 20 s', () => {
    assert.equal(formatClock(300_000), '5:00');
    assert.equal(formatClock(299_001), '5:00');
    assert.equal(formatClock(59_000), '0:59');
    assert.equal(formatClock(3_600_000 + 61_000), '1:01:01');
    assert.equal(formatClock(19_950), '0:20.0');
    assert.equal(formatClock(9_301), '0:09.4');
    assert.equal(formatClock(1), '0:00.1');
    assert.equal(formatClock(0), '0:00.0');
    assert.equal(formatClock(-5), '0:00.0');
  });
});

describe('subscription + helpers with fake timers', () => {
  it('the displayed time moves with the server clock, not with a local counter', () => {
    const vt = new VirtualTime();
    const net = new FakeNet(vt, { up: () => 12, down: () => 12 }, -5_000);
    net.state = chessState({ serverTime: vt.t });
    const sub = new SessionSubscription(net.state.session_id, {
      baseUrl: 'http://sim.invalid', WebSocket: net.WebSocket, now: net.clientNow, timers: net.vt, random: rng(1),
    });
    vt.advance(1_000);
    const deadline = net.state.deadline_ms!;
    const a = sub.remainingMs('white')!;
    assert.ok(Math.abs(a - (deadline - vt.t)) <= 2, `remaining ${a} vs truth ${deadline - vt.t}`);
    // No message arrives for 10 s (heartbeats aside); the clock still tracks the truth.
    vt.advance(10_000);
    const b = sub.remainingMs('white')!;
    assert.ok(Math.abs(b - (deadline - vt.t)) <= 2, `remaining ${b} vs truth ${deadline - vt.t}`);
    sub.close();
  });
});
