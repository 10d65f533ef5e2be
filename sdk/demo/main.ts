// The demo page: a two-player chess clock on SyncKairos. Everything shown is
// computed each frame from the newest server state and the clock estimate;
// buttons only send commands, and the screen changes when the server's
// update arrives, so every tab shows the same thing.
import {
  SessionSubscription,
  SyncKairosClient,
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
}

const probe: DemoProbe = { frame: null, activeShownAt: [], pressedAt: null, flagShownAt: null, offsetMs: null, uncertaintyMs: null };
(globalThis as { synckairosDemo?: DemoProbe }).synckairosDemo = probe;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const epochNow = (): number => performance.timeOrigin + performance.now();

const client = new SyncKairosClient({ baseUrl: location.origin });

function showSetup(): void {
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
  // The handlers catch their own errors; `void` marks the promise as handled.
  const create = async (ev: SubmitEvent) => {
    ev.preventDefault();
    const err = $('setup-error');
    err.textContent = '';
    const syncMode = mode.value as SyncMode;
    const bankMs = Math.round(Number($<HTMLInputElement>('bank').value) * 60_000);
    const incMs = Math.round(Number($<HTMLInputElement>('increment').value) * 1000);
    const perMoveMs = Math.round(Number($<HTMLInputElement>('per-move').value) * 1000);
    const id = newSessionId();
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
    const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
    submit.disabled = true;
    try {
      await client.createSession(body);
      history.pushState(null, '', `/?session=${id}`);
      $('setup').hidden = true;
      showGame(id);
    } catch (e) {
      const field = isSyncKairosError(e) && e.details ? ` (${Object.keys(e.details).join(', ')})` : '';
      err.textContent = `Could not create the clock: ${(e as Error).message}${field}`;
    } finally {
      submit.disabled = false;
    }
  };
  form.addEventListener('submit', (ev) => void create(ev));
}

function showGame(sessionId: string): void {
  $('game').hidden = false;
  const share = $<HTMLInputElement>('share-link');
  share.value = `${location.origin}/?session=${sessionId}`;
  const copy = async () => {
    share.select();
    try {
      await navigator.clipboard.writeText(share.value);
      $('copy').textContent = 'Copied';
    } catch {
      document.execCommand?.('copy');
    }
  };
  $('copy').addEventListener('click', () => void copy());

  const sub = new SessionSubscription(sessionId, { client });
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
        return active ? `${NAMES[active] ?? active} to move. Space ends the turn.` : 'Running.';
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
      if (isSyncKairosError(e, 'CONFLICT')) return;
      actionError.textContent = `${what} failed: ${(e as Error).message}`;
    }
  };
  const doSwitch = (pid?: string | null) => {
    const s = sub.state;
    if (!s || s.status !== 'running') return;
    const current = pid ?? s.active_participant_id;
    if (!current || current !== s.active_participant_id) return;
    probe.pressedAt = epochNow();
    void act('Switch', () => client.switch(sessionId, { current_participant_id: current }));
  };

  $('start').addEventListener('click', () => void act('Start', () => client.start(sessionId)));
  $('pause').addEventListener('click', () => void act('Pause', () => client.pause(sessionId)));
  $('resume').addEventListener('click', () => void act('Resume', () => client.resume(sessionId)));
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
          const face = $(`clock-${pid}`);
          face.classList.toggle('active', active);
          face.classList.toggle('flagged', isFlagged);
          face.setAttribute('aria-pressed', String(active));
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
      $('start').hidden = s.status !== 'pending';
      $('switch').hidden = s.status !== 'running';
      $('pause').hidden = s.status !== 'running';
      $('resume').hidden = s.status !== 'paused';
      $('new-clock').classList.toggle('primary', terminal);
      setStatus(describe(s));
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

const params = new URLSearchParams(location.search);
const session = params.get('session');
if (session && /^[0-9a-fA-F-]{36}$/.test(session)) showGame(session);
else showSetup();
