// The SDK against the real server binary, started by the test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  SessionSubscription,
  SyncKairosClient,
  isSyncKairosError,
  newSessionId,
  participantRemainingMs,
  sampleClockOverHttp,
  ClockEstimator,
  type CreateSessionRequest,
  type SyncState,
  type TimeExpired,
} from '../../src/index.js';
import { startServer, waitFor, type RunningServer } from '../support/server.js';

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function chess(id = newSessionId(), bankMs = 60_000, incrementMs = 2_000): CreateSessionRequest {
  return {
    session_id: id,
    sync_mode: 'per_participant',
    participants: [
      { participant_id: 'white', participant_index: 0, total_time_ms: bankMs },
      { participant_id: 'black', participant_index: 1, total_time_ms: bankMs },
    ],
    total_time_ms: bankMs,
    increment_ms: incrementMs,
  };
}

async function rejectsWith(p: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isSyncKairosError(e), `expected SyncKairosError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status);
    return true;
  });
}

describe('SDK against the real server', () => {
  let server: RunningServer;
  let client: SyncKairosClient;
  const subs: SessionSubscription[] = [];

  before(async () => {
    server = await startServer();
    client = new SyncKairosClient({ baseUrl: server.url });
  });
  after(async () => {
    for (const s of subs) s.close();
    await server?.stop();
  });
  const follow = (id: string, extra: ConstructorParameters<typeof SessionSubscription>[1] = {}) => {
    const s = new SessionSubscription(id, { client, ...extra });
    subs.push(s);
    return s;
  };

  it('REST lifecycle: create, get, start, switch, pause, resume, complete, delete', async () => {
    const id = newSessionId();
    const created = await client.createSession(chess(id));
    assert.equal(created.session_id, id);
    assert.equal(created.status, 'pending');
    assert.equal(created.version, 1);
    assert.match(created.created_at, ISO_MS);
    assert.deepEqual((await client.getSession(id)).participants.map((p) => p.participant_id), ['white', 'black']);

    const started = await client.start(id);
    assert.equal(started.status, 'running');
    assert.equal(started.active_participant_id, 'white');
    assert.match(started.cycle_started_at!, ISO_MS);
    assert.equal(typeof started.deadline_ms, 'number');

    const sw = await client.switch(id, { current_participant_id: 'white' });
    assert.equal(sw.active_participant_id, 'black');
    assert.equal(sw.status, 'running');
    const white = sw.participants.find((p) => p.participant_id === 'white')!;
    assert.ok(white.time_remaining_ms > 60_000 - 2_000 && white.time_remaining_ms <= 62_000, `increment applied: ${white.time_remaining_ms}`);

    // A second press for the same turn (the other tab was faster) changes nothing.
    await rejectsWith(client.switch(id, { current_participant_id: 'white' }), 'CONFLICT', 409);
    await rejectsWith(client.switch(id, { expected_version: 1 }), 'CONFLICT', 409);

    const paused = await client.pause(id);
    assert.equal(paused.status, 'paused');
    await rejectsWith(client.pause(id), 'INVALID_STATE_TRANSITION', 400);
    const resumed = await client.resume(id);
    assert.equal(resumed.status, 'running');
    assert.equal(resumed.active_participant_id, 'black');
    const done = await client.complete(id);
    assert.equal(done.status, 'completed');
    assert.match(done.session_completed_at!, ISO_MS);
    await rejectsWith(client.start(id), 'INVALID_STATE_TRANSITION', 400);

    await client.deleteSession(id);
    await client.deleteSession(id); // idempotent
    await rejectsWith(client.getSession(id), 'SESSION_NOT_FOUND', 404);
  });

  it('typed errors: SESSION_EXISTS, VALIDATION_ERROR naming the field, cancel', async () => {
    const id = newSessionId();
    await client.createSession(chess(id));
    await rejectsWith(client.createSession(chess(id)), 'SESSION_EXISTS', 409);
    await assert.rejects(client.createSession({ ...chess(), total_time_ms: 5 }), (e: unknown) => {
      assert.ok(isSyncKairosError(e, 'VALIDATION_ERROR'));
      assert.equal(e.status, 400);
      assert.ok(e.details && JSON.stringify(e.details).includes('total_time_ms'), `details name the field: ${JSON.stringify(e.details)}`);
      return true;
    });
    assert.equal((await client.cancel(id)).status, 'cancelled');
    const t = await client.time();
    assert.equal(t.server_version, '2.0.0');
    assert.ok(Math.abs(t.timestamp_ms - Date.now()) < 5_000);
    assert.deepEqual(await client.health(), { status: 'ok' });
    assert.equal((await client.ready()).status, 'ready');
  });

  it('subscription: STATE_SYNC, then every change in order; helpers agree with the server rendering', async () => {
    const id = newSessionId();
    await client.createSession(chess(id));
    const sub = follow(id);
    const versions: number[] = [];
    sub.on('state', (s) => versions.push(s.version));
    await waitFor('first state', () => sub.state?.version === 1);
    assert.equal(sub.status, 'open');

    const started = await client.start(id);
    await waitFor('start pushed', () => sub.state?.version === started.version);
    const sw = await client.switch(id);
    await waitFor('switch pushed', () => sub.state?.version === sw.version);
    assert.equal(sub.state!.active_participant_id, 'black');
    assert.deepEqual(versions, [...versions].sort((a, b) => a - b), 'versions only grow');
    assert.equal(new Set(versions).size, versions.length, 'no version delivered twice');

    // "Calculate, don't count": at the server's render instant the helper reproduces its number exactly.
    const s: SyncState = await client.getSession(id);
    for (const p of s.participants) {
      assert.equal(participantRemainingMs(s, p.participant_id, s.server_time_ms!), p.time_remaining_ms, p.participant_id);
    }
    // Clock estimate over WS on one machine: the offset is ~0 and within the reported bound.
    const est = await waitFor('clock estimate', () => sub.clock.estimate());
    console.log(`  ws clock: offset ${est.offsetMs.toFixed(2)} ms ± ${est.uncertaintyMs.toFixed(2)} ms (best rtt ${est.bestRttMs.toFixed(2)} ms)`);
    assert.ok(Math.abs(est.offsetMs) <= est.uncertaintyMs + 1.5, 'same host: the true offset is 0');
    const http = await sampleClockOverHttp(() => client.time(), new ClockEstimator(), 5);
    console.log(`  http clock: offset ${http!.offsetMs.toFixed(2)} ms ± ${http!.uncertaintyMs.toFixed(2)} ms`);
    assert.ok(Math.abs(http!.offsetMs) <= http!.uncertaintyMs + 1.5);
  });

  it('a flag falls by itself: TIME_EXPIRED then the expired state, promptly after the deadline', async () => {
    const id = newSessionId();
    await client.createSession({ ...chess(id, 1_000, 0) });
    const sub = follow(id);
    let expired: (TimeExpired & { at: number }) | null = null;
    sub.on('expired', (e) => {
      expired ??= { ...e, at: sub.serverNow() };
    });
    await waitFor('subscribed', () => sub.state);
    const started = await client.start(id);
    const s = await waitFor('expired state', () => (sub.state?.status === 'expired' ? sub.state : null), 10_000);
    assert.ok(expired, 'TIME_EXPIRED arrived');
    const e = expired as TimeExpired & { at: number };
    assert.equal(e.participant_id, 'white');
    assert.equal(e.action.type, 'end_session');
    assert.ok(s.participants.find((p) => p.participant_id === 'white')!.has_expired);
    const late = e.at - started.deadline_ms!;
    console.log(`  flag fall seen ${late.toFixed(1)} ms after the deadline`);
    assert.ok(late >= -5, 'not before the deadline');
    assert.ok(late < 1_000, `seen within 1 s of the deadline (was ${late} ms)`);
  });

  it('SESSION_DELETED closes the subscription for good', async () => {
    const id = newSessionId();
    await client.createSession(chess(id));
    const sub = follow(id);
    let deleted = false;
    sub.on('deleted', () => {
      deleted = true;
    });
    await waitFor('subscribed', () => sub.state);
    await client.deleteSession(id);
    await waitFor('deleted event', () => deleted);
    assert.equal(sub.status, 'closed');
  });
});

describe('reconnect after the server restarts', () => {
  it('reconnects on the same port and ends with SESSION_NOT_FOUND when the restart lost the session', async () => {
    let server = await startServer();
    const port = server.port;
    const client = new SyncKairosClient({ baseUrl: server.url });
    const id = newSessionId();
    await client.createSession(chess(id));
    await client.start(id);
    const sub = new SessionSubscription(id, { client, reconnectInitialMs: 100, reconnectMaxMs: 1_000 });
    const statuses: string[] = [];
    const errors: string[] = [];
    sub.on('status', (s) => statuses.push(s));
    sub.on('error', (e) => errors.push(e.code));
    try {
      await waitFor('running state', () => sub.state?.status === 'running');
      await server.stop();
      await waitFor('reconnecting', () => sub.status === 'reconnecting');
      const down = Date.now();
      server = await startServer(port);
      // The memory engine forgot the session: the server answers the reconnect with
      // SESSION_NOT_FOUND and close 1008, and the subscription stops instead of retrying.
      await waitFor('closed as not found', () => sub.status === 'closed', 10_000);
      console.log(`  reconnected and told SESSION_NOT_FOUND ${Date.now() - down} ms after the restart began`);
      assert.deepEqual(errors, ['SESSION_NOT_FOUND']);
      const attempts = sub.reconnectCount;
      assert.ok(attempts >= 1, 'it did reconnect to the new server');
      await new Promise((r) => setTimeout(r, 1_500)); // longer than reconnectMaxMs: a retry would show
      assert.equal(sub.reconnectCount, attempts, 'no reconnect after SESSION_NOT_FOUND');
      assert.equal(statuses[0], 'open');
      assert.equal(statuses.at(-1), 'closed');
    } finally {
      sub.close();
      await server.stop();
    }
  });
});
