// Headless Debian chromium through playwright-core (never a downloaded browser).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { fileURLToPath } from 'node:url';

// This file's directory (import.meta.dirname needs Node ≥ 20.11).
const HERE = fileURLToPath(new URL('.', import.meta.url));

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Launches chromium with a fresh temporary profile (playwright creates and removes it). */
export async function launch(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: run 'make sdk-deps' (apt-get install chromium chromium-driver)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Each test page must keep painting while another one has focus.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
      ...extraArgs,
    ],
  });
}

/** Where screenshots go: $ARTIFACTS_DIR, else <repo>/.artifacts. */
export function artifactsDir(): string {
  return process.env.ARTIFACTS_DIR ?? resolve(HERE, '..', '..', '..', '..', '.artifacts');
}

/** The committed demo build (what the binary embeds). */
export const DEMO_ASSETS = resolve(HERE, '..', '..', '..', '..', 'server', 'assets', 'demo');

/** Whether the server itself serves the demo at `/` (api::demo, embedded in the binary). */
export async function serverServesDemo(baseUrl: string): Promise<boolean> {
  const r = await fetch(baseUrl + '/');
  return r.ok && (await r.text()).includes('/demo/demo.js?v=');
}

/**
 * Chromium flags for pages served by request interception (the hook test's
 * fixture): such a page counts as "public", and Local Network Access would
 * block its WebSocket to 127.0.0.1. The demo page, served by the server
 * itself, runs without them.
 */
export const INTERCEPTION_ARGS = ['--disable-features=LocalNetworkAccessChecks'];

/** Collects page errors and console errors so a test can assert there were none. */
export function watchErrors(page: Page, label: string): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`${label}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${label} console: ${m.text()} (${m.location().url})`);
  });
  return errors;
}

/** Polls the page-side condition `fn` every 10 ms until it is truthy or `timeoutMs` passes (then throws `what`). */
export async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
