//! Every timeout action, applied by the server on its own: the test makes
//! no call between start and the expiry, awaits the STATE_UPDATE and
//! TIME_EXPIRED it pushes, then checks the stored state with GET.
//! Banks are 1000–1500 ms (the minimum allowed) to keep the suite fast.

use futures::future::join_all;
use serde_json::{Value, json};
use std::time::Duration;
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    end_session_expires_the_participant_and_the_session,
    skip_cycle_passes_the_turn_and_skips_expired,
    skip_cycle_expires_the_session_when_nobody_is_left,
    skip_cycle_in_per_cycle_just_ends_the_turn,
    auto_action_with_advance_passes_the_turn,
    auto_action_with_advance_and_increment_keeps_the_participant,
    auto_action_without_advance_holds_the_clock_at_zero,
    global_timeout_ends_the_session,
    count_up_expires_at_max_time,
    per_group_end_session_expires_the_whole_group,
    per_group_skip_cycle_passes_to_the_next_group,
    paused_clock_does_not_expire,
    switch_racing_the_deadline_applies_the_timeout_once,
    pause_racing_the_deadline_is_refused_or_stops_the_clock,
    auto_action_with_advance_expires_the_session_when_nobody_is_left,
    per_cycle_end_session_expires_the_participant,
    timeout_is_announced_once_to_every_client,
    completed_session_does_not_time_out,
    stale_timer_does_not_touch_a_deleted_and_recreated_session,
}

/// How long to wait for a server-side timeout beyond its deadline (a loaded
/// 2-core machine; the latency target itself is measured by the benchmark).
const EXPIRY_WAIT: Duration = Duration::from_secs(6);

/// Creates and starts `body` with a WebSocket client watching; returns the
/// client (positioned after the start's STATE_UPDATE) and the started state.
async fn start_watched(srv: &TestServer, body: &Value) -> (WsClient, Value) {
    let id = id_of(body);
    srv.api().create(body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let started = srv.api().act(&id, "start").await;
    let up = ws.expect_type("STATE_UPDATE").await;
    assert_eq!(up["state"]["version"], started["version"]);
    (ws, started)
}

/// Awaits the server's timeout broadcast: a STATE_UPDATE with the new state
/// immediately followed by TIME_EXPIRED. Returns (state, time_expired).
async fn await_timeout(ws: &mut WsClient) -> (Value, Value) {
    let up = ws.next_json(EXPIRY_WAIT).await;
    assert_eq!(
        up["type"], "STATE_UPDATE",
        "a timeout first broadcasts the new state: {up}"
    );
    let state = up["state"].clone();
    check_state(&state);
    let te = ws.next_json(WS_WAIT).await;
    assert_eq!(te["type"], "TIME_EXPIRED", "then TIME_EXPIRED: {te}");
    assert_eq!(te["sessionId"], state["session_id"]);
    (state, te)
}

fn ts(v: &Value, key: &str) -> i64 {
    iso_ms(&v[key])
}

async fn end_session_expires_the_participant_and_the_session(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 1000);
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["participant_id"], "a");
    assert_eq!(te["action"], json!({"type": "end_session"}));
    assert_eq!(st["status"], "expired");
    assert_eq!(st["version"], 3, "the timeout is its own commit");
    let a = participant(&st, "a");
    assert_eq!(a["has_expired"], true);
    assert_eq!(a["time_remaining_ms"], 0);
    assert_eq!(a["time_used_ms"], 1000, "charged exactly the bank");
    assert_eq!(participant(&st, "b")["has_expired"], false);
    assert_eq!(
        ts(&st, "session_completed_at"),
        deadline,
        "completed at the deadline"
    );

    // Exactly once: nothing else was broadcast before the reply to a PING.
    ws.ping(1).await;
    // With no other instance on the store, this server fired it, and counted it.
    if b.name().starts_with("memory") {
        // The firing task records its metrics after the commit it broadcast,
        // so a client that saw TIME_EXPIRED may read /metrics a moment
        // before they are counted: wait until both show the firing, then
        // check it was counted exactly once.
        wait_until(Duration::from_secs(5), "the timeout's metrics", || async {
            let m = srv.api().get("/metrics").await.text;
            metric_sum(&m, "synckairos_timeouts_fired_total") >= 1.0
                && metric_sum(&m, "synckairos_timeout_lateness_seconds_count") >= 1.0
        })
        .await;
        let m = srv.api().get("/metrics").await.text;
        let fired = metric_samples(&m, "synckairos_timeouts_fired_total");
        assert_eq!(
            metric_sum(&m, "synckairos_timeouts_fired_total"),
            1.0,
            "one timeout fired: {fired:?}"
        );
        assert!(
            fired
                .iter()
                .any(|(l, v)| l.contains("end_session") && *v == 1.0),
            "counted under its action: {fired:?}"
        );
        assert_eq!(
            metric_sum(&m, "synckairos_timeout_lateness_seconds_count"),
            1.0
        );
    }
    let g = srv.api().state(&id).await;
    assert_eq!(g["status"], "expired");
    assert_eq!(g["version"], 3);
    assert_eq!(g["participants"], st["participants"]);
    // Expired is terminal.
    let r = srv
        .api()
        .post_empty(&format!("/v1/sessions/{id}/switch"))
        .await;
    let err = r.error(400, "INVALID_STATE_TRANSITION");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{r}"
    );
}

