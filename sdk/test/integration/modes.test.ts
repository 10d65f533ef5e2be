// The time helpers against the server's own rendering, in every mode: at the
// instant a state was rendered (`server_time_ms`) the helpers must reproduce
// each participant's `time_remaining_ms`, and later instants must move only
// the clocks the server says are running.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  SyncKairosClient,
  newSessionId,
  participantRemainingMs,
  type CreateSessionRequest,
  type SyncMode,
  type SyncState,
} from '../../src/index.js';
import { startServer, type RunningServer } from '../support/server.js';

function body(mode: SyncMode): CreateSessionRequest {
  const ps = ['a1', 'b1', 'a2', 'b2'].map((id, i) => ({
    participant_id: id,
    participant_index: i,
    total_time_ms: 30_000 + i * 1_000,
    ...(mode === 'per_group' ? { group_id: id[0] } : {}),
  }));
  return {
    session_id: newSessionId(),
    sync_mode: mode,
    participants: ps,
    total_time_ms: 40_000,
    ...(mode === 'per_cycle' ? { time_per_cycle_ms: 20_000 } : {}),
    ...(mode === 'count_up' ? { max_time_ms: 50_000 } : {}),
    increment_ms: mode === 'per_participant' ? 1_000 : 0,
  };
}

function check(s: SyncState, label: string): void {
  for (const p of s.participants) {
    assert.equal(
      participantRemainingMs(s, p.participant_id, s.server_time_ms!),
      p.time_remaining_ms,
      `${label}: ${s.sync_mode} ${s.status} ${p.participant_id}`,
    );
  }
}

describe('time helpers agree with the server in every mode', () => {
  let server: RunningServer;
  let api: SyncKairosClient;
  before(async () => {
    server = await startServer();
    api = new SyncKairosClient({ baseUrl: server.url });
  });
  after(async () => {
    await server?.stop();
  });

  for (const mode of ['per_participant', 'per_cycle', 'per_group', 'global', 'count_up'] as const) {
    it(mode, async () => {
      const b = body(mode);
      const id = b.session_id;
      check(await api.createSession(b), 'created');
      check(await api.start(id), 'started');
      await new Promise((r) => setTimeout(r, 30)); // let the running clock move between renders
      const first = await api.getSession(id);
      check(first, 'running');
      await api.switch(id);
      const second = await api.getSession(id);
      check(second, 'after switch');
      // A later render of the same version: the helpers' prediction for that instant is exact.
      await new Promise((r) => setTimeout(r, 30));
      const later = await api.getSession(id);
      assert.equal(later.version, second.version);
      for (const p of later.participants) {
        assert.equal(participantRemainingMs(second, p.participant_id, later.server_time_ms!), p.time_remaining_ms, `predicted ${p.participant_id}`);
      }
      const moved = later.participants.filter((p, i) => p.time_remaining_ms !== first.participants[i]!.time_remaining_ms).length;
      assert.ok(moved > 0, 'some clock ran between the renders (the check is not vacuous)');
      check(await api.pause(id), 'paused');
      check(await api.getSession(id), 'paused, re-read');
    });
  }
});
