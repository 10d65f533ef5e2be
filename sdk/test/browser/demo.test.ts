// The demo page in two headless Chromium pages on the same session, against
// the real server: same remaining time, a switch in one shows in the other,
// a flag fall shows as the server applies it; screenshots under .artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { artifactsDir, launch, serverServesDemo, watchErrors, until } from '../support/browser.js';
import { startServer, type RunningServer } from '../support/server.js';

interface Probe {
  frame: { at: number; remaining: Record<string, number>; active: string | null; version: number; status: string; deadline: number | null } | null;
  activeShownAt: Array<{ pid: string | null; at: number; version: number }>;
  pressedAt: number | null;
  flagShownAt: number | null;
  offsetMs: number | null;
  uncertaintyMs: number | null;
}

const probe = (p: Page) => p.evaluate(() => (globalThis as unknown as { synckairosDemo: Probe }).synckairosDemo);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

describe('demo page in headless Chromium', () => {
  let server: RunningServer;
  let browser: Browser;
  let a: Page;
  let b: Page;
  const errors: string[] = [];
  const out = artifactsDir();

  before(async () => {
    mkdirSync(out, { recursive: true });
    server = await startServer();
    // The page must come from the server itself (api::demo, embedded in the binary).
    assert.ok(await serverServesDemo(server.url), 'the server serves the demo page at /');
    browser = await launch();
    const ctxA = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    const ctxB = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    a = await ctxA.newPage();
    b = await ctxB.newPage();
    const ea = watchErrors(a, 'page A');
    const eb = watchErrors(b, 'page B');
    Object.defineProperty(errors, 'all', { get: () => [...ea, ...eb] });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const pageErrors = () => (errors as unknown as { all: string[] }).all;

  it('two pages on one session: same clocks, switches propagate, pause and resume', async () => {
    // Page A creates a 5+2 chess clock through the form.
    await a.goto(server.url + '/');
    await a.getByLabel('Mode').selectOption('per_participant');
    await a.getByLabel('Bank (minutes)').fill('5');
    await a.getByLabel('Increment (seconds)').fill('2');
    await a.screenshot({ path: join(out, 'demo-setup.png') });
    await a.getByRole('button', { name: 'Create clock' }).click();
    await a.waitForURL(/\?session=[0-9a-f-]{36}$/);
    const link = await a.getByLabel('Share link').inputValue();
    assert.equal(link, a.url());

    // Page B opens the share link.
    await b.goto(link);
    for (const p of [a, b]) {
      await p.getByRole('button', { name: 'Start' }).waitFor();
      assert.equal(await p.locator('#time-white').textContent(), '5:00');
    }
    await b.getByRole('button', { name: 'Start' }).click();
    for (const p of [a, b]) await until('running on both', async () => (await probe(p)).frame?.active === 'white');

    // Same remaining time: both pages' last painted values, moved to a common instant.
    const diffs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const [pa, pb] = await Promise.all([probe(a), probe(b)]);
      const fa = pa.frame!;
      const fb = pb.frame!;
      assert.ok(Math.abs(fb.at - fa.at) < 1_000, 'both pages are painting');
      // The running clock (white) falls 1 ms per ms; the waiting one is constant.
      const whiteA = fa.remaining.white! - (fb.at - fa.at);
      diffs.push(Math.abs(whiteA - fb.remaining.white!), Math.abs(fa.remaining.black! - fb.remaining.black!));
      await new Promise((r) => setTimeout(r, 25));
    }
    const worst = Math.max(...diffs);
    const pa = await probe(a);
    console.log(`  same-time check: max |A − B| = ${worst.toFixed(2)} ms over 20 samples; clock offset ${pa.offsetMs?.toFixed(2)} ± ${pa.uncertaintyMs?.toFixed(2)} ms`);
    assert.ok(worst <= 50, `remaining times differ by ${worst} ms (bound 50 ms)`);

    // Switches with Space, alternating pages; latency = press in one page → first frame showing it in the other.
    const latencies: number[] = [];
    let expected = 'black';
    for (let i = 0; i < 6; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      // Both pages settled on the same version first, so the next version is this press's switch.
      const before = await until('both pages show the same version', async () => {
        const [fa, fb] = [(await probe(a)).frame!, (await probe(b)).frame!];
        return fa.version === fb.version && fa.active !== expected ? fa.version : null;
      });
      await from.keyboard.press('Space');
      const shown = await until('switch shown in the other page', async () => {
        const pr = await probe(to);
        return pr.activeShownAt.find((x) => x.version > before && x.pid === expected) ?? null;
      }, 5_000).catch(async (e: Error) => {
        const diag = async (p: Page) => ({
          frame: (await probe(p)).frame,
          error: await p.locator('#action-error').textContent(),
          focus: await p.evaluate(() => document.activeElement?.id || document.activeElement?.tagName),
          conn: await p.locator("#conn").textContent(),
          shown: (await probe(p)).activeShownAt.slice(-6),
          pressedAt: (await probe(p)).pressedAt,
          before,
        });
        throw new Error(`${e.message} (switch ${i}, expecting ${expected}); from: ${JSON.stringify(await diag(from))}; to: ${JSON.stringify(await diag(to))}`);
      });
      const pressedAt = (await probe(from)).pressedAt!;
      latencies.push(shown.at - pressedAt);
      expected = expected === 'black' ? 'white' : 'black';
    }
    console.log(`  switch latency (press → other page painted): ${latencies.map((x) => x.toFixed(1)).join(', ')} ms; median ${median(latencies).toFixed(1)} ms`);
    assert.ok(median(latencies) <= 200, `median switch latency ${median(latencies)} ms exceeds 200 ms`);
    assert.ok(Math.max(...latencies) <= 1_000, `a switch took ${Math.max(...latencies)} ms to show`);
    // Increment: after two own moves each player has gained time over the bare elapsed.
    const after = (await probe(a)).frame!;
    assert.equal(after.active, 'white');
    assert.ok(after.remaining.black! > 300_000 - 2_000, `black got increments: ${after.remaining.black}`);
    await a.screenshot({ path: join(out, 'demo-running.png') });

    // Pause in B shows in A; resume in A shows in B.
    await b.getByRole('button', { name: 'Pause' }).click();
    await until('paused in A', async () => (await probe(a)).frame?.status === 'paused');
    const frozen1 = (await probe(a)).frame!.remaining.white!;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal((await probe(a)).frame!.remaining.white, frozen1, 'a paused clock does not move');
    await a.getByRole('button', { name: 'Resume' }).click();
    await until('running again in B', async () => (await probe(b)).frame?.status === 'running');
    assert.deepEqual(pageErrors(), []);
  });

  it('flag fall is shown in both pages as the server applies it', async () => {
    await a.goto(server.url + '/');
    await a.getByLabel('Bank (minutes)').fill('0.02'); // 1.2 s
    await a.getByLabel('Increment (seconds)').fill('0');
    await a.getByRole('button', { name: 'Create clock' }).click();
    await a.waitForURL(/\?session=/);
    await b.goto(a.url());
    await b.getByRole('button', { name: 'Start' }).waitFor();
    await a.getByRole('button', { name: 'Start' }).click();
    const deadline = await until('deadline known', async () => (await probe(b)).frame?.deadline ?? null);
    for (const [name, p] of [['A', a], ['B', b]] as const) {
      await p.locator('#flag-white').waitFor({ state: 'visible', timeout: 10_000 });
      const pr = await probe(p);
      // flagShownAt is local time; the page's offset maps it to server time.
      const late = pr.flagShownAt! + (pr.offsetMs ?? 0) - deadline;
      console.log(`  page ${name}: flag fall painted ${late.toFixed(1)} ms after the server deadline`);
      assert.ok(late >= -20, `flag shown before the deadline (${late} ms)`);
      assert.ok(late < 1_000, `flag shown ${late} ms after the deadline`);
      assert.match((await p.getByRole('status').textContent()) ?? '', /White: flag fell/);
      assert.equal(await p.locator('#time-white').textContent(), '0:00.0');
    }
    const shot = join(out, 'demo.png');
    await a.screenshot({ path: shot, fullPage: true });
    console.log(`  screenshot: ${shot}`);
    assert.deepEqual(pageErrors(), []);
  });
});
