// The demo endpoint (DEMO=on) against the real binary, auth off: what
// /demo/config tells the page, the create body's rules, and its two limits
// (per client address per minute, live demo clocks per instance).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SyncKairosClient, newSessionId, type CreateSessionRequest } from '../../src/index.js';
import { startServer, type RunningServer } from '../support/server.js';

function chess(id = newSessionId(), players = ['white', 'black']): CreateSessionRequest {
  return {
    session_id: id,
    sync_mode: 'per_participant',
    participants: players.map((p, i) => ({ participant_id: p, participant_index: i, total_time_ms: 60_000 })),
    total_time_ms: 60_000,
  };
}

async function post(server: RunningServer, body: unknown): Promise<{ status: number; json: Record<string, unknown>; retryAfter: string | null }> {
  const r = await fetch(server.url + '/demo/sessions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown>, retryAfter: r.headers.get('retry-after') };
}

const codeOf = (j: Record<string, unknown>) => (j.error as { code?: string } | undefined)?.code;

describe('demo sessions endpoint', () => {
  const servers: RunningServer[] = [];
  after(async () => {
    for (const s of servers) await s.stop();
  });
  const start = async (env: Record<string, string>) => {
    const s = await startServer(0, env);
    servers.push(s);
    return s;
  };

  it('DEMO off: the page is told so and the endpoint is a 404', async () => {
    const s = await start({});
    const cfg = await fetch(s.url + '/demo/config');
    assert.equal(cfg.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await cfg.json(), { auth: false, demo_sessions: false });
    assert.equal((await post(s, chess())).status, 404);
  });

  it('creates a two-seat clock with the /v1 body rules and an id of its own; auth off means no tokens', async () => {
    const s = await start({ DEMO: 'on' });
    assert.deepEqual(await (await fetch(s.url + '/demo/config')).json(), { auth: false, demo_sessions: true });
    const asked = newSessionId();
    const ok = await post(s, chess(asked));
    assert.equal(ok.status, 201);
    const data = ok.json.data as { session: { session_id: string; status: string }; tokens: unknown };
    const id = data.session.session_id;
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(id, asked, 'the server picks the id');
    assert.equal(data.session.status, 'pending');
    assert.equal(data.tokens, null);
    assert.equal((await new SyncKairosClient({ baseUrl: s.url }).getSession(id)).version, 1);

    const three = await post(s, chess(newSessionId(), ['a', 'b', 'c']));
    assert.equal(three.status, 400);
    assert.equal((three.json.error as { details?: { field?: string } }).details?.field, 'participants');
    const bad = await post(s, { ...chess(), total_time_ms: 5 });
    assert.equal(bad.status, 400);
    assert.equal((bad.json.error as { details?: { field?: string } }).details?.field, 'total_time_ms');
    // The same body again is another clock, never the existing one.
    const again = await post(s, chess(id));
    assert.equal(again.status, 201);
    assert.notEqual((again.json.data as { session: { session_id: string } }).session.session_id, id);
  });

  it('rate-limits per client address: 429 RATE_LIMITED with an integer Retry-After', async () => {
    const s = await start({ DEMO: 'on', DEMO_SESSIONS_PER_MINUTE: '2' });
    assert.equal((await post(s, chess())).status, 201);
    assert.equal((await post(s, chess())).status, 201);
    const third = await post(s, chess());
    assert.equal(third.status, 429);
    assert.equal(codeOf(third.json), 'RATE_LIMITED');
    assert.match(third.retryAfter ?? '', /^\d+$/);
    assert.ok(Number(third.retryAfter) >= 1 && Number(third.retryAfter) <= 30, `Retry-After ${third.retryAfter}`);
  });

  it('caps live demo clocks; a finished one frees its slot', async () => {
    const s = await start({ DEMO: 'on', DEMO_MAX_SESSIONS: '1', DEMO_SESSIONS_PER_MINUTE: '100' });
    const created = await post(s, chess());
    assert.equal(created.status, 201);
    const first = (created.json.data as { session: { session_id: string } }).session.session_id;
    const full = await post(s, chess());
    assert.equal(full.status, 429);
    assert.equal(codeOf(full.json), 'QUOTA_EXCEEDED');
    assert.match((full.json.error as { message: string }).message, /demo_sessions/);
    assert.match(full.retryAfter ?? '', /^\d+$/);
    await new SyncKairosClient({ baseUrl: s.url }).cancel(first);
    assert.equal((await post(s, chess())).status, 201);
  });
});
