// The demo page: a two-player chess clock on SyncKairos. Everything shown is
// computed each frame from the newest server state and the clock estimate;
// buttons only send commands, and the screen changes when the server's
// update arrives, so every tab shows the same thing.
//
// With auth off (`make run`) the page creates clocks through /v1 and anyone
// with the link may press. With auth on, the server creates them
// (POST /demo/sessions, DEMO=on) and hands out session tokens, carried in
// the links' #fragment (never sent to a server, never in a Referer): the
// host gets White's seat and the controls, Black's link holds Black's seat,
// the spectator link a viewer token that cannot press at all.
import {
  SessionSubscription,
  SyncKairosClient,
  decodeTokenClaims,
  formatClock,
  isSyncKairosError,
  newSessionId,
  participantRemainingMs,
  type CreateSessionRequest,
  type SyncMode,
  type SyncState,
} from '../src/index.js';

const PLAYERS = ['white', 'black'] as const;
type Pid = (typeof PLAYERS)[number];
const NAMES: Record<Pid, string> = { white: 'White', black: 'Black' };

/** Measurements the browser tests read; harmless for users. */
interface DemoProbe {
  /** The last painted frame: local epoch ms of the frame and the values shown. */
  frame: { at: number; remaining: Record<string, number>; active: string | null; version: number; status: string; deadline: number | null } | null;
  /** Local epoch ms of the first frame that painted each new version (with its active player). */
  activeShownAt: Array<{ pid: string | null; at: number; version: number }>;
  /** Local epoch ms of the last Space / switch press. */
  pressedAt: number | null;
  /** Local epoch ms when a flag fall was first painted. */
  flagShownAt: number | null;
  offsetMs: number | null;
  uncertaintyMs: number | null;
  /** With auth on: the token's role and seat (null: auth off, anyone may press). */
  role: string | null;
  seat: string | null;
}

const probe: DemoProbe = {
  frame: null,
  activeShownAt: [],
  pressedAt: null,
  flagShownAt: null,
  offsetMs: null,
  uncertaintyMs: null,
  role: null,
  seat: null,
};
(globalThis as { synckairosDemo?: DemoProbe }).synckairosDemo = probe;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const epochNow = (): number => performance.timeOrigin + performance.now();

/** What the server says about creating clocks (`GET /demo/config`). */
interface DemoConfig {
  auth: boolean;
  demo_sessions: boolean;
}

/** The tokens `POST /demo/sessions` hands out with auth on. */
interface DemoTokens {
  host: string;
  seats: Record<string, string>;
  viewer: string;
  expires_at: string;
}

/** `POST /demo/sessions`'s answer: the clock (its id chosen by the server) and its tokens. */
interface DemoCreated {
  session: SyncState;
  tokens: DemoTokens | null;
}

/** The tokens this page holds, from its #fragment: `t` its own (seat or viewer), `c` the host's, `o`/`v` the links it shares. */
interface PageTokens {
  own: string;
  control?: string;
  opponent?: string;
  viewer?: string;
}

async function demoConfig(): Promise<DemoConfig> {
  try {
    const r = await fetch('/demo/config', { headers: { accept: 'application/json' } });
    if (r.ok) return (await r.json()) as DemoConfig;
  } catch {
    // An older server without the route: auth off, as before.
  }
  return { auth: false, demo_sessions: false };
}

