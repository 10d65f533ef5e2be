/**
 * "Calculate, don't count": what a clock shows is a function of the last
 * state and the server time *now* (from {@link ClockEstimator}); nothing here
 * decrements a counter, so a frozen tab, a missed frame or a late update
 * never makes a clock drift.
 */
import type { SyncParticipant, SyncState } from './types.js';

/** Parses the contract's ISO-8601 timestamps (`...T..:..:..mmmZ`) to epoch ms; null for null. */
export function parseTimestamp(iso: string | null | undefined): number | null {
  if (iso == null) return null;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : null;
}

/** Whether this participant's clock is the one that runs (their turn, their group's turn, or a shared clock). */
export function isClockRunning(state: SyncState, p: SyncParticipant): boolean {
  if (state.status !== 'running') return false;
  switch (state.sync_mode) {
    case 'global':
    case 'count_up':
      return true;
    case 'per_group':
      return p.group_id !== undefined && p.group_id === state.active_group_id;
    default:
      return p.is_active || p.participant_id === state.active_participant_id;
  }
}

/** How long the current cycle has run at `serverNow` (0 unless running). */
export function cycleElapsedMs(state: SyncState, serverNow: number): number {
  if (state.status !== 'running') return 0;
  const start = parseTimestamp(state.cycle_started_at);
  return start === null ? 0 : Math.max(0, serverNow - start);
}

/**
 * Remaining time of a running clock at `serverNow`. Prefers `deadline_ms`;
 * without that extension it uses `cycle_started_at + total_time_ms` (the bank
 * at the start of the cycle), as API.md allows. When the server says nothing
 * can expire (`deadline_ms: null`) the rendered value stands.
 */
function runningRemaining(state: SyncState, p: SyncParticipant, serverNow: number): number {
  if ('deadline_ms' in state && state.deadline_ms !== undefined) {
    if (state.deadline_ms === null) return p.time_remaining_ms;
    return Math.max(0, state.deadline_ms - serverNow);
  }
  const start = parseTimestamp(state.cycle_started_at);
  if (start !== null) return Math.max(0, p.total_time_ms - (serverNow - start));
  if (state.server_time_ms !== undefined) return Math.max(0, p.time_remaining_ms - (serverNow - state.server_time_ms));
  return p.time_remaining_ms;
}

/** Finds a participant by id; undefined when absent. */
export function findParticipant(state: SyncState, participantId: string): SyncParticipant | undefined {
  return state.participants.find((p) => p.participant_id === participantId);
}

/** A participant's remaining time at `serverNow` (ms, never below 0); undefined for an unknown id. */
export function participantRemainingMs(state: SyncState, participantId: string, serverNow: number): number | undefined {
  const p = findParticipant(state, participantId);
  if (!p) return undefined;
  if (p.has_expired) return 0;
  return isClockRunning(state, p) ? runningRemaining(state, p, serverNow) : p.time_remaining_ms;
}

/** A participant's used time at `serverNow`: completed cycles plus the running one. */
export function participantElapsedMs(state: SyncState, participantId: string, serverNow: number): number | undefined {
  const p = findParticipant(state, participantId);
  if (!p) return undefined;
  return p.time_used_ms + (isClockRunning(state, p) && p.is_active ? cycleElapsedMs(state, serverNow) : 0);
}

/** A group's remaining time (its members share one bank); undefined when no member has that group. */
export function groupRemainingMs(state: SyncState, groupId: string, serverNow: number): number | undefined {
  const member = state.participants.find((p) => p.group_id === groupId && !p.has_expired) ??
    state.participants.find((p) => p.group_id === groupId);
  return member ? participantRemainingMs(state, member.participant_id, serverNow) : undefined;
}

/** The active participant's remaining time, or undefined when nobody is active. */
export function activeRemainingMs(state: SyncState, serverNow: number): number | undefined {
  return state.active_participant_id == null ? undefined : participantRemainingMs(state, state.active_participant_id, serverNow);
}

/**
 * Time until the session's running clock hits zero, from `deadline_ms`;
 * null when nothing can expire (not running, or no deadline).
 */
export function sessionRemainingMs(state: SyncState, serverNow: number): number | null {
  if (state.status !== 'running' || state.deadline_ms == null) return null;
  return Math.max(0, state.deadline_ms - serverNow);
}

/**
 * Formats ms for a clock face: `h:mm:ss`, `m:ss`, and `s.t` tenths under 20 s.
 * Rounds up, so a clock shows 0 only when the time is really gone.
 */
export function formatClock(ms: number): string {
  const v = Math.max(0, ms);
  if (v < 20_000) {
    const tenths = Math.ceil(v / 100);
    return `0:${String(Math.floor(tenths / 10)).padStart(2, '0')}.${tenths % 10}`;
  }
  const total = Math.ceil(v / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