async fn skip_cycle_passes_the_turn_and_skips_expired(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_participant", &["a", "b", "c"], 60_000);
    body["participants"][0]["total_time_ms"] = json!(1000);
    body["action_on_timeout"] = json!({"type": "skip_cycle"});
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["participant_id"], "a");
    assert_eq!(te["action"], json!({"type": "skip_cycle"}));
    assert_eq!(st["status"], "running");
    assert_eq!(st["active_participant_id"], "b");
    assert_eq!(
        ts(&st, "cycle_started_at"),
        deadline,
        "the next turn starts at the deadline"
    );
    assert_eq!(int(&st, "deadline_ms"), deadline + 60_000);
    let a = participant(&st, "a");
    assert_eq!(
        (a["has_expired"].clone(), a["time_remaining_ms"].clone()),
        (json!(true), json!(0))
    );
    assert_eq!(a["time_used_ms"], 1000);

    let r = srv.api().switch(&id, &json!({})).await;
    assert_eq!(r["active_participant_id"], "c");
    let r = srv.api().switch(&id, &json!({})).await;
    assert_eq!(
        r["active_participant_id"], "b",
        "the expired participant is skipped"
    );
    srv.api()
        .post(
            &format!("/v1/sessions/{id}/switch"),
            &json!({"next_participant_id": "a"}),
        )
        .await
        .validation("next_participant_id");
}

async fn skip_cycle_expires_the_session_when_nobody_is_left(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_participant", &["a", "b"], 1000);
    body["action_on_timeout"] = json!({"type": "skip_cycle"});
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let d1 = int(&s0, "deadline_ms");
    let (st1, te1) = await_timeout(&mut ws).await;
    assert_eq!(te1["participant_id"], "a");
    assert_eq!(st1["active_participant_id"], "b");
    assert_eq!(int(&st1, "deadline_ms"), d1 + 1000);
    let (st2, te2) = await_timeout(&mut ws).await;
    assert_eq!(te2["participant_id"], "b");
    assert_eq!(st2["status"], "expired");
    assert_eq!(st2["version"], 4);
    for p in ["a", "b"] {
        assert_eq!(participant(&st2, p)["has_expired"], true);
        assert_eq!(participant(&st2, p)["time_used_ms"], 1000);
    }
    assert_eq!(ts(&st2, "session_completed_at"), d1 + 1000);
    assert_eq!(srv.api().state(&id).await["status"], "expired");
}

