// Credentials: API keys and session tokens on REST and WebSocket, token
// refresh (lazy, on refusal, and ahead of exp), and the typed 401/403 errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Credentials, decodeTokenClaims, keepTokenFresh, tokenExpiresAtMs } from '../../src/auth.js';
import {
  ForbiddenError,
  NotYourTurnError,
  SyncKairosError,
  UnauthorizedError,
  isSyncKairosError,
} from '../../src/errors.js';
import { SyncKairosClient } from '../../src/rest.js';
import { SessionSubscription } from '../../src/subscription.js';
import { FakeNet, VirtualTime, chessState } from '../support/sim.js';

const b64url = (s: string) => Buffer.from(s).toString('base64url');

/** An unsigned-looking JWT with these claims (the SDK never verifies; the server does). */
function jwt(claims: Record<string, unknown>): string {
  return `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.c2lnbmF0dXJl`;
}

/** Lets resolved promises run their continuations. */
const flush = () => new Promise<void>((r) => setImmediate(r));

describe('decodeTokenClaims', () => {
  it('reads sid, role, sub and exp from the payload', () => {
    const t = jwt({ sid: 's-1', role: 'participant', sub: 'white', exp: 1_800_000_000, extra: [1] });
    assert.deepEqual(decodeTokenClaims(t), { sid: 's-1', role: 'participant', sub: 'white', exp: 1_800_000_000 });
    assert.equal(tokenExpiresAtMs(t), 1_800_000_000_000);
  });

  it('handles base64url characters and UTF-8 in the payload', () => {
    // '??>' encodes to base64 with '/' and '+', which base64url turns into '_' and '-'.
    const t = jwt({ sub: 'Zoë??>>', exp: 1 });
    assert.ok(/[-_]/.test(t.split('.')[1]!), 'payload uses base64url characters');
    assert.equal(decodeTokenClaims(t)?.sub, 'Zoë??>>');
  });

  it('is null for anything that is not a JWT with an object payload, and ignores ill-typed claims', () => {
    for (const bad of ['sk_live_abc', 'a.b', 'a..c', `x.${b64url('not json')}.y`, `x.${b64url('[1]')}.y`, `x.${b64url('null')}.y`]) {
      assert.equal(decodeTokenClaims(bad), null, bad);
    }
    assert.deepEqual(decodeTokenClaims(jwt({ exp: '1700000000', role: 3 })), {});
    assert.equal(tokenExpiresAtMs('api-key'), undefined);
  });
});

describe('Credentials', () => {
  it('refuses an API key and a token together', () => {
    assert.throws(() => new Credentials({ apiKey: 'k', token: 't' }), (e: unknown) => isSyncKairosError(e, 'VALIDATION_ERROR'));
  });

  it('an API key or a static token is used as is, even past exp (the server says 401)', async () => {
    assert.equal(await new Credentials({ apiKey: 'backend=s3cret' }).get(), 'backend=s3cret');
    const old = jwt({ exp: 1 });
    const c = new Credentials({ token: old }, () => 10_000_000);
    assert.equal(c.current(), old);
    assert.equal(await c.get(), old);
    assert.equal(c.canRefresh, false);
    assert.equal(new Credentials().configured, false);
  });

  it('asks the provider for the first token, once for concurrent callers, then caches it', async () => {
    let calls = 0;
    const t = jwt({ exp: 2_000 });
    const c = new Credentials({ token: async () => (calls++, t) }, () => 1_000_000);
    assert.equal(c.current(), undefined, 'nothing to use before the provider answered');
    const got = await Promise.all([c.get(), c.get(), c.get()]);
    assert.deepEqual(got, [t, t, t]);
    assert.equal(calls, 1);
    assert.equal(await c.get(), t);
    assert.equal(calls, 1);
  });

  it('refreshes within the margin before exp and after the server refused the token', async () => {
    let now = 1_000_000;
    let n = 0;
    const c = new Credentials({ token: jwt({ exp: 1_100, n: 0 }), refreshToken: () => jwt({ exp: 1_100 + 100 * ++n }), refreshMarginMs: 30_000 }, () => now);
    const first = c.current()!;
    assert.equal(decodeTokenClaims(first)?.exp, 1_100);
    now = 1_100_000 - 30_001; // 30.001 s before exp: still good
    assert.equal(await c.get(), first);
    now = 1_100_000 - 30_000; // at the margin: refresh
    const second = await c.get();
    assert.equal(decodeTokenClaims(second!)?.exp, 1_200);
    c.invalidate(first); // an older token refused: no effect on the current one
    assert.equal(await c.get(), second);
    c.invalidate(second);
    assert.equal(c.current(), undefined);
    assert.equal(decodeTokenClaims((await c.get())!)?.exp, 1_300);
  });

  it('a failing provider is an UNAUTHORIZED SyncKairosError carrying the cause', async () => {
    const boom = new Error('backend down');
    const c = new Credentials({ token: () => Promise.reject(boom) });
    await assert.rejects(c.get(), (e: unknown) => {
      assert.ok(isSyncKairosError(e, 'UNAUTHORIZED'));
      assert.match(e.message, /backend down/);
      assert.equal(e.cause, boom);
      return true;
    });
    await assert.rejects(new Credentials({ token: () => '' }).get(), (e: unknown) => isSyncKairosError(e, 'UNAUTHORIZED'));
  });
});

