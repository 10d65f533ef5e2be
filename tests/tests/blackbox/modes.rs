//! Every mode's arithmetic, checked against the server's own clock readings
//! (`cycle_started_at`, `server_time_ms`, `deadline_ms`) rather than our
//! wall clock, so scheduling delays cannot make the checks flaky.

use serde_json::{Value, json};
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    per_participant_switch_charges_elapsed_and_adds_increment,
    per_participant_increment_is_capped_by_max_time,
    rotation_and_next_participant_id,
    per_cycle_every_turn_gets_a_fresh_cycle,
    per_group_rotates_groups_and_members_sharing_a_bank,
    global_switch_does_not_change_the_clock,
    count_up_without_max_never_expires,
    count_up_with_max_has_a_deadline,
    pause_resume_accounting,
    complete_and_cancel_charge_the_running_cycle,
    version_grows_by_one_per_change,
    per_cycle_pause_keeps_the_rest_of_the_cycle,
    complete_from_paused_charges_nothing_more,
    random_command_sequences_match_a_model,
    per_group_jump_pause_and_round_robin,
}

fn ts(v: &Value, key: &str) -> i64 {
    iso_ms(&v[key])
}

async fn per_participant_switch_charges_elapsed_and_adds_increment(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut body = session_body("per_participant", &["a", "b"], 60_000);
    body["increment_ms"] = json!(2000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    let t0 = ts(&s0, "cycle_started_at");

    let r1 = api.switch(&id, &json!({})).await;
    let t1 = ts(&r1, "cycle_started_at");
    let c1 = t1 - t0;
    assert!(c1 >= 0);
    let a = participant(&r1, "a");
    assert_eq!(
        int(a, "time_used_ms"),
        c1,
        "a is charged the elapsed cycle: {r1}"
    );
    assert_eq!(
        int(a, "total_time_ms"),
        60_000 - c1 + 2000,
        "bank - elapsed + increment: {r1}"
    );
    assert_eq!(
        int(a, "time_remaining_ms"),
        60_000 - c1 + 2000,
        "inactive shows its bank"
    );
    assert_eq!(a["cycle_count"], 1);
    let bb = participant(&r1, "b");
    assert_eq!(bb["total_time_ms"], 60_000);
    assert_eq!(int(&r1, "deadline_ms"), t1 + 60_000);
    assert_eq!(bb["cycle_count"], 0);

    let r2 = api.switch(&id, &json!({})).await;
    let t2 = ts(&r2, "cycle_started_at");
    let c2 = t2 - t1;
    let bb = participant(&r2, "b");
    assert_eq!(int(bb, "time_used_ms"), c2);
    assert_eq!(int(bb, "total_time_ms"), 60_000 - c2 + 2000);
    assert_eq!(r2["active_participant_id"], "a");
    let a_bank = 60_000 - c1 + 2000;
    assert_eq!(int(participant(&r2, "a"), "total_time_ms"), a_bank);
    assert_eq!(int(&r2, "deadline_ms"), t2 + a_bank);

    // GET renders the same stored facts.
    let g = api.state(&id).await;
    assert_eq!(g["version"], 4);
    assert_eq!(g["deadline_ms"], r2["deadline_ms"]);
    assert_eq!(
        participant(&g, "b")["total_time_ms"],
        participant(&r2, "b")["total_time_ms"]
    );
    assert_eq!(participant(&g, "a")["time_used_ms"], json!(c1));
}

async fn per_participant_increment_is_capped_by_max_time(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut body = session_body("per_participant", &["a", "b"], 10_000);
    body["increment_ms"] = json!(5000);
    body["max_time_ms"] = json!(12_000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    let t0 = ts(&s0, "cycle_started_at");
    let r1 = api.switch(&id, &json!({})).await;
    let c1 = ts(&r1, "cycle_started_at") - t0;
    let a = participant(&r1, "a");
    assert_eq!(int(a, "time_used_ms"), c1);
    assert_eq!(
        int(a, "total_time_ms"),
        (10_000 - c1 + 5000).min(12_000),
        "increment capped: {r1}"
    );
    let t1 = ts(&r1, "cycle_started_at");
    let r2 = api.switch(&id, &json!({})).await;
    let c2 = ts(&r2, "cycle_started_at") - t1;
    assert_eq!(
        int(participant(&r2, "b"), "total_time_ms"),
        (10_000 - c2 + 5000).min(12_000),
        "increment capped: {r2}"
    );
}

async fn rotation_and_next_participant_id(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b", "c"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        let r = api.switch(&id, &json!({})).await;
        order.push(
            r["active_participant_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(order, ["b", "c", "a", "b"], "index order, wrapping around");
    let r = api.switch(&id, &json!({"next_participant_id": "a"})).await;
    assert_eq!(
        r["active_participant_id"], "a",
        "jump to the named participant"
    );
    assert_eq!(participant(&r, "b")["cycle_count"], 2);
    assert_eq!(participant(&r, "a")["cycle_count"], 2);
    assert_eq!(participant(&r, "c")["cycle_count"], 1);
    let r = api.switch(&id, &json!({})).await;
    assert_eq!(
        r["active_participant_id"], "b",
        "rotation continues from the jumped-to participant"
    );
}

async fn per_cycle_every_turn_gets_a_fresh_cycle(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut body = session_body("per_cycle", &["a", "b"], 60_000);
    body["time_per_cycle_ms"] = json!(5000);
    body["increment_ms"] = json!(3000);
    let id = id_of(&body);
    let created = api.create(&body).await;
    assert_eq!(
        participant(&created, "a")["total_time_ms"],
        5000,
        "banks start at time_per_cycle_ms"
    );
    let s0 = api.act(&id, "start").await;
    let t0 = ts(&s0, "cycle_started_at");
    assert_eq!(int(&s0, "deadline_ms"), t0 + 5000);
    let r1 = api.switch(&id, &json!({})).await;
    let t1 = ts(&r1, "cycle_started_at");
    assert_eq!(int(participant(&r1, "a"), "time_used_ms"), t1 - t0);
    assert_eq!(participant(&r1, "b")["total_time_ms"], 5000);
    assert_eq!(int(&r1, "deadline_ms"), t1 + 5000);
    let r2 = api.switch(&id, &json!({})).await;
    let t2 = ts(&r2, "cycle_started_at");
    assert_eq!(
        participant(&r2, "a")["total_time_ms"],
        5000,
        "a fresh cycle: no carry-over, no increment in per_cycle"
    );
    assert_eq!(int(&r2, "deadline_ms"), t2 + 5000);
    assert_eq!(int(participant(&r2, "b"), "time_used_ms"), t2 - t1);
}

async fn per_group_rotates_groups_and_members_sharing_a_bank(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let id = new_id();
    let body = json!({
        "session_id": id,
        "sync_mode": "per_group",
        "total_time_ms": 60000,
        "increment_ms": 1000,
        "participants": [
            {"participant_id": "a1", "group_id": "g1", "total_time_ms": 20000},
            {"participant_id": "b1", "group_id": "g2", "total_time_ms": 30000},
            {"participant_id": "a2", "group_id": "g1", "total_time_ms": 99999},
            {"participant_id": "b2", "group_id": "g2", "total_time_ms": 1234},
        ],
    });
    let created = api.create(&body).await;
    for (m, bank) in [
        ("a1", 20_000),
        ("a2", 20_000),
        ("b1", 30_000),
        ("b2", 30_000),
    ] {
        assert_eq!(
            participant(&created, m)["total_time_ms"],
            bank,
            "group bank comes from the group's first member: {m}"
        );
    }
    let s0 = api.act(&id, "start").await;
    assert_eq!(s0["active_participant_id"], "a1");
    assert_eq!(s0["active_group_id"], "g1");
    let mut banks = std::collections::HashMap::from([("g1", 20_000i64), ("g2", 30_000i64)]);
    let mut t_prev = ts(&s0, "cycle_started_at");
    let mut group_prev = "g1";
    let expected = [
        ("b1", "g2"),
        ("a2", "g1"),
        ("b2", "g2"),
        ("a1", "g1"),
        ("b1", "g2"),
    ];
    for (member, group) in expected {
        let r = api.switch(&id, &json!({})).await;
        assert_eq!(
            r["active_participant_id"], member,
            "next group, next member: {r}"
        );
        let t = ts(&r, "cycle_started_at");
        let charged = t - t_prev;
        if let Some(bank) = banks.get_mut(group_prev) {
            *bank = *bank - charged + 1000;
        }
        for (m, g) in [("a1", "g1"), ("a2", "g1"), ("b1", "g2"), ("b2", "g2")] {
            assert_eq!(
                int(participant(&r, m), "total_time_ms"),
                banks[g],
                "{m} shows group {g}'s bank after switching to {member}: {r}"
            );
        }
        assert_eq!(int(&r, "deadline_ms"), t + banks[group]);
        t_prev = t;
        group_prev = group;
    }
    let g = api.state(&id).await;
    assert_eq!(g["active_group_id"], "g2");
}

async fn global_switch_does_not_change_the_clock(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut body = session_body("global", &["a", "b", "c"], 60_000);
    body["increment_ms"] = json!(5000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    let deadline = int(&s0, "deadline_ms");
    assert_eq!(deadline, ts(&s0, "cycle_started_at") + 60_000);
    for expected in ["b", "c", "a"] {
        let r = api.switch(&id, &json!({})).await;
        assert_eq!(r["active_participant_id"], expected);
        assert_eq!(
            int(&r, "deadline_ms"),
            deadline,
            "switching does not move the session clock: {r}"
        );
        let now = int(&r, "server_time_ms");
        for p in r["participants"].as_array().into_iter().flatten() {
            assert_eq!(
                int(p, "time_remaining_ms"),
                (deadline - now).max(0),
                "every participant shows the session clock: {r}"
            );
        }
    }
    let p = api.act(&id, "pause").await;
    let tp = int(&p, "server_time_ms");
    let left = deadline - tp;
    let r = api.act(&id, "resume").await;
    assert_eq!(
        int(&r, "deadline_ms"),
        ts(&r, "cycle_started_at") + left,
        "pause stops the session clock"
    );
}

async fn count_up_without_max_never_expires(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("count_up", &["a", "b"], 5000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    assert_eq!(s0["status"], "running");
    assert_eq!(s0["deadline_ms"], Value::Null, "nothing can expire: {s0}");
    for p in s0["participants"].as_array().into_iter().flatten() {
        assert_eq!(
            p["time_remaining_ms"], 5000,
            "static remaining without max_time_ms"
        );
    }
    let r = api.switch(&id, &json!({})).await;
    assert_eq!(r["deadline_ms"], Value::Null);
    assert_eq!(r["active_participant_id"], "b");
    let c = api.act(&id, "complete").await;
    assert_eq!(c["status"], "completed");
}

async fn count_up_with_max_has_a_deadline(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut body = session_body("count_up", &["a"], 60_000);
    body["max_time_ms"] = json!(30_000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    let t0 = ts(&s0, "session_started_at");
    assert_eq!(
        int(&s0, "deadline_ms"),
        t0 + 30_000,
        "expires at max_time_ms of session time"
    );
    let p = api.act(&id, "pause").await;
    let elapsed = int(&p, "server_time_ms") - t0;
    let r = api.act(&id, "resume").await;
    assert_eq!(
        int(&r, "deadline_ms"),
        ts(&r, "cycle_started_at") + 30_000 - elapsed,
        "paused time does not count: {r}"
    );
}

async fn pause_resume_accounting(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    let t0 = ts(&s0, "cycle_started_at");

    let p = api.act(&id, "pause").await;
    let tp = int(&p, "server_time_ms");
    let c1 = tp - t0;
    let a = participant(&p, "a");
    assert_eq!(
        int(a, "time_used_ms"),
        c1,
        "pause charges the elapsed part: {p}"
    );
    assert_eq!(int(a, "time_remaining_ms"), 60_000 - c1);
    assert_eq!(
        int(a, "total_time_ms"),
        60_000 - c1,
        "no increment on pause"
    );
    assert_eq!(a["cycle_count"], 0, "pause does not end the turn");

    // While paused nothing moves.
    let g = api.state(&id).await;
    assert_eq!(
        participant(&g, "a")["time_remaining_ms"],
        json!(60_000 - c1)
    );

    let r = api.act(&id, "resume").await;
    let tr = ts(&r, "cycle_started_at");
    assert!(tr >= tp);
    assert_eq!(r["active_participant_id"], "a");
    assert_eq!(int(&r, "deadline_ms"), tr + 60_000 - c1);

    let s = api.switch(&id, &json!({})).await;
    let c2 = ts(&s, "cycle_started_at") - tr;
    let a = participant(&s, "a");
    assert_eq!(
        int(a, "time_used_ms"),
        c1 + c2,
        "charged = wall time minus paused time: {s}"
    );
    assert_eq!(int(a, "total_time_ms"), 60_000 - c1 - c2);
    assert_eq!(a["cycle_count"], 1);
}

async fn complete_and_cancel_charge_the_running_cycle(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    for verb in ["complete", "cancel"] {
        let body = session_body("per_participant", &["a", "b"], 60_000);
        let id = id_of(&body);
        let s0 = api.create_started(&body).await;
        let t0 = ts(&s0, "cycle_started_at");
        let c = api.act(&id, verb).await;
        let tc = ts(&c, "session_completed_at");
        let a = participant(&c, "a");
        assert_eq!(
            int(a, "time_used_ms"),
            tc - t0,
            "{verb} charges the running cycle: {c}"
        );
        assert_eq!(int(a, "time_remaining_ms"), 60_000 - (tc - t0));
        assert_eq!(c["active_participant_id"], Value::Null);
        assert_eq!(participant(&c, "b")["time_used_ms"], 0);
    }
}

async fn version_grows_by_one_per_change(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    assert_eq!(api.create(&body).await["version"], 1);
    let mut seen = vec![api.act(&id, "start").await["version"].clone()];
    seen.push(api.switch(&id, &json!({})).await["version"].clone());
    for verb in ["pause", "resume", "complete"] {
        seen.push(api.act(&id, verb).await["version"].clone());
    }
    assert_eq!(seen, [json!(2), json!(3), json!(4), json!(5), json!(6)]);
    // Reads do not change it.
    assert_eq!(api.state(&id).await["version"], 6);
}

async fn per_cycle_pause_keeps_the_rest_of_the_cycle(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut body = session_body("per_cycle", &["a", "b"], 60_000);
    body["time_per_cycle_ms"] = json!(20_000);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    let t0 = ts(&s0, "cycle_started_at");
    let p = api.act(&id, "pause").await;
    let c1 = int(&p, "server_time_ms") - t0;
    assert_eq!(int(participant(&p, "a"), "time_remaining_ms"), 20_000 - c1);
    let r = api.act(&id, "resume").await;
    assert_eq!(
        int(&r, "deadline_ms"),
        ts(&r, "cycle_started_at") + 20_000 - c1,
        "resume continues the same cycle: {r}"
    );
}

async fn complete_from_paused_charges_nothing_more(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let p = api.act(&id, "pause").await;
    let used = int(participant(&p, "a"), "time_used_ms");
    let c = api.act(&id, "complete").await;
    assert_eq!(c["status"], "completed");
    assert_eq!(
        participant(&c, "a")["time_used_ms"],
        used,
        "paused time is not charged"
    );
    assert_eq!(
        participant(&c, "a")["time_remaining_ms"],
        json!(60_000 - used)
    );
}

/// A tiny xorshift generator: reproducible sequences from a printed seed
/// (`SYNCKAIROS_TEST_SEED` replays one).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the server should hold, computed from its own clock readings.
struct Model {
    bank: Vec<i64>,
    used: Vec<i64>,
    cycles: Vec<i64>,
    active: usize,
    running: bool,
    cycle_start: i64,
    version: i64,
}

const IDS: [&str; 4] = ["p0", "p1", "p2", "p3"];
const INC: i64 = 1500;
const CAP: i64 = 65_000;

impl Model {
    fn charge(&mut self, now: i64) -> i64 {
        let c = now - self.cycle_start;
        assert!(c >= 0, "time went backwards: {now} < {}", self.cycle_start);
        self.bank[self.active] -= c;
        self.used[self.active] += c;
        c
    }

    fn check(&self, what: &str, v: &Value) {
        assert_eq!(int(v, "version"), self.version, "{what}: version in {v}");
        let want_active = if self.running || !v["active_participant_id"].is_null() {
            json!(IDS[self.active])
        } else {
            Value::Null
        };
        assert_eq!(
            v["active_participant_id"], want_active,
            "{what}: active in {v}"
        );
        for (i, id) in IDS.iter().enumerate() {
            let p = participant(v, id);
            assert_eq!(
                int(p, "total_time_ms"),
                self.bank[i],
                "{what}: {id} bank in {v}"
            );
            assert_eq!(
                int(p, "time_used_ms"),
                self.used[i],
                "{what}: {id} used in {v}"
            );
            assert_eq!(
                int(p, "cycle_count"),
                self.cycles[i],
                "{what}: {id} cycles in {v}"
            );
        }
        if self.running {
            assert_eq!(
                iso_ms(&v["cycle_started_at"]),
                self.cycle_start,
                "{what}: cycle start"
            );
            assert_eq!(
                int(v, "deadline_ms"),
                self.cycle_start + self.bank[self.active],
                "{what}: deadline"
            );
        }
    }
}

async fn random_command_sequences_match_a_model(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let seed = std::env::var("SYNCKAIROS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(88172645463325252)
        });
    eprintln!("random_command_sequences_match_a_model: SYNCKAIROS_TEST_SEED={seed}");
    let mut rng = Rng(seed);
    let mut body = session_body("per_participant", &IDS, 60_000);
    body["increment_ms"] = json!(INC);
    body["max_time_ms"] = json!(CAP);
    let id = id_of(&body);
    let s0 = api.create_started(&body).await;
    let mut m = Model {
        bank: vec![60_000; 4],
        used: vec![0; 4],
        cycles: vec![0; 4],
        active: 0,
        running: true,
        cycle_start: iso_ms(&s0["cycle_started_at"]),
        version: 2,
    };
    m.check("start", &s0);
    let path = |verb: &str| format!("/v1/sessions/{id}/{verb}");
    for step in 0..40 {
        let roll = rng.next(10);
        if m.running && roll < 5 {
            let r = api.switch(&id, &json!({})).await;
            let now = iso_ms(&r["cycle_started_at"]);
            let c = m.charge(now);
            m.bank[m.active] = (m.bank[m.active] + INC).min(CAP);
            m.cycles[m.active] += 1;
            m.active = (m.active + 1) % 4;
            m.cycle_start = now;
            m.version += 1;
            m.check(&format!("step {step}: switch after {c} ms"), &r);
        } else if m.running && roll < 7 {
            let to = (m.active + 1 + rng.next(3) as usize) % 4;
            let r = api
                .switch(
                    &id,
                    &json!({"next_participant_id": IDS[to], "expected_version": m.version}),
                )
                .await;
            let now = iso_ms(&r["cycle_started_at"]);
            m.charge(now);
            m.bank[m.active] = (m.bank[m.active] + INC).min(CAP);
            m.cycles[m.active] += 1;
            m.active = to;
            m.cycle_start = now;
            m.version += 1;
            m.check(&format!("step {step}: jump to {}", IDS[to]), &r);
        } else if m.running && roll < 9 {
            let r = api.act(&id, "pause").await;
            m.charge(int(&r, "server_time_ms"));
            m.running = false;
            m.version += 1;
            m.check(&format!("step {step}: pause"), &r);
        } else if m.running {
            // A refused command changes nothing.
            api.post_empty(&path("resume"))
                .await
                .error(400, "INVALID_STATE_TRANSITION");
        } else if roll < 8 {
            let r = api.act(&id, "resume").await;
            m.running = true;
            m.cycle_start = iso_ms(&r["cycle_started_at"]);
            m.version += 1;
            m.check(&format!("step {step}: resume"), &r);
        } else {
            api.post_empty(&path("switch"))
                .await
                .error(400, "INVALID_STATE_TRANSITION");
        }
    }
    let g = api.state(&id).await;
    m.check("final GET", &g);
}

async fn per_group_jump_pause_and_round_robin(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let id = new_id();
    let body = json!({
        "session_id": id,
        "sync_mode": "per_group",
        "total_time_ms": 60000,
        "participants": [
            {"participant_id": "a1", "group_id": "g1", "total_time_ms": 20000},
            {"participant_id": "b1", "group_id": "g2", "total_time_ms": 30000},
            {"participant_id": "a2", "group_id": "g1"},
            {"participant_id": "b2", "group_id": "g2"},
        ],
    });
    api.create(&body).await;
    let s0 = api.act(&id, "start").await;
    let t0 = ts(&s0, "cycle_started_at");
    // Pause charges the group's bank; every member shows it.
    let p = api.act(&id, "pause").await;
    let c1 = int(&p, "server_time_ms") - t0;
    for m in ["a1", "a2"] {
        assert_eq!(
            int(participant(&p, m), "total_time_ms"),
            20_000 - c1,
            "{m}: {p}"
        );
    }
    assert_eq!(participant(&p, "b1")["total_time_ms"], 30_000);
    let r = api.act(&id, "resume").await;
    let tr = ts(&r, "cycle_started_at");
    assert_eq!(int(&r, "deadline_ms"), tr + 20_000 - c1);
    // Jump into the other group, to its second member.
    let j = api.switch(&id, &json!({"next_participant_id": "b2"})).await;
    let tj = ts(&j, "cycle_started_at");
    assert_eq!(j["active_participant_id"], "b2");
    let g1 = 20_000 - c1 - (tj - tr);
    assert_eq!(int(participant(&j, "a2"), "total_time_ms"), g1);
    assert_eq!(int(&j, "deadline_ms"), tj + 30_000);
    assert_eq!(api.state(&id).await["active_group_id"], "g2");
    // Round robin per group: g1 continues after a1; g2 after b2 (wraps to b1).
    let n1 = api.switch(&id, &json!({})).await;
    assert_eq!(n1["active_participant_id"], "a2");
    let n2 = api.switch(&id, &json!({})).await;
    assert_eq!(n2["active_participant_id"], "b1");
    let n3 = api.switch(&id, &json!({})).await;
    assert_eq!(n3["active_participant_id"], "a1");
}