async fn skip_cycle_in_per_cycle_just_ends_the_turn(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_cycle", &["a", "b"], 60_000);
    body["time_per_cycle_ms"] = json!(1000);
    body["action_on_timeout"] = json!({"type": "skip_cycle"});
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let d1 = int(&s0, "deadline_ms");
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["participant_id"], "a");
    assert_eq!(st["status"], "running");
    assert_eq!(st["active_participant_id"], "b");
    assert_eq!(
        participant(&st, "a")["has_expired"],
        false,
        "per_cycle: the turn just ends"
    );
    assert_eq!(participant(&st, "a")["time_used_ms"], 1000);
    assert_eq!(ts(&st, "cycle_started_at"), d1);
    assert_eq!(int(&st, "deadline_ms"), d1 + 1000, "a fresh cycle for b");
    let (st2, te2) = await_timeout(&mut ws).await;
    assert_eq!(te2["participant_id"], "b");
    assert_eq!(
        st2["active_participant_id"], "a",
        "a is not expired, so it plays again"
    );
    assert_eq!(int(&st2, "deadline_ms"), d1 + 2000);
    srv.api().act(&id, "complete").await;
}

async fn auto_action_with_advance_passes_the_turn(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_participant", &["a", "b"], 60_000);
    body["participants"][0]["total_time_ms"] = json!(1000);
    body["action_on_timeout"] = json!({"type": "auto_action", "action": "fold"});
    body["auto_advance"] = json!(true);
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["participant_id"], "a");
    assert_eq!(
        te["action"],
        json!({"type": "auto_action", "action": "fold"}),
        "the whole action object"
    );
    assert_eq!(st["status"], "running");
    assert_eq!(st["active_participant_id"], "b");
    assert_eq!(ts(&st, "cycle_started_at"), deadline);
    let a = participant(&st, "a");
    assert_eq!(
        a["has_expired"], true,
        "bank still 0 after the (zero) increment"
    );
    assert_eq!(a["cycle_count"], 1, "the turn ended as a switch would");
    assert_eq!(srv.api().state(&id).await["version"], 3);
}

async fn auto_action_with_advance_and_increment_keeps_the_participant(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_participant", &["a", "b"], 60_000);
    body["participants"][0]["total_time_ms"] = json!(1000);
    body["increment_ms"] = json!(1500);
    body["action_on_timeout"] = json!({"type": "auto_action"});
    body["auto_advance"] = json!(true);
    let id = id_of(&body);
    let (mut ws, _) = start_watched(&srv, &body).await;
    let (st, _) = await_timeout(&mut ws).await;
    assert_eq!(st["active_participant_id"], "b");
    let a = participant(&st, "a");
    assert_eq!(a["has_expired"], false, "the increment refilled the bank");
    assert_eq!(a["total_time_ms"], 1500, "0 + increment");
    let r = srv.api().switch(&id, &json!({})).await;
    assert_eq!(r["active_participant_id"], "a");
    assert_eq!(int(&r, "deadline_ms"), ts(&r, "cycle_started_at") + 1500);
}

async fn auto_action_without_advance_holds_the_clock_at_zero(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_participant", &["a", "b"], 60_000);
    body["participants"][0]["total_time_ms"] = json!(1000);
    body["action_on_timeout"] = json!({"type": "auto_action", "action": "random_move"});
    body["auto_advance"] = json!(false);
    let id = id_of(&body);
    let (mut ws, _) = start_watched(&srv, &body).await;
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["participant_id"], "a");
    assert_eq!(te["action"]["action"], "random_move");
    assert_eq!(
        st["status"], "running",
        "the session waits for the client's move"
    );
    assert_eq!(st["active_participant_id"], "a");
    assert_eq!(participant(&st, "a")["time_remaining_ms"], 0);
    assert_eq!(st["deadline_ms"], Value::Null, "nothing left to expire");
    let g = srv.api().state(&id).await;
    assert_eq!(
        (g["version"].clone(), g["status"].clone()),
        (json!(3), json!("running"))
    );
    assert_eq!(participant(&g, "a")["time_remaining_ms"], 0);
    // The client applies its move.
    let r = srv
        .api()
        .switch(&id, &json!({"current_participant_id": "a"}))
        .await;
    assert_eq!(r["active_participant_id"], "b");
    assert_eq!(int(&r, "deadline_ms"), ts(&r, "cycle_started_at") + 60_000);
    let up = ws.expect_type("STATE_UPDATE").await;
    assert_eq!(up["state"]["version"], 4);
}