function pageTokens(hash: string): PageTokens | null {
  const f = new URLSearchParams(hash.replace(/^#/, ''));
  const own = f.get('t');
  if (!own) return null;
  const out: PageTokens = { own };
  for (const [key, name] of [['c', 'control'], ['o', 'opponent'], ['v', 'viewer']] as const) {
    const v = f.get(key);
    if (v) out[name] = v;
  }
  return out;
}

function fragment(t: PageTokens): string {
  const f = new URLSearchParams({ t: t.own });
  if (t.control) f.set('c', t.control);
  if (t.opponent) f.set('o', t.opponent);
  if (t.viewer) f.set('v', t.viewer);
  return '#' + f.toString();
}

const client = new SyncKairosClient({ baseUrl: location.origin });

function showSetup(config: DemoConfig): void {
  $('setup').hidden = false;
  $('game').hidden = true;
  const form = $<HTMLFormElement>('setup');
  const mode = $<HTMLSelectElement>('mode');
  const syncRows = () => {
    $('per-move-row').hidden = mode.value !== 'per_cycle';
    $('increment').closest('.row')!.toggleAttribute('hidden', mode.value !== 'per_participant');
  };
  mode.addEventListener('change', syncRows);
  syncRows();
  const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
  if (config.auth && !config.demo_sessions) {
    $('setup-error').textContent =
      'This server requires credentials and its public demo is off: its operator can turn it on with DEMO=on.';
    submit.disabled = true;
    return;
  }
  // The handlers catch their own errors; `void` marks the promise as handled.
  const create = async (ev: SubmitEvent) => {
    ev.preventDefault();
    const err = $('setup-error');
    err.textContent = '';
    const syncMode = mode.value as SyncMode;
    const bankMs = Math.round(Number($<HTMLInputElement>('bank').value) * 60_000);
    const incMs = Math.round(Number($<HTMLInputElement>('increment').value) * 1000);
    const perMoveMs = Math.round(Number($<HTMLInputElement>('per-move').value) * 1000);
    let id = newSessionId();
    const body: CreateSessionRequest = {
      session_id: id,
      sync_mode: syncMode,
      participants: PLAYERS.map((pid, i) => ({
        participant_id: pid,
        participant_index: i,
        total_time_ms: syncMode === 'per_cycle' ? perMoveMs : bankMs,
      })),
      total_time_ms: syncMode === 'per_cycle' ? Math.max(perMoveMs, 1000) : bankMs,
      ...(syncMode === 'per_cycle' ? { time_per_cycle_ms: perMoveMs } : {}),
      ...(syncMode === 'per_participant' ? { increment_ms: incMs } : {}),
      metadata: { demo: 'chess-clock' },
    };
    submit.disabled = true;
    try {
      let tokens: PageTokens | null = null;
      if (config.auth) {
        const created = await createDemoSession(body);
        if (!created.tokens) throw new Error('the server sent no tokens');
        id = created.session.session_id;
        // The host plays the first seat and holds the controls; it shares the other seat and a spectator link.
        const [first, second] = PLAYERS;
        const t = created.tokens;
        tokens = { own: t.seats[first]!, control: t.host, opponent: t.seats[second]!, viewer: t.viewer };
      } else {
        await client.createSession(body);
      }
      history.pushState(null, '', `/?session=${id}${tokens ? fragment(tokens) : ''}`);
      $('setup').hidden = true;
      showGame(id, tokens);
    } catch (e) {
      const field = isSyncKairosError(e) && e.details ? ` (${Object.keys(e.details).join(', ')})` : '';
      err.textContent = `Could not create the clock: ${(e as Error).message}${field}`;
    } finally {
      submit.disabled = false;
    }
  };
  form.addEventListener('submit', (ev) => void create(ev));
}

/** `POST /demo/sessions`: the server creates the clock and mints its tokens. */
async function createDemoSession(body: CreateSessionRequest): Promise<DemoCreated> {
  let r: Response;
  try {
    r = await fetch('/demo/sessions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (e) {
    throw new Error(`network error: ${(e as Error).message}`, { cause: e });
  }
  const out = (await r.json().catch(() => ({}))) as { data?: DemoCreated; error?: { message?: string } };
  if (!r.ok) {
    const wait = r.headers.get('retry-after');
    throw new Error(`${out.error?.message ?? `HTTP ${r.status}`}${wait ? ` (retry in ${wait} s)` : ''}`);
  }
  if (!out.data) throw new Error('the server sent no clock');
  return out.data;
}

function showShare(input: string, button: string, link: string): void {
  const field = $<HTMLInputElement>(input);
  field.value = link;
  const copy = async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      $(button).textContent = 'Copied';
    } catch {
      document.execCommand?.('copy');
    }
  };
  $(button).addEventListener('click', () => void copy());
}

function showGame(sessionId: string, tokens: PageTokens | null): void {
  $('game').hidden = false;
  const base = `${location.origin}/?session=${sessionId}`;
  // With auth on, what this page may do comes from its token (decoded only
  // to pick the controls; the server checks every press).
  const claims = tokens ? decodeTokenClaims(tokens.own) : null;
  const role = claims?.role ?? null;
  const seat = role === 'participant' ? (claims?.sub ?? null) : null;
  probe.role = role;
  probe.seat = seat;
  const canControl = !tokens || tokens.control !== undefined;
  const mayPress = (pid: string) => !tokens || seat === pid;
  if (!tokens) {
    showShare('share-link', 'copy', base);
  } else if (tokens.opponent && tokens.viewer) {
    const other = decodeTokenClaims(tokens.opponent)?.sub ?? 'opponent';
    $('share-label').textContent = `${NAMES[other as Pid] ?? other}'s link`;
    showShare('share-link', 'copy', `${base}${fragment({ own: tokens.opponent })}`);
    $('spectator-row').hidden = false;
    showShare('spectator-link', 'copy-spectator', `${base}${fragment({ own: tokens.viewer })}`);
  } else {
    $('share').hidden = true;
  }
  if (tokens) {
    $('seat').hidden = false;
    $('seat').textContent = seat ? `you are ${NAMES[seat as Pid] ?? seat}` : 'spectator';
  }

  const own = tokens ? new SyncKairosClient({ baseUrl: location.origin, token: tokens.own }) : client;
  const control = tokens?.control ? new SyncKairosClient({ baseUrl: location.origin, token: tokens.control }) : own;
  const sub = new SessionSubscription(sessionId, { client: own });
  const flagged = new Set<string>();
  let shownActive: string | null | undefined;
  let shownVersion = 0;
  const status = $('status');
  const actionError = $('action-error');

  const describe = (s: SyncState | null): string => {
    if (!s) return 'Waiting for the session…';
    const active = s.active_participant_id as Pid | null;
    const flaggedNames = [...flagged].map((p) => NAMES[p as Pid] ?? p);
    switch (s.status) {
      case 'pending':
        return 'Ready. Press Start; White moves first.';
      case 'running':
        if (!active) return 'Running.';
        return mayPress(active) ? `${NAMES[active] ?? active} to move. Space ends the turn.` : `${NAMES[active] ?? active} to move.`;
      case 'paused':
        return `Paused${active ? ` on ${NAMES[active] ?? active}'s turn` : ''}.`;
      case 'expired':
        return flaggedNames.length ? `${flaggedNames.join(' and ')}: flag fell. Game over.` : 'Time is up.';
      case 'completed':
        return 'Game completed.';
      case 'cancelled':
        return 'Game cancelled.';
    }
  };
  const setStatus = (text: string) => {
    if (status.textContent !== text) status.textContent = text;
  };

  const act = async (what: string, fn: () => Promise<unknown>) => {
    actionError.textContent = '';
    try {
      await fn();
    } catch (e) {
      // CONFLICT: the other screen pressed first; that press won and its update shows it.
      // NOT_YOUR_TURN: likewise, the turn passed before this press arrived.
      if (isSyncKairosError(e, 'CONFLICT') || isSyncKairosError(e, 'NOT_YOUR_TURN')) return;
      actionError.textContent = `${what} failed: ${(e as Error).message}`;
    }
  };
  const doSwitch = (pid?: string | null) => {
    const s = sub.state;
    if (!s || s.status !== 'running') return;
    const current = pid ?? s.active_participant_id;
    if (!current || current !== s.active_participant_id || !mayPress(current)) return;
    probe.pressedAt = epochNow();
    void act('Switch', () => own.switch(sessionId, { current_participant_id: current }));
  };

  $('start').addEventListener('click', () => void act('Start', () => control.start(sessionId)));
  $('pause').addEventListener('click', () => void act('Pause', () => control.pause(sessionId)));
  $('resume').addEventListener('click', () => void act('Resume', () => control.resume(sessionId)));
  $('switch').addEventListener('click', () => doSwitch());
  for (const pid of PLAYERS) {
    // Like a real chess clock: you press your own clock to end your turn.
    $(`clock-${pid}`).addEventListener('click', () => doSwitch(pid));
  }
  const isTyping = (t: EventTarget | null) =>
    t instanceof HTMLElement && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
  document.addEventListener('keydown', (ev) => {
    if (ev.code !== 'Space' || isTyping(ev.target) || ev.repeat) {
      if (ev.code === 'Space' && ev.repeat && !isTyping(ev.target)) ev.preventDefault();
      return;
    }
    ev.preventDefault();
    doSwitch();
  });
  // Space on a focused button would also "click" it on keyup; the keydown above already acted.
  document.addEventListener('keyup', (ev) => {
    if (ev.code === 'Space' && !isTyping(ev.target)) ev.preventDefault();
  });

  sub.on('expired', (e) => {
    // Shown the moment the server applies the timeout; the STATE_UPDATE follows.
    if (e.participant_id) flagged.add(e.participant_id);
    else if (sub.state?.active_participant_id) flagged.add(sub.state.active_participant_id);
  });
  sub.on('state', (s) => {
    for (const p of s.participants) if (p.has_expired) flagged.add(p.participant_id);
  });
  sub.on('error', (e) => {
    if (e.code === 'SESSION_NOT_FOUND' && !sub.state) setStatus('No such session (it may have ended or the server restarted). Start a new clock.');
    if (e.code === 'UNAUTHORIZED') actionError.textContent = 'This link has expired. Start a new clock.';
  });
  sub.on('clock', (est) => {
    probe.offsetMs = est.offsetMs;
    probe.uncertaintyMs = est.uncertaintyMs;
    $('offset').textContent = `server clock offset ${est.offsetMs >= 0 ? '+' : ''}${est.offsetMs.toFixed(1)} ms ± ${est.uncertaintyMs.toFixed(1)} ms`;
  });
  const conn = $('conn');
  sub.on('status', (st) => {
    conn.textContent = st === 'open' ? 'live' : st;
  });

  const texts = new Map<string, string>();
  const looks = new Map<string, string>();
  const frame = (ts: number) => {
    const s = sub.state;
    const at = performance.timeOrigin + ts;
    if (s) {
      const serverNow = sub.clock.serverNow(at);
      const remaining: Record<string, number> = {};
      for (const pid of PLAYERS) {
        const isFlagged = flagged.has(pid);
        const ms = isFlagged ? 0 : participantRemainingMs(s, pid, serverNow) ?? 0;
        remaining[pid] = ms;
        const text = formatClock(ms);
        if (texts.get(pid) !== text) {
          texts.set(pid, text);
          $(`time-${pid}`).textContent = text;
        }
        const active = s.status === 'running' && s.active_participant_id === pid && !isFlagged;
        const look = `${active}|${isFlagged}|${text}`;
        if (looks.get(pid) !== look) {
          // Touch the DOM only when something visible changed, not every frame.
          looks.set(pid, look);
          const face = $<HTMLButtonElement>(`clock-${pid}`);
          face.classList.toggle('active', active);
          face.classList.toggle('flagged', isFlagged);
          face.setAttribute('aria-pressed', String(active));
          // With auth on a face is a button only for its own seat, on its turn.
          face.disabled = !!tokens && !(active && mayPress(pid));
          face.setAttribute('aria-label', `${NAMES[pid]}: ${text}${isFlagged ? ', flag fell' : active ? ', to move' : ''}`);
          $(`flag-${pid}`).hidden = !isFlagged;
        }
        if (isFlagged && probe.flagShownAt === null) probe.flagShownAt = at;
      }
      const activeNow = s.status === 'running' ? (s.active_participant_id ?? null) : null;
      if (activeNow !== shownActive || s.version !== shownVersion) {
        shownActive = activeNow;
        shownVersion = s.version;
        probe.activeShownAt.push({ pid: activeNow, at, version: s.version });
        if (probe.activeShownAt.length > 100) probe.activeShownAt.shift();
      }
      probe.frame = { at, remaining, active: activeNow, version: s.version, status: s.status, deadline: s.deadline_ms ?? null };
      const terminal = s.status === 'expired' || s.status === 'completed' || s.status === 'cancelled';
      const myTurn = s.status === 'running' && !!activeNow && mayPress(activeNow);
      $('start').hidden = !canControl || s.status !== 'pending';
      $('switch').hidden = s.status !== 'running' || (!!tokens && !seat);
      $<HTMLButtonElement>('switch').disabled = !!tokens && !myTurn;
      $('pause').hidden = !canControl || s.status !== 'running';
      $('resume').hidden = !canControl || s.status !== 'paused';
      $('new-clock').classList.toggle('primary', terminal);
      setStatus(describe(s));
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

const params = new URLSearchParams(location.search);
const session = params.get('session');
if (session && /^[0-9a-fA-F-]{36}$/.test(session)) showGame(session, pageTokens(location.hash));
else void demoConfig().then(showSetup);
