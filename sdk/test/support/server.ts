// Starts the real `synckairos` binary ($SYNCKAIROS_BIN) per the server
// process contract: `serve --port P --bind 127.0.0.1`, first stdout line
// `listening on http://127.0.0.1:PORT`, SIGTERM for a graceful stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// This file's directory (import.meta.dirname needs Node ≥ 20.11).
const HERE = fileURLToPath(new URL('.', import.meta.url));

/** The binary under test: $SYNCKAIROS_BIN, else the workspace's debug build. */
export function serverBin(): string {
  const bin = process.env.SYNCKAIROS_BIN ?? resolve(HERE, '..', '..', '..', '..', 'target', 'debug', 'synckairos');
  if (!existsSync(bin)) throw new Error(`server binary not found at ${bin}: run 'cargo build -p synckairos --bin synckairos' or set SYNCKAIROS_BIN`);
  return bin;
}

/** A running server. */
export interface RunningServer {
  url: string;
  port: number;
  /** Everything the server wrote to stderr (shown when a test fails). */
  logs: () => string;
  /** SIGTERM, then wait for exit (SIGKILL after 10 s). */
  stop: () => Promise<void>;
}

/** Starts a server on `port` (0: a free one) and waits for its listening line. */
export async function startServer(port = 0, env: Record<string, string> = {}): Promise<RunningServer> {
  const child: ChildProcess = spawn(serverBin(), ['serve', '--port', String(port), '--bind', '127.0.0.1'], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const line = await new Promise<string>((res, rej) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => rej(new Error(`server did not print its listening line within 20 s\n${stderr}`)), 20_000);
    rl.once('line', (l) => {
      clearTimeout(timer);
      res(l);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`server exited (${code}) before listening\n${stderr}`));
    });
  });
  const m = /^listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
  if (!m) {
    child.kill('SIGKILL');
    throw new Error(`unexpected first stdout line: ${JSON.stringify(line)}`);
  }
  let stopped = false;
  return {
    url: m[1]!,
    port: Number(m[2]),
    logs: () => stderr,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
    },
  };
}

/** Polls `cond` every few ms until it is truthy or `timeoutMs` passes (then throws `what`). */
export async function waitFor<T>(what: string, cond: () => T | undefined | null | false, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}


/** Credentials for a server with auth on: an API key named `backend` and an HS256 token secret. */
export interface AuthEnv {
  apiKey: string;
  env: Record<string, string>;
}

/** Fresh random credentials (never reused between runs), plus `extra` env. */
export function authEnv(extra: Record<string, string> = {}): AuthEnv {
  const apiKey = 'sk_' + randomBytes(18).toString('hex');
  return {
    apiKey,
    env: { API_KEYS: `backend=${apiKey}`, TOKEN_SECRET: randomBytes(32).toString('hex'), ...extra },
  };
}
