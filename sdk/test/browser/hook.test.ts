// useSyncKairos in a real React app in headless Chromium against the real server.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { SyncKairosClient, newSessionId } from '../../src/index.js';
import { INTERCEPTION_ARGS, launch, until } from '../support/browser.js';
import { startServer, type RunningServer } from '../support/server.js';

// .build/test/browser → sdk/test/browser/fixtures (the TypeScript source).
const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'browser', 'fixtures', 'hook-app.ts');

interface HookProbe {
  renders: number;
  sockets: number;
  status: string;
  version: number | null;
  active: string | null;
  white: number | null;
  black: number | null;
  at: number;
  offset: number | null;
}

describe('useSyncKairos in Chromium', () => {
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  before(async () => {
    server = await startServer();
    const bundle = await esbuild.build({
      entryPoints: [FIXTURE],
      bundle: true,
      format: 'esm',
      write: false,
      define: { 'process.env.NODE_ENV': '"production"' },
      logLevel: 'warning',
    });
    const js = bundle.outputFiles[0]!.text;
    // The fixture is served on the server's own origin by interception, so the hook talks to the real server.
    browser = await launch(INTERCEPTION_ARGS);
    const ctx = await browser.newContext();
    await ctx.route(
      (u) => u.origin === server.url && u.pathname.startsWith('/__hook__/'),
      (route) => {
        const path = new URL(route.request().url()).pathname;
        if (path === '/__hook__/app.js') return route.fulfill({ contentType: 'text/javascript', body: js });
        return route.fulfill({
          contentType: 'text/html',
          body: '<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="/__hook__/app.js"></script>',
        });
      },
    );
    page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('renders live state, re-renders per frame while running, never re-subscribes', async () => {
    const client = new SyncKairosClient({ baseUrl: server.url });
    const id = newSessionId();
    await client.createSession({
      session_id: id,
      sync_mode: 'per_participant',
      participants: [
        { participant_id: 'white', total_time_ms: 60_000 },
        { participant_id: 'black', total_time_ms: 60_000 },
      ],
      total_time_ms: 60_000,
    });
    await page.goto(`${server.url}/__hook__/index.html?session=${id}`);
    const probe = () => page.evaluate(() => (globalThis as unknown as { hookProbe?: HookProbe }).hookProbe ?? null);
    await until('hook connected with the state', async () => {
      const p = await probe();
      return p && p.status === 'open' && p.version === 1;
    });

    const started = await client.start(id);
    await until('running state rendered', async () => (await probe())?.version === started.version);
    const r0 = (await probe())!.renders;
    await new Promise((r) => setTimeout(r, 500));
    const p1 = (await probe())!;
    const perSecond = (p1.renders - r0) * 2;
    console.log(`  hook: ${perSecond} renders/s while running; ${p1.sockets} WebSocket(s) opened`);
    assert.ok(perSecond >= 10, `re-renders with the clock (got ${perSecond}/s)`);
    assert.equal(p1.sockets, 1, 're-renders do not re-subscribe');
    // The rendered remaining time is deadline − now (same host: local ≈ server clock).
    const truth = started.deadline_ms! - p1.at;
    console.log(`  hook: white ${p1.white} ms rendered vs ${truth.toFixed(1)} ms from the deadline`);
    assert.ok(Math.abs(p1.white! - truth) <= 50, `hook shows ${p1.white}, deadline says ${truth}`);
    assert.equal(p1.black, 60_000);

    const sw = await client.switch(id);
    await until('switch rendered', async () => (await probe())?.version === sw.version);
    assert.equal((await probe())!.active, 'black');

    await client.pause(id);
    await until('paused rendered', async () => (await probe())?.version === sw.version! + 1);
    const idle0 = (await probe())!.renders;
    await new Promise((r) => setTimeout(r, 300));
    const idle1 = (await probe())!.renders;
    assert.ok(idle1 - idle0 <= 2, `no per-frame renders while paused (${idle1 - idle0})`);
    assert.equal((await probe())!.sockets, 1);
    assert.deepEqual(errors, []);
  });
});