describe('keepTokenFresh', () => {
  it('refreshes margin before each exp, retries a failed refresh, and stops', async () => {
    const vt = new VirtualTime();
    const expAt = (ms: number) => Math.floor((vt.t + ms) / 1000);
    const refreshedAt: number[] = [];
    let fail = false;
    const c = new Credentials(
      {
        token: jwt({ exp: expAt(120_000) }),
        refreshToken: async () => {
          refreshedAt.push(vt.t);
          if (fail) throw new Error('offline');
          return jwt({ exp: expAt(120_000) });
        },
        refreshMarginMs: 30_000,
      },
      () => vt.t,
    );
    const errors: unknown[] = [];
    const stop = keepTokenFresh(c, { timers: vt, now: () => vt.t, retryMs: 5_000, onError: (e) => errors.push(e) });
    const start = vt.t;
    vt.advance(89_000);
    assert.equal(refreshedAt.length, 0, 'nothing before exp - margin');
    vt.advance(1_000);
    await flush();
    assert.equal(refreshedAt.length, 1);
    assert.ok(Math.abs(refreshedAt[0]! - start - 90_000) <= 1_000, `first refresh at +${refreshedAt[0]! - start} ms`);
    fail = true;
    vt.advance(90_000);
    await flush();
    assert.equal(refreshedAt.length, 2);
    assert.equal(errors.length, 1);
    vt.advance(5_000);
    await flush();
    assert.equal(refreshedAt.length, 3, 'retried after retryMs');
    fail = false;
    vt.advance(5_000);
    await flush();
    assert.equal(refreshedAt.length, 4);
    stop();
    assert.equal(vt.pendingTimers(), 0, 'stop cancels the timer');
    vt.advance(1_000_000);
    await flush();
    assert.equal(refreshedAt.length, 4);
  });

  it('waits for a newer token set meanwhile, and does nothing without a provider', async () => {
    const vt = new VirtualTime();
    let calls = 0;
    const c = new Credentials({ token: jwt({ exp: Math.floor(vt.t / 1000) + 60 }), refreshToken: () => (calls++, jwt({ exp: 0 })), refreshMarginMs: 10_000 }, () => vt.t);
    const stop = keepTokenFresh(c, { timers: vt, now: () => vt.t });
    c.set(jwt({ exp: Math.floor(vt.t / 1000) + 600 }));
    vt.advance(60_000);
    await flush();
    assert.equal(calls, 0, 'the newer token is not due yet');
    stop();
    const none = keepTokenFresh(new Credentials({ token: jwt({ exp: 1 }) }), { timers: vt, now: () => vt.t });
    assert.equal(vt.pendingTimers(), 0);
    none();
  });
});

type Call = { url: string; auth: string | undefined };

/** A fetch that answers each call with the next of `replies` and records the Authorization header. */
function scriptedFetch(replies: Array<[number, unknown]>) {
  const calls: Call[] = [];
  const f = (async (url: string, init: RequestInit) => {
    calls.push({ url, auth: (init.headers as Record<string, string>).authorization });
    const [status, body] = replies.shift() ?? [500, { error: { code: 'INTERNAL_ERROR', message: 'script ran out' } }];
    return new Response(JSON.stringify(body), { status });
  }) as unknown as typeof fetch;
  return { f, calls };
}

