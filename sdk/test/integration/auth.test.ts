// The SDK against the real server with auth on (API_KEYS + TOKEN_SECRET):
// Bearer on REST, ?token= on the WebSocket, typed 401/403/NOT_YOUR_TURN,
// token refresh after a refusal and after the server closes an expired
// socket, and the demo endpoint's tokens.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ForbiddenError,
  NotYourTurnError,
  SessionSubscription,
  SyncKairosClient,
  UnauthorizedError,
  decodeTokenClaims,
  newSessionId,
  type CreateSessionRequest,
  type SyncState,
} from '../../src/index.js';
import { authEnv, startServer, waitFor, type RunningServer } from '../support/server.js';

function chess(id = newSessionId()): CreateSessionRequest {
  return {
    session_id: id,
    sync_mode: 'per_participant',
    participants: [
      { participant_id: 'white', participant_index: 0, total_time_ms: 60_000 },
      { participant_id: 'black', participant_index: 1, total_time_ms: 60_000 },
    ],
    total_time_ms: 60_000,
  };
}

describe('SDK with auth on', () => {
  let server: RunningServer;
  let admin: SyncKairosClient;
  const subs: SessionSubscription[] = [];

  before(async () => {
    // Leeway 0 so a token's socket closes at its exp, not 5 s later.
    const { apiKey, env } = authEnv({ TOKEN_LEEWAY_SECONDS: '0', DEMO: 'on' });
    server = await startServer(0, env);
    admin = new SyncKairosClient({ baseUrl: server.url, apiKey });
  });
  after(async () => {
    for (const s of subs) s.close();
    await server?.stop();
  });
  const as = (token: string) => new SyncKairosClient({ baseUrl: server.url, token });
  const mint = async (id: string, role: 'viewer' | 'participant' | 'controller', participant_id?: string, ttl_seconds?: number) =>
    (await admin.mintToken(id, { role, ...(participant_id ? { participant_id } : {}), ...(ttl_seconds ? { ttl_seconds } : {}) })).token;

  it('no credential or a bad one: UnauthorizedError (401)', async () => {
    const id = newSessionId();
    await assert.rejects(new SyncKairosClient({ baseUrl: server.url }).createSession(chess(id)), UnauthorizedError);
    await assert.rejects(new SyncKairosClient({ baseUrl: server.url, apiKey: 'sk_wrong' }).getSession(id), UnauthorizedError);
    await assert.rejects(as('not.a.jwt').getSession(id), (e: unknown) => e instanceof UnauthorizedError && e.status === 401);
    // Public routes stay public.
    assert.equal(typeof (await new SyncKairosClient({ baseUrl: server.url }).time()).timestamp_ms, 'number');
  });

  it('roles: viewer reads only, a participant presses only on its turn, a controller controls', async () => {
    const id = newSessionId();
    await admin.createSession(chess(id));
    const [viewer, white, black, ctl] = await Promise.all([
      mint(id, 'viewer'),
      mint(id, 'participant', 'white'),
      mint(id, 'participant', 'black'),
      mint(id, 'controller'),
    ]);
    assert.equal(decodeTokenClaims(white)?.sub, 'white');
    assert.equal((await as(viewer).getSession(id)).session_id, id);
    await assert.rejects(as(white).start(id), (e: unknown) => e instanceof ForbiddenError && e.code === 'FORBIDDEN');
    await as(ctl).start(id);
    await assert.rejects(as(viewer).switch(id), (e: unknown) => e instanceof ForbiddenError && !(e instanceof NotYourTurnError));
    await assert.rejects(as(black).switch(id), (e: unknown) => e instanceof NotYourTurnError && e.status === 403);
    const r = await as(white).switch(id);
    assert.equal(r.active_participant_id, 'black');
    await assert.rejects(as(white).switch(id), NotYourTurnError);
    assert.equal((await as(black).switch(id)).active_participant_id, 'white');
    // A token of another session is refused.
    const other = newSessionId();
    await admin.createSession(chess(other));
    await assert.rejects(as(ctl).start(other), ForbiddenError);
    await assert.rejects(as(white).mintToken(id, { role: 'controller' }), ForbiddenError);
  });

  it('a 401 on a refused token makes the client ask its provider once and retry', async () => {
    const id = newSessionId();
    await admin.createSession(chess(id));
    const good = await mint(id, 'viewer');
    const handed: string[] = [];
    const tokens = ['eyJhbGciOiJIUzI1NiJ9.eyJzaWQiOiJ4In0.bad', good];
    const c = new SyncKairosClient({ baseUrl: server.url, token: () => (handed.push(tokens[handed.length]!), tokens[handed.length - 1]!) });
    assert.equal((await c.getSession(id)).session_id, id);
    assert.equal(handed.length, 2);
    assert.equal((await c.getSession(id)).session_id, id);
    assert.equal(handed.length, 2, 'the good token is cached');
  });

  it('WebSocket with ?token=: follows the session; when the server closes it at exp, reconnects with a fresh token', async () => {
    const id = newSessionId();
    await admin.createSession(chess(id));
    let calls = 0;
    const provider = async () => {
      calls += 1;
      // The first token lives 2 s; the next ones an hour.
      return mint(id, 'viewer', undefined, calls === 1 ? 2 : 3600);
    };
    const states: SyncState[] = [];
    const sub = new SessionSubscription(id, { baseUrl: server.url, token: provider, refreshMarginMs: 0 });
    subs.push(sub);
    sub.on('state', (s) => states.push(s));
    await waitFor('open', () => sub.status === 'open');
    await waitFor('first state', () => states.length > 0);
    await waitFor('the server closed the expired socket and the client reconnected', () => sub.reconnectCount >= 1 && sub.status === 'open', 10_000);
    assert.equal(calls, 2, 'one fresh token for the reconnect');
    await admin.start(id);
    await waitFor('the start arrives on the new socket', () => states.at(-1)?.status === 'running');
  });

  it('the demo endpoint creates a clock and hands out working tokens per seat, host and spectator', async () => {
    const cfg = (await (await fetch(server.url + '/demo/config')).json()) as { auth: boolean; demo_sessions: boolean };
    assert.deepEqual(cfg, { auth: true, demo_sessions: true });
    const r = await fetch(server.url + '/demo/sessions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chess()) });
    assert.equal(r.status, 201);
    const { data } = (await r.json()) as {
      data: { session: SyncState; tokens: { host: string; seats: Record<string, string>; viewer: string; expires_at: string } };
    };
    const id = data.session.session_id;
    assert.deepEqual(Object.keys(data.tokens.seats).sort(), ['black', 'white']);
    assert.ok(Date.parse(data.tokens.expires_at) > Date.now());
    for (const [t, role, sub] of [
      [data.tokens.host, 'controller', undefined],
      [data.tokens.viewer, 'viewer', undefined],
      [data.tokens.seats.white!, 'participant', 'white'],
    ] as const) {
      const c = decodeTokenClaims(t);
      assert.equal(c?.sid, id);
      assert.equal(c?.role, role);
      assert.equal(c?.sub, sub);
    }
    await assert.rejects(as(data.tokens.viewer).start(id), ForbiddenError);
    await as(data.tokens.host).start(id);
    await assert.rejects(as(data.tokens.viewer).switch(id), ForbiddenError);
    await assert.rejects(as(data.tokens.seats.black!).switch(id), NotYourTurnError);
    assert.equal((await as(data.tokens.seats.white!).switch(id)).active_participant_id, 'black');
  });

  it('DEMO=on with API keys but no TOKEN_SECRET refuses to start, saying what to set', async () => {
    const { env } = authEnv({ DEMO: 'on' });
    const { TOKEN_SECRET: _dropped, ...withoutSecret } = env;
    await assert.rejects(startServer(0, withoutSecret), /DEMO=on.*TOKEN_SECRET/s);
  });
});
