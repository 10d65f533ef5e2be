// The REST client's mapping of HTTP to data and typed errors, with a fake fetch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SyncKairosClient, newSessionId } from '../../src/rest.js';
import { SyncKairosError, isSyncKairosError } from '../../src/errors.js';

type Call = { url: string; init: RequestInit };

function fakeFetch(status: number, body: unknown, headers: Record<string, string> = {}) {
  const calls: Call[] = [];
  const f = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(body === undefined ? null : JSON.stringify(body), { status, headers });
  }) as unknown as typeof fetch;
  return { f, calls };
}

describe('SyncKairosClient', () => {
  it('unwraps {data} and sends JSON', async () => {
    const { f, calls } = fakeFetch(201, { data: { session_id: 'abc', version: 1 } });
    const c = new SyncKairosClient({ baseUrl: 'http://h:1/', fetch: f, headers: { authorization: 'Bearer t' } });
    const s = await c.createSession({ session_id: 'abc', sync_mode: 'per_participant', participants: [], total_time_ms: 1000 });
    assert.equal(s.version, 1);
    assert.equal(calls[0]!.url, 'http://h:1/v1/sessions');
    const h = calls[0]!.init.headers as Record<string, string>;
    assert.equal(h['content-type'], 'application/json');
    assert.equal(h.authorization, 'Bearer t');
    assert.equal((JSON.parse(calls[0]!.init.body as string) as { session_id: string }).session_id, 'abc');
  });

  it('turns error bodies into SyncKairosError with code, status, details and Retry-After', async () => {
    const { f } = fakeFetch(429, { error: { code: 'RATE_LIMITED', message: 'slow down', details: { limit: 5 } } }, { 'retry-after': '2' });
    const c = new SyncKairosClient({ baseUrl: 'http://h', fetch: f });
    await assert.rejects(c.switch('x'), (e: unknown) => {
      assert.ok(isSyncKairosError(e, 'RATE_LIMITED'));
      assert.equal(e.status, 429);
      assert.deepEqual(e.details, { limit: 5 });
      assert.equal(e.retryAfterMs, 2000);
      return true;
    });
  });

  it('DELETE 204 resolves; network failures are NETWORK_ERROR', async () => {
    const { f } = fakeFetch(204, undefined);
    await new SyncKairosClient({ baseUrl: 'http://h', fetch: f }).deleteSession('x');
    const broken = (async () => {
      throw new TypeError('connection refused');
    }) as unknown as typeof fetch;
    await assert.rejects(new SyncKairosClient({ baseUrl: 'http://h', fetch: broken }).getSession('x'), (e: unknown) => {
      assert.ok(e instanceof SyncKairosError);
      assert.equal(e.code, 'NETWORK_ERROR');
      assert.equal(e.status, 0);
      return true;
    });
  });

  it('a non-JSON error body still yields a code from the status', async () => {
    const f = (async () => new Response('gateway down', { status: 503 })) as unknown as typeof fetch;
    await assert.rejects(new SyncKairosClient({ baseUrl: 'http://h', fetch: f }).ready(), (e: unknown) =>
      isSyncKairosError(e, 'SERVICE_UNAVAILABLE'),
    );
  });

  it('wsUrl maps http→ws and https→wss', () => {
    assert.equal(new SyncKairosClient({ baseUrl: 'https://x.example' }).wsUrl('a b'), 'wss://x.example/ws?sessionId=a+b');
    assert.equal(new SyncKairosClient({ baseUrl: 'http://127.0.0.1:9' }).wsUrl('id'), 'ws://127.0.0.1:9/ws?sessionId=id');
  });

  it('newSessionId makes v4 UUIDs', () => {
    const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (let i = 0; i < 50; i++) assert.match(newSessionId(), re);
  });
});