const ok: [number, unknown] = [200, { data: chessState({ serverTime: 0 }) }];
const unauthorized: [number, unknown] = [401, { error: { code: 'UNAUTHORIZED', message: 'token expired' } }];

describe('SyncKairosClient with credentials', () => {
  it('sends the API key or token as Authorization: Bearer', async () => {
    const { f, calls } = scriptedFetch([ok, ok, ok]);
    await new SyncKairosClient({ baseUrl: 'http://h', fetch: f, apiKey: 'sk-1' }).getSession('s');
    await new SyncKairosClient({ baseUrl: 'http://h', fetch: f, token: 'a.b.c' }).getSession('s');
    await new SyncKairosClient({ baseUrl: 'http://h', fetch: f }).getSession('s');
    assert.deepEqual(
      calls.map((c) => c.auth),
      ['Bearer sk-1', 'Bearer a.b.c', undefined],
    );
  });

  it('a 401 with a provider is retried once with a fresh token', async () => {
    const { f, calls } = scriptedFetch([unauthorized, ok]);
    let n = 0;
    const c = new SyncKairosClient({ baseUrl: 'http://h', fetch: f, token: () => `t${++n}.x.y` });
    const r = await c.switch('s', { current_participant_id: 'white' });
    assert.equal(r.session_id, chessState({ serverTime: 0 }).session_id);
    assert.deepEqual(
      calls.map((c) => c.auth),
      ['Bearer t1.x.y', 'Bearer t2.x.y'],
    );
  });

  it('401 and 403 are typed: UnauthorizedError, ForbiddenError, NotYourTurnError', async () => {
    const { f, calls } = scriptedFetch([
      unauthorized,
      unauthorized,
      [403, { error: { code: 'FORBIDDEN', message: 'a viewer cannot switch' } }],
      [403, { error: { code: 'NOT_YOUR_TURN', message: 'black is running' } }],
      [401, 'not json'],
    ]);
    const withProvider = new SyncKairosClient({ baseUrl: 'http://h', fetch: f, token: () => 'p.q.r' });
    await assert.rejects(withProvider.start('s'), (e: unknown) => {
      assert.ok(e instanceof UnauthorizedError && e instanceof SyncKairosError);
      assert.equal(e.code, 'UNAUTHORIZED');
      assert.equal(e.status, 401);
      return true;
    });
    assert.equal(calls.length, 2, 'one retry, not a loop');
    const c = new SyncKairosClient({ baseUrl: 'http://h', fetch: f, token: 'v.w.x' });
    await assert.rejects(c.switch('s'), (e: unknown) => {
      assert.ok(e instanceof ForbiddenError && !(e instanceof NotYourTurnError));
      assert.equal(e.code, 'FORBIDDEN');
      return true;
    });
    await assert.rejects(c.switch('s'), (e: unknown) => {
      assert.ok(e instanceof NotYourTurnError && e instanceof ForbiddenError);
      assert.ok(isSyncKairosError(e, 'NOT_YOUR_TURN'));
      assert.equal(e.status, 403);
      return true;
    });
    await assert.rejects(c.switch('s'), (e: unknown) => e instanceof UnauthorizedError && e.code === 'UNAUTHORIZED');
    assert.equal(calls.length, 5, 'no retry without a provider');
  });
});

function subscription(options: ConstructorParameters<typeof SessionSubscription>[1]) {
  const vt = new VirtualTime();
  const net = new FakeNet(vt, { up: () => 5, down: () => 5 }, 0);
  net.state = chessState({ serverTime: vt.t, version: 3 });
  const sub = new SessionSubscription(net.state.session_id, {
    baseUrl: 'http://sim.invalid',
    WebSocket: net.WebSocket,
    now: net.clientNow,
    timers: vt,
    random: () => 0.5,
    ...options,
  });
  const errors: Array<{ code: string; message: string }> = [];
  sub.on('error', (e) => errors.push(e));
  const tokenOf = (i: number) => new URL(net.sockets[i]!.url).searchParams.get('token');
  return { vt, net, sub, errors, tokenOf };
}

