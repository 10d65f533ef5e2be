// The SDK's wire types are generated from the server's OpenAPI document;
// these compile-time checks pin what the contract promises about them, so a
// regenerated document that changes it fails `npm run typecheck` here, with
// the field named, rather than in some application.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  CreateSessionRequest,
  EventsPage,
  ServerTime,
  SwitchRequest,
  SwitchResult,
  SyncParticipant,
  SyncState,
  TimeoutAction,
} from '../../src/index.js';

/** `true` only when A and B are the same type. */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Whether key K of T is optional. */
type IsOptional<T, K extends keyof T> = object extends Pick<T, K> ? true : false;

// API.md: max_time_ms is omitted when unset, never null.
const maxTime: Equals<SyncState['max_time_ms'], number | undefined> = true;
const maxTimeOptional: IsOptional<SyncState, 'max_time_ms'> = true;
// Extensions a plain 2.0 server does not send are optional.
const serverTime: IsOptional<SyncState, 'server_time_ms'> = true;
const deadline: Equals<SyncState['deadline_ms'], number | null | undefined> = true;
const switchVersion: IsOptional<SwitchResult, 'version'> = true;
const buildVersion: IsOptional<ServerTime, 'build_version'> = true;
// The contract's enums, as literal unions.
const mode: Equals<SyncState['sync_mode'], 'per_participant' | 'per_cycle' | 'per_group' | 'global' | 'count_up'> = true;
const status: Equals<SyncState['status'], 'pending' | 'running' | 'paused' | 'expired' | 'completed' | 'cancelled'> = true;
// Participants and the rest carry the fields clients compute with.
const remaining: Equals<SyncParticipant['time_remaining_ms'], number> = true;
const version: Equals<SyncState['version'], number> = true;
const switchParticipants: Equals<SwitchResult['participants'], SyncParticipant[]> = true;
const cursor: Equals<NonNullable<EventsPage['next_cursor']>, string> = true;

describe('wire types', () => {
  it('pin the contract at compile time (this file typechecks)', () => {
    assert.ok([maxTime, maxTimeOptional, serverTime, deadline, switchVersion, buildVersion, mode, status, remaining, version, switchParticipants, cursor].every(Boolean));
  });

  it('accept the requests API.md documents', () => {
    // action_on_timeout carries client extras; every switch field is optional.
    const action: TimeoutAction = { type: 'auto_action', action: 'random_move' };
    const create: CreateSessionRequest = {
      session_id: '00000000-0000-4000-8000-000000000000',
      sync_mode: 'per_participant',
      participants: [{ participant_id: 'white', total_time_ms: 60_000 }],
      total_time_ms: 60_000,
      action_on_timeout: action,
      metadata: { any: ['json', 1] },
    };
    const guard: SwitchRequest = { current_participant_id: 'white', expected_version: 3 };
    const empty: SwitchRequest = {};
    assert.equal(create.action_on_timeout?.type, 'auto_action');
    assert.deepEqual(Object.keys(guard).sort(), ['current_participant_id', 'expected_version']);
    assert.deepEqual(empty, {});
  });
});