async fn global_timeout_ends_the_session(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("global", &["a", "b"], 1500);
    body["action_on_timeout"] = json!({"type": "skip_cycle"});
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    // A switch in between does not move the session's deadline.
    let r = srv.api().switch(&id, &json!({})).await;
    assert_eq!(int(&r, "deadline_ms"), deadline);
    ws.expect_type("STATE_UPDATE").await;
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["action"], json!({"type": "skip_cycle"}));
    assert_eq!(
        st["status"], "expired",
        "global: any timeout ends the session"
    );
    assert_eq!(ts(&st, "session_completed_at"), deadline);
    assert_eq!(srv.api().state(&id).await["status"], "expired");
}

async fn count_up_expires_at_max_time(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("count_up", &["a"], 60_000);
    body["max_time_ms"] = json!(1000);
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    assert_eq!(deadline, ts(&s0, "session_started_at") + 1000);
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["action"]["type"], "end_session");
    assert_eq!(st["status"], "expired");
    assert_eq!(ts(&st, "session_completed_at"), deadline);
    assert_eq!(srv.api().state(&id).await["status"], "expired");
}

fn group_body(action: &str) -> Value {
    json!({
        "session_id": new_id(),
        "sync_mode": "per_group",
        "total_time_ms": 60000,
        "action_on_timeout": {"type": action},
        "participants": [
            {"participant_id": "a1", "group_id": "g1", "total_time_ms": 1000},
            {"participant_id": "b1", "group_id": "g2", "total_time_ms": 60000},
            {"participant_id": "a2", "group_id": "g1", "total_time_ms": 60000},
            {"participant_id": "b2", "group_id": "g2", "total_time_ms": 60000},
        ],
    })
}

async fn per_group_end_session_expires_the_whole_group(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = group_body("end_session");
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["participant_id"], "a1");
    assert_eq!(st["status"], "expired");
    for (m, expired) in [("a1", true), ("a2", true), ("b1", false), ("b2", false)] {
        assert_eq!(participant(&st, m)["has_expired"], expired, "{m}: {st}");
    }
    assert_eq!(ts(&st, "session_completed_at"), deadline);
}

async fn per_group_skip_cycle_passes_to_the_next_group(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = group_body("skip_cycle");
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    let (st, _) = await_timeout(&mut ws).await;
    assert_eq!(st["status"], "running");
    assert_eq!(st["active_participant_id"], "b1");
    assert_eq!(st["active_group_id"], "g2");
    assert_eq!(ts(&st, "cycle_started_at"), deadline);
    assert_eq!(
        participant(&st, "a2")["has_expired"],
        true,
        "the whole group is out"
    );
    let r = srv.api().switch(&id, &json!({})).await;
    assert_eq!(
        r["active_participant_id"], "b2",
        "g1 is skipped; next member of g2"
    );
}

async fn paused_clock_does_not_expire(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 1500);
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let p = srv.api().act(&id, "pause").await;
    ws.expect_type("STATE_UPDATE").await;
    let left = int(participant(&p, "a"), "time_remaining_ms");
    assert!(left > 0, "paused before the deadline: {p}");
    // Showing an absence: nothing arrives past the original deadline.
    let wait = int(&s0, "deadline_ms") - int(&p, "server_time_ms") + 300;
    ws.expect_silence(Duration::from_millis(wait.max(0) as u64))
        .await;
    let g = srv.api().state(&id).await;
    assert_eq!(g["status"], "paused");
    assert_eq!(participant(&g, "a")["time_remaining_ms"], json!(left));
    let r = srv.api().act(&id, "resume").await;
    assert_eq!(int(&r, "deadline_ms"), ts(&r, "cycle_started_at") + left);
}

/// Sleeps until the given epoch-ms instant of the (shared) machine clock:
/// here the moment itself is what the test aims at, not a stand-in for an
/// event.
async fn sleep_until_epoch_ms(at: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if at > now {
        tokio::time::sleep(Duration::from_millis((at - now) as u64)).await;
    }
}

