// The demo page with auth on (API_KEYS + TOKEN_SECRET + DEMO=on) in three
// headless Chromium pages: the host (White's seat and the controls), Black's
// link and the spectator link. Each seat can press only on its own turn; the
// spectator has no switch and disabled clock faces, and a switch forced
// with its token gets 403.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ForbiddenError, NotYourTurnError, SyncKairosClient } from '../../src/index.js';
import { artifactsDir, launch, watchErrors, until } from '../support/browser.js';
import { authEnv, startServer, type RunningServer } from '../support/server.js';

interface Probe {
  frame: { active: string | null; version: number; status: string } | null;
  role: string | null;
  seat: string | null;
}

const probe = (p: Page) => p.evaluate(() => (globalThis as unknown as { synckairosDemo: Probe }).synckairosDemo);

/** The page's own token, from its URL's #t= fragment. */
const tokenOf = (p: Page) => new URLSearchParams(new URL(p.url()).hash.slice(1)).get('t')!;

describe('demo page with auth on, in headless Chromium', () => {
  let server: RunningServer;
  let browser: Browser;
  let host: Page;
  let black: Page;
  let spectator: Page;
  const errors: string[][] = [];

  before(async () => {
    mkdirSync(artifactsDir(), { recursive: true });
    server = await startServer(0, authEnv({ DEMO: 'on' }).env);
    browser = await launch();
    const page = async (label: string) => {
      const ctx = await browser.newContext({ viewport: { width: 1000, height: 760 } });
      const p = await ctx.newPage();
      errors.push(watchErrors(p, label));
      return p;
    };
    host = await page('host');
    black = await page('black');
    spectator = await page('spectator');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Every page settled on the same version with `active` to move; returns that version. */
  const allShow = (active: string) =>
    until(`all pages show ${active} to move`, async () => {
      const fs = await Promise.all([host, black, spectator].map(async (p) => (await probe(p)).frame));
      const v = fs[0]?.version;
      return fs.every((f) => f?.status === 'running' && f.active === active && f.version === v) ? v : null;
    });

  it('two seats and a spectator: each seat presses only on its turn, the spectator never', async () => {
    // Direct /v1 access is closed to the page: without a credential it gets 401.
    assert.equal((await fetch(server.url + '/v1/sessions/00000000-0000-4000-8000-000000000000')).status, 401);

    await host.goto(server.url + '/');
    await host.getByLabel('Bank (minutes)').fill('5');
    await host.getByRole('button', { name: 'Create clock' }).click();
    await host.waitForURL(/\?session=[0-9a-f-]{36}#t=/);
    const sessionId = new URL(host.url()).searchParams.get('session')!;
    assert.equal(await host.locator('#share-label').textContent(), "Black's link");
    const blackLink = await host.locator('#share-link').inputValue();
    const spectatorLink = await host.getByLabel('Spectator link').inputValue();
    assert.ok(!blackLink.includes('c='), 'the shared links carry no controller token');
    await black.goto(blackLink);
    await spectator.goto(spectatorLink);
    assert.deepEqual(
      await Promise.all([host, black, spectator].map(async (p) => { const pr = await probe(p); return [pr.role, pr.seat]; })),
      [['participant', 'white'], ['participant', 'black'], ['viewer', null]],
    );

    // Only the host can start; the others have no Start button.
    await host.getByRole('button', { name: 'Start' }).waitFor();
    for (const p of [black, spectator]) {
      await p.locator('#time-white').filter({ hasText: '5:00' }).waitFor();
      assert.equal(await p.getByRole('button', { name: 'Start' }).isVisible(), false);
      assert.equal(await p.locator('#share').isVisible(), false);
    }
    await host.getByRole('button', { name: 'Start' }).click();
    let v = await allShow('white');

    // White's turn: Black's page cannot press (switch and faces disabled, Space ignored).
    assert.equal(await black.locator('#switch').isDisabled(), true);
    assert.equal(await black.locator('#clock-black').isDisabled(), true);
    assert.equal(await black.locator('#clock-white').isDisabled(), true);
    assert.equal(await host.locator('#clock-white').isDisabled(), false);
    assert.equal(await host.locator('#clock-black').isDisabled(), true);
    await black.keyboard.press('Space');
    // The spectator: no switch button, both faces disabled, Space ignored.
    assert.equal(await spectator.locator('#switch').isVisible(), false);
    assert.equal(await spectator.locator('#clock-white').isDisabled(), true);
    assert.equal(await spectator.locator('#clock-black').isDisabled(), true);
    assert.equal(await spectator.locator('#pause').isVisible(), false);
    await spectator.keyboard.press('Space');
    // The next version is the host's press, so neither press above did anything.
    await host.keyboard.press('Space');
    const v2 = await allShow('black');
    assert.equal(v2, v + 1, 'exactly one switch: the host’s');
    v = v2;

    // Black's turn: now Black presses its own clock face; White cannot.
    assert.equal(await host.locator('#switch').isDisabled(), true);
    assert.equal(await black.locator('#clock-black').isDisabled(), false);
    await host.keyboard.press('Space');
    await black.locator('#clock-black').click();
    const v3 = await allShow('white');
    assert.equal(v3, v + 1, 'exactly one switch: Black’s');

    // Forcing it past the page: the spectator's token gets 403 FORBIDDEN, an off-turn seat 403 NOT_YOUR_TURN.
    const forced = new SyncKairosClient({ baseUrl: server.url, token: tokenOf(spectator) });
    await assert.rejects(forced.switch(sessionId), (e: unknown) => e instanceof ForbiddenError && e.status === 403 && e.code === 'FORBIDDEN');
    await assert.rejects(forced.pause(sessionId), ForbiddenError);
    const offTurn = new SyncKairosClient({ baseUrl: server.url, token: tokenOf(black) });
    await assert.rejects(offTurn.switch(sessionId, { current_participant_id: 'white' }), NotYourTurnError);
    assert.equal((await forced.getSession(sessionId)).version, v3, 'nothing was switched');

    // The host controls: pause shows everywhere.
    await host.getByRole('button', { name: 'Pause' }).click();
    await until('paused on the spectator page', async () => (await probe(spectator)).frame?.status === 'paused');
    await spectator.screenshot({ path: join(artifactsDir(), 'demo-auth-spectator.png') });
    assert.deepEqual(errors.flat(), []);
  });
});
