// Headless Debian chromium through playwright-core (never a downloaded browser).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

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
  return process.env.ARTIFACTS_DIR ?? resolve(import.meta.dirname, '..', '..', '..', '..', '.artifacts');
}

/** The committed demo build (what the binary embeds). */
export const DEMO_ASSETS = resolve(import.meta.dirname, '..', '..', '..', '..', 'server', 'assets', 'demo');

/**
 * Whether the server itself serves the demo at `/`. Until the lead merges
 * `api::demo::routes()` it does not; then the pages are served the same
 * committed files by request interception on the server's own origin, so
 * that fetch and WebSocket still go to the real server.
 */
export async function serverServesDemo(baseUrl: string): Promise<boolean> {
  const r = await fetch(baseUrl + '/');
  return r.ok && (await r.text()).includes('/demo/demo.js?v=');
}

/**
 * Chromium flags needed while the demo is served by interception: a page that
 * did not come from the network counts as "public", and Local Network Access
 * then blocks its WebSocket to 127.0.0.1. Not needed (nor used) once the
 * server serves the page itself.
 */
export const INTERCEPTION_ARGS = ['--disable-features=LocalNetworkAccessChecks'];

/**
 * Chromium fetches /favicon.ico from the browser process, which request
 * interception does not see; until the server serves the demo routes
 * (including /favicon.ico) that 404 is expected and ignored.
 */
export const INTERCEPTION_IGNORED = /\/favicon\.ico$/;

export async function serveCommittedDemo(ctx: BrowserContext, baseUrl: string): Promise<void> {
  const files: Record<string, [string, string]> = {
    '/': ['index.html', 'text/html; charset=utf-8'],
    '/demo/demo.js': ['demo.js', 'text/javascript; charset=utf-8'],
    '/demo/demo.css': ['demo.css', 'text/css; charset=utf-8'],
    '/demo/favicon.svg': ['favicon.svg', 'image/svg+xml'],
    '/favicon.ico': ['favicon.svg', 'image/svg+xml'],
  };
  await ctx.route(
    (url) => url.origin === baseUrl && url.pathname in files,
    async (route) => {
      const [file, type] = files[new URL(route.request().url()).pathname]!;
      await route.fulfill({ status: 200, contentType: type, body: readFileSync(join(DEMO_ASSETS, file)) });
    },
  );
}

/** Collects page errors and console errors so a test can assert there were none. */
export function watchErrors(page: Page, label: string, ignoreUrl?: RegExp): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`${label}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error' || (ignoreUrl && ignoreUrl.test(m.location().url))) return;
    errors.push(`${label} console: ${m.text()} (${m.location().url})`);
  });
  return errors;
}