async fn switch_racing_the_deadline_applies_the_timeout_once(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    // Switches aimed from 3 ms before to 4 ms after the deadline: whichever
    // wins the race, the outcome must be one of the documented ones.
    let mut runs = Vec::new();
    for k in 0..8i64 {
        let body = session_body("per_participant", &["a", "b"], 1000);
        let id = id_of(&body);
        let s0 = api.create_started(&body).await;
        let deadline = int(&s0, "deadline_ms");
        let path = format!("/v1/sessions/{id}/switch");
        runs.push(async move {
            sleep_until_epoch_ms(deadline + k - 3).await;
            let r = api.post(&path, &json!({})).await;
            (id, deadline, r)
        });
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for (id, deadline, r) in join_all(runs).await {
        let g = api.state(&id).await;
        let outcome = match r.status {
            200 => {
                let d = r.data(200);
                check_switch_result(d);
                if d["expired_participant_id"] == "a" {
                    // Late switch: the timeout was applied instead, at the deadline.
                    assert_eq!(d["status"], "expired", "{r}");
                    "switch consumed by the timeout"
                } else {
                    // Early switch: an ordinary turn change before the deadline.
                    assert_eq!(d["active_participant_id"], "b", "{r}");
                    let t = iso_ms(&d["cycle_started_at"]);
                    assert!(
                        t < deadline,
                        "a switch at or after the deadline must not charge past the bank: {r}"
                    );
                    assert_eq!(
                        int(participant(d, "a"), "time_used_ms"),
                        t - (deadline - 1000)
                    );
                    outcomes
                        .entry("switched before the deadline")
                        .and_modify(|n| *n += 1)
                        .or_insert(1);
                    continue;
                }
            }
            400 => {
                let err = r.error(400, "INVALID_STATE_TRANSITION");
                assert!(
                    err["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("expired"),
                    "{r}"
                );
                "timer fired first"
            }
            _ => panic!("unexpected answer to a switch racing the deadline: {r}"),
        };
        // Either way the timeout happened exactly once, at the deadline,
        // charging exactly the bank.
        assert_eq!(g["status"], "expired", "{g}");
        assert_eq!(g["version"], 3, "one timeout commit, nothing else: {g}");
        let a = participant(&g, "a");
        assert_eq!(
            (a["time_used_ms"].clone(), a["has_expired"].clone()),
            (json!(1000), json!(true)),
            "{g}"
        );
        assert_eq!(iso_ms(&g["session_completed_at"]), deadline, "{g}");
        outcomes.entry(outcome).and_modify(|n| *n += 1).or_insert(1);
    }
    eprintln!("deadline race outcomes: {outcomes:?}");
}

async fn pause_racing_the_deadline_is_refused_or_stops_the_clock(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut runs = Vec::new();
    for k in 0..8i64 {
        let body = session_body("per_participant", &["a", "b"], 1000);
        let id = id_of(&body);
        let s0 = api.create_started(&body).await;
        let deadline = int(&s0, "deadline_ms");
        let path = format!("/v1/sessions/{id}/pause");
        runs.push(async move {
            sleep_until_epoch_ms(deadline + k - 3).await;
            (id, deadline, api.post_empty(&path).await)
        });
    }
    for (id, deadline, r) in join_all(runs).await {
        let g = api.state(&id).await;
        if r.status == 200 {
            // Paused in time: the clock stopped with time left.
            let d = r.data(200);
            check_state(d);
            assert_eq!(d["status"], "paused");
            let left = int(participant(d, "a"), "time_remaining_ms");
            assert!(left > 0, "a pause that wins the race leaves time: {r}");
            assert_eq!(int(d, "server_time_ms") + left, deadline, "{r}");
            assert_eq!(g["status"], "paused");
        } else {
            // The deadline had passed: the timeout is committed first (its
            // own version) and the pause is refused naming the new status.
            let err = r.error(400, "INVALID_STATE_TRANSITION");
            assert!(
                err["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("expired"),
                "{r}"
            );
            assert_eq!(
                (g["status"].clone(), g["version"].clone()),
                (json!("expired"), json!(3)),
                "{g}"
            );
            assert_eq!(participant(&g, "a")["time_used_ms"], 1000);
            assert_eq!(iso_ms(&g["session_completed_at"]), deadline);
        }
    }
}

async fn auto_action_with_advance_expires_the_session_when_nobody_is_left(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_participant", &["a", "b"], 1000);
    body["action_on_timeout"] = json!({"type": "auto_action", "action": "pass"});
    body["auto_advance"] = json!(true);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let d1 = int(&s0, "deadline_ms");
    let (st1, te1) = await_timeout(&mut ws).await;
    assert_eq!(te1["participant_id"], "a");
    assert_eq!(st1["active_participant_id"], "b");
    assert_eq!(participant(&st1, "a")["has_expired"], true);
    assert_eq!(int(&st1, "deadline_ms"), d1 + 1000);
    let (st2, te2) = await_timeout(&mut ws).await;
    assert_eq!(te2["participant_id"], "b");
    assert_eq!(
        te2["action"],
        json!({"type": "auto_action", "action": "pass"})
    );
    assert_eq!(st2["status"], "expired", "nobody left with time: {st2}");
    assert_eq!(participant(&st2, "b")["has_expired"], true);
}

async fn per_cycle_end_session_expires_the_participant(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_cycle", &["a", "b"], 60_000);
    body["time_per_cycle_ms"] = json!(1000);
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let deadline = int(&s0, "deadline_ms");
    let (st, te) = await_timeout(&mut ws).await;
    assert_eq!(te["participant_id"], "a");
    assert_eq!(st["status"], "expired");
    assert_eq!(participant(&st, "a")["has_expired"], true);
    assert_eq!(participant(&st, "a")["time_used_ms"], 1000);
    assert_eq!(participant(&st, "b")["has_expired"], false);
    assert_eq!(ts(&st, "session_completed_at"), deadline);
    assert_eq!(srv.api().state(&id).await["version"], 3);
}

async fn timeout_is_announced_once_to_every_client(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 1000);
    let id = id_of(&body);
    let (first, _) = start_watched(&srv, &body).await;
    let mut clients = vec![];
    for _ in 0..4 {
        clients.push(srv.ws_synced(&id).await.0);
    }
    clients.push(first);
    for ws in clients.iter_mut() {
        let (st, te) = await_timeout(ws).await;
        assert_eq!(st["version"], 3);
        assert_eq!(te["participant_id"], "a");
        // Nothing more (no second announcement) before the reply to a PING.
        ws.ping(2).await;
    }
}

async fn completed_session_does_not_time_out(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 1000);
    let id = id_of(&body);
    let (mut ws, s0) = start_watched(&srv, &body).await;
    let c = srv.api().act(&id, "complete").await;
    ws.expect_type("STATE_UPDATE").await;
    // Showing an absence: nothing arrives past the old deadline.
    let wait = int(&s0, "deadline_ms") - int(&c, "server_time_ms") + 300;
    ws.expect_silence(Duration::from_millis(wait.max(0) as u64))
        .await;
    let g = srv.api().state(&id).await;
    assert_eq!(
        (g["status"].clone(), g["version"].clone()),
        (json!("completed"), json!(3))
    );
    assert_eq!(participant(&g, "a")["has_expired"], false);
}

async fn stale_timer_does_not_touch_a_deleted_and_recreated_session(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 1000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    api.delete(&format!("/v1/sessions/{id}"))
        .await
        .expect_status(204);
    // Same id again, not started: the old incarnation's timer must not fire
    // on it, nor bring the old session back.
    let again = api.create(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let wait = int(&s0, "deadline_ms") - int(&again, "server_time_ms") + 300;
    ws.expect_silence(Duration::from_millis(wait.max(0) as u64))
        .await;
    let g = api.state(&id).await;
    assert_eq!(
        (g["status"].clone(), g["version"].clone()),
        (json!("pending"), json!(1)),
        "{g}"
    );
    // And a deleted session stays deleted past its deadline.
    let body2 = session_body("per_participant", &["a", "b"], 1000);
    let id2 = id_of(&body2);
    let s2 = api.create_started(&body2).await;
    api.delete(&format!("/v1/sessions/{id2}"))
        .await
        .expect_status(204);
    // A deleted session cannot be followed (API.md "Limits").
    srv.ws(&id2).await.expect_session_not_found().await;
    // Past its old deadline (an absence: nothing announces it), still gone.
    let left = int(&s2, "deadline_ms") - int(&api.get("/v1/time").await.body, "timestamp_ms") + 300;
    tokio::time::sleep(Duration::from_millis(left.max(0) as u64)).await;
    api.get(&format!("/v1/sessions/{id2}"))
        .await
        .error(404, "SESSION_NOT_FOUND");
}
