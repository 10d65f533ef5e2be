/**
 * Wire types of the SyncKairos v1 contract (shared/API.md), so that every
 * field a client reads is checked by the compiler instead of guessed.
 */

/** How the session's clocks run; see API.md "Modes and timeouts". */
export type SyncMode = 'per_participant' | 'per_cycle' | 'per_group' | 'global' | 'count_up';

/** Lifecycle of a session; `expired`, `completed` and `cancelled` are terminal. */
export type SessionStatus = 'pending' | 'running' | 'paused' | 'expired' | 'completed' | 'cancelled';

/** What the server does when a running clock reaches zero. */
export interface TimeoutAction {
  /** The action kind; extra fields are echoed back unchanged. */
  type: 'end_session' | 'skip_cycle' | 'auto_action';
  [extra: string]: unknown;
}

/** One participant as the server renders it at `server_time_ms`. */
export interface SyncParticipant {
  /** Client-chosen id, 1..=128 chars of `[A-Za-z0-9._:@-]`. */
  participant_id: string;
  /** Rotation position. */
  participant_index: number;
  /** Group (required in per_group). */
  group_id?: string;
  /** The bank as of the start of the current cycle. */
  total_time_ms: number;
  /** Time consumed in completed cycles. */
  time_used_ms: number;
  /** Live remaining bank at `server_time_ms`, never below 0. */
  time_remaining_ms: number;
  /** Turns completed. */
  cycle_count: number;
  /** Whether it is this participant's turn. */
  is_active: boolean;
  /** Out of time. */
  has_expired: boolean;
}

/** The full session state (`SyncState`), as sent by REST and WebSocket. */
export interface SyncState {
  session_id: string;
  sync_mode: SyncMode;
  status: SessionStatus;
  /** 1 on create, +1 on every committed change; only ever grows. */
  version: number;
  participants: SyncParticipant[];
  active_participant_id: string | null;
  active_group_id: string | null;
  total_time_ms: number;
  time_per_cycle_ms: number | null;
  increment_ms: number;
  max_time_ms: number | null;
  action_on_timeout: TimeoutAction;
  auto_advance: boolean;
  /** ISO-8601 UTC, null unless running. */
  cycle_started_at: string | null;
  session_started_at: string | null;
  session_completed_at: string | null;
  created_at: string;
  updated_at: string;
  metadata: Record<string, unknown>;
  /** (ext) The server clock when this state was rendered, epoch ms. */
  server_time_ms?: number;
  /** (ext) Server time at which the running clock hits zero; null when nothing can expire. */
  deadline_ms?: number | null;
}

/** Body of `POST /v1/sessions/{id}/switch`. */
export interface SwitchResult {
  session_id: string;
  active_participant_id: string | null;
  cycle_started_at: string | null;
  participants: SyncParticipant[];
  status: SessionStatus;
  expired_participant_id?: string | null;
  version?: number;
  server_time_ms?: number;
  deadline_ms?: number | null;
}

/** A participant in a create request. */
export interface CreateParticipant {
  participant_id: string;
  participant_index?: number;
  group_id?: string;
  /** Bank, 1000..=86400000 ms. */
  total_time_ms: number;
}

/** Body of `POST /v1/sessions`. */
export interface CreateSessionRequest {
  /** A UUID; use {@link newSessionId} when you have none. */
  session_id: string;
  sync_mode: SyncMode;
  participants: CreateParticipant[];
  total_time_ms: number;
  time_per_cycle_ms?: number;
  increment_ms?: number;
  max_time_ms?: number;
  action_on_timeout?: TimeoutAction;
  auto_advance?: boolean;
  metadata?: Record<string, unknown>;
}

/** Body of a switch; every field optional. */
export interface SwitchRequest {
  /** Jump to this participant instead of the next in rotation. */
  next_participant_id?: string;
  /** (ext) Refuse with 409 CONFLICT unless the live version is this one. */
  expected_version?: number;
  /** (ext) Refuse with 409 CONFLICT unless this participant is active (double-press guard). */
  current_participant_id?: string;
}

/** `GET /v1/time`. */
export interface ServerTime {
  timestamp_ms: number;
  server_version: string;
  drift_tolerance_ms: number;
  build_version?: string;
}

/** `GET /v1/sessions/{id}/events`: one page of the audit trail. */
export interface EventsPage {
  data: Array<Record<string, unknown>>;
  next_cursor: string | null;
}

/** Messages the server sends over the WebSocket. */
export type ServerMessage =
  | { type: 'CONNECTED'; sessionId: string; timestamp: number }
  | { type: 'STATE_UPDATE'; sessionId: string; timestamp: number; state: SyncState }
  | { type: 'STATE_SYNC'; sessionId: string; timestamp: number; state: SyncState }
  | {
      type: 'TIME_EXPIRED';
      sessionId: string;
      timestamp: number;
      participant_id: string | null;
      action: TimeoutAction;
    }
  | { type: 'SESSION_DELETED'; sessionId: string; timestamp: number }
  | { type: 'PONG'; timestamp: number; client_time?: number }
  | { type: 'ERROR'; code: string; message: string };
