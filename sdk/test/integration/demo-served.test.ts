// The binary serves the committed demo build (server/assets/demo) at / with
// the right types and cache headers — so a stale binary or a hand-edited
// asset shows up here, not in a user's browser.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEMO_ASSETS } from '../support/browser.js';
import { startServer, type RunningServer } from '../support/server.js';

describe('demo page served by the binary', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('serves the committed build at / and /demo/*', async () => {
    const html = await fetch(server.url + '/');
    assert.equal(html.status, 200);
    assert.equal(html.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(html.headers.get('cache-control'), 'no-cache');
    const page = await html.text();
    assert.equal(page, readFileSync(join(DEMO_ASSETS, 'index.html'), 'utf8'), 'the binary embeds the committed index.html');

    const refs = [...page.matchAll(/(?:src|href)="(\/demo\/[^"]+)"/g)].map((m) => m[1]!);
    assert.equal(refs.length, 3, `icon, stylesheet and script referenced: ${refs.join(', ')}`);
    const types: Record<string, string> = {
      'demo.js': 'text/javascript; charset=utf-8',
      'demo.css': 'text/css; charset=utf-8',
      'favicon.svg': 'image/svg+xml',
    };
    for (const ref of refs) {
      const name = new URL(ref, server.url).pathname.split('/').pop()!;
      const r = await fetch(server.url + ref);
      assert.equal(r.status, 200, ref);
      assert.equal(r.headers.get('content-type'), types[name], ref);
      assert.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable', ref);
      assert.equal(await r.text(), readFileSync(join(DEMO_ASSETS, name), 'utf8'), `${name} matches the committed build`);
    }
    assert.equal((await fetch(server.url + '/favicon.ico')).status, 200);
  });
});