describe('SessionSubscription with credentials', () => {
  it('connects with ?token= (static token or API key), synchronously', () => {
    const { net, sub, tokenOf } = subscription({ token: 'a.b.c' });
    assert.equal(net.sockets.length, 1);
    assert.equal(tokenOf(0), 'a.b.c');
    sub.close();
    const k = subscription({ apiKey: 'key-1' });
    assert.equal(k.tokenOf(0), 'key-1');
    k.sub.close();
    const open = subscription({});
    assert.equal(open.tokenOf(0), null);
    open.sub.close();
  });

  it('shares the client credential: a provider is asked once for REST and WebSocket', async () => {
    let calls = 0;
    const vt = new VirtualTime();
    const net = new FakeNet(vt, { up: () => 5, down: () => 5 }, 0);
    const { f } = scriptedFetch([ok]);
    const client = new SyncKairosClient({ baseUrl: 'http://sim.invalid', fetch: f, token: async () => `t${++calls}.x.y` });
    await client.getSession('s');
    const sub = new SessionSubscription('s', { client, WebSocket: net.WebSocket, timers: vt, now: net.clientNow });
    assert.equal(new URL(net.sockets[0]!.url).searchParams.get('token'), 't1.x.y');
    assert.equal(calls, 1);
    sub.close();
  });

  it('on close 1008 "token expired" gets a fresh token from the provider and reconnects at once', async () => {
    let n = 0;
    const { vt, net, sub, errors, tokenOf } = subscription({ token: async () => `tok${++n}.x.y` });
    assert.equal(net.sockets.length, 0, 'waits for the provider');
    await flush();
    assert.equal(tokenOf(0), 'tok1.x.y');
    vt.advance(50);
    assert.equal(sub.status, 'open');
    net.sockets[0]!.serverClose(1008, 'token expired');
    vt.advance(5);
    await flush();
    assert.equal(net.sockets.length, 2, 'reconnected without a backoff delay');
    assert.equal(tokenOf(1), 'tok2.x.y');
    vt.advance(50);
    assert.equal(sub.status, 'open');
    assert.equal(sub.reconnectCount, 1);
    assert.deepEqual(errors, []);
    sub.close();
  });

  it('without a provider, "token expired" is an UNAUTHORIZED error and the subscription closes', () => {
    const { vt, net, sub, errors } = subscription({ token: 'a.b.c' });
    vt.advance(50);
    net.sockets[0]!.serverClose(1008, 'token expired');
    vt.advance(50);
    assert.equal(sub.status, 'closed');
    assert.equal(errors[0]?.code, 'UNAUTHORIZED');
    assert.equal(net.sockets.length, 1);
  });

  it('a socket closed before CONNECTED (a refused upgrade) makes the next attempt fetch a fresh token', async () => {
    let n = 0;
    const { vt, net, sub, tokenOf } = subscription({ token: () => `tok${++n}.x.y` });
    await flush();
    assert.equal(tokenOf(0), 'tok1.x.y');
    net.sockets[0]!.serverClose(1006); // before CONNECTED arrives (it takes 10 ms)
    vt.advance(1_000);
    await flush();
    assert.equal(tokenOf(1), 'tok2.x.y');
    vt.advance(50);
    assert.equal(sub.status, 'open');
    // Once connected, an ordinary drop keeps the token.
    net.sockets[1]!.serverClose(1001);
    vt.advance(1_000);
    await flush();
    assert.equal(tokenOf(2), 'tok2.x.y');
    sub.close();
  });

  it('a failing provider is reported and retried with backoff', async () => {
    let fail = true;
    const { vt, net, sub, errors, tokenOf } = subscription({
      token: async () => {
        if (fail) throw new Error('backend down');
        return 'good.x.y';
      },
    });
    await flush();
    assert.equal(errors[0]?.code, 'UNAUTHORIZED');
    assert.equal(sub.status, 'reconnecting');
    assert.equal(net.sockets.length, 0);
    fail = false;
    vt.advance(1_000);
    await flush();
    assert.equal(tokenOf(0), 'good.x.y');
    sub.close();
  });
});
