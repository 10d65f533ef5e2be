//! Property tests of the domain invariants over random sessions and random
//! command sequences with scripted time. Timeouts are applied exactly at
//! their deadlines, as the engines' timers do.

use super::*;
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Start,
    Switch(Option<usize>),
    Pause,
    Resume,
    Complete,
    Cancel,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Start),
        6 => proptest::option::weighted(0.2, 0usize..4).prop_map(Op::Switch),
        2 => Just(Op::Pause),
        2 => Just(Op::Resume),
        1 => Just(Op::Complete),
        1 => Just(Op::Cancel),
    ]
}

fn session_draft() -> impl Strategy<Value = SessionDraft> {
    (
        prop_oneof![
            Just(SyncMode::PerParticipant),
            Just(SyncMode::PerCycle),
            Just(SyncMode::PerGroup),
            Just(SyncMode::Global),
            Just(SyncMode::CountUp)
        ],
        prop::collection::vec(1000i64..6000, 2..5),
        0i64..3000,
        proptest::option::of(1000i64..9000),
        prop_oneof![
            Just(TimeoutKind::EndSession),
            Just(TimeoutKind::SkipCycle),
            Just(TimeoutKind::AutoAction)
        ],
        any::<bool>(),
        1000i64..4000,
    )
        .prop_map(|(mode, banks, inc, max, kind, adv, cycle)| {
            let participants = banks
                .iter()
                .enumerate()
                .map(|(i, b)| ParticipantDraft {
                    total_time_ms: Some(*b),
                    group_id: Some(format!("g{}", i % 2)),
                    ..ParticipantDraft::new(format!("p{i}"))
                })
                .collect();
            let mut extra = serde_json::Map::new();
            extra.insert("action".into(), json!("default"));
            SessionDraft {
                time_per_cycle_ms: Some(cycle),
                increment_ms: Some(inc),
                max_time_ms: max,
                auto_advance: Some(adv),
                action_on_timeout: Some(TimeoutAction { kind, extra }),
                ..SessionDraft::new(uuid(), mode, banks[0], participants)
            }
        })
}

fn uuid() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000)
}

/// A pending session from a draft of `mode` with plain participants `ids`.
fn session(
    mode: SyncMode,
    total: i64,
    ids: &[&str],
    edit: impl FnOnce(&mut SessionDraft),
) -> Session {
    let participants = ids.iter().map(|i| ParticipantDraft::new(*i)).collect();
    let mut d = SessionDraft::new(uuid(), mode, total, participants);
    edit(&mut d);
    CreateSpec::validate(d).unwrap().into_session(0)
}

/// Checks what must hold of every state, returning a description of the
/// first violation.
fn check(s: &Session, now: Millis) -> Result<(), String> {
    let r = SyncState::render(s, now);
    for p in &r.participants {
        if p.time_remaining_ms < 0 || p.total_time_ms < 0 || p.time_used_ms < 0 {
            return Err(format!("negative time: {p:?}"));
        }
    }
    let active = r.participants.iter().filter(|p| p.is_active).count();
    match s.status {
        Status::Running | Status::Paused if active != 1 => {
            return Err(format!("{active} active participants while {:?}", s.status));
        }
        st if st.is_terminal() && (active != 0 || r.active_participant_id.is_some()) => {
            return Err("an active participant in a terminal session".into());
        }
        _ => {}
    }
    if let (Some(d), Some(a)) = (r.deadline_ms, r.participants.iter().find(|p| p.is_active))
        && d >= now
        && d - now != a.time_remaining_ms
    {
        return Err(format!(
            "deadline {d} - now {now} != remaining {}",
            a.time_remaining_ms
        ));
    }
    Ok(())
}

fn running_clock(s: &Session) -> bool {
    s.status == Status::Running && !s.awaiting_switch
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn invariants_hold(draft in session_draft(), ops in prop::collection::vec((0i64..2500, op()), 1..40)) {
        let mut s = CreateSpec::validate(draft).unwrap().into_session(0);
        let mut now: Millis = 0;
        // Wall time during which a clock was running (charged time must match).
        let mut wall: i64 = 0;
        for (dt, op) in ops {
            let target = now + dt;
            // Timeouts fire at their deadlines, as the timers do.
            while let Some(d) = s.deadline_ms().filter(|d| *d <= target) {
                if running_clock(&s) { wall += d - now; }
                now = d;
                let t = apply(&s, &Command::Timeout { expected_version: s.version }, now).unwrap();
                prop_assert_eq!(t.next.version, s.version + 1);
                prop_assert!(t.expired_participant_id.is_some());
                s = t.next;
                check(&s, now).map_err(TestCaseError::fail)?;
            }
            if running_clock(&s) { wall += target - now; }
            now = target;
            let cmd = match op {
                Op::Start => Command::Start,
                Op::Switch(t) => Command::Switch(SwitchArgs {
                    next_participant_id: t.map(|i| format!("p{i}")),
                    ..SwitchArgs::default()
                }),
                Op::Pause => Command::Pause,
                Op::Resume => Command::Resume,
                Op::Complete => Command::Complete,
                Op::Cancel => Command::Cancel,
            };
            match apply(&s, &cmd, now) {
                Ok(t) => {
                    prop_assert!(!t.preempted, "no timeout can be due here");
                    prop_assert_eq!(t.next.version, s.version + 1);
                    s = t.next;
                }
                Err(DomainError::InvalidTransition { status, .. }) => prop_assert_eq!(status, s.status),
                Err(DomainError::Invalid(f)) => prop_assert_eq!(f.field, "next_participant_id"),
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
            check(&s, now).map_err(TestCaseError::fail)?;
            let charged: i64 = s.participants.iter().map(|p| p.time_used_ms).sum::<i64>() + s.elapsed(now);
            prop_assert_eq!(charged, wall, "charged time must equal running wall time");
        }
    }

    #[test]
    fn an_out_of_range_number_is_refused_naming_its_field(
        mut d in session_draft(), which in 0usize..5, over in any::<bool>(), by in 1i64..1_000_000_000,
    ) {
        let bank = (1_000, 86_400_000);
        let (field, (lo, hi)) = match which {
            0 => ("total_time_ms", bank),
            1 => ("time_per_cycle_ms", bank),
            2 => ("increment_ms", (0, 60_000)),
            3 => ("max_time_ms", bank),
            _ => ("participants[1].total_time_ms", bank),
        };
        let v = if over { hi + by } else { lo - by };
        match which {
            0 => d.total_time_ms = v,
            1 => d.time_per_cycle_ms = Some(v),
            2 => d.increment_ms = Some(v),
            3 => d.max_time_ms = Some(v),
            _ => d.participants[1].total_time_ms = Some(v),
        }
        let e = CreateSpec::validate(d).unwrap_err();
        prop_assert_eq!(e.field, field);
        prop_assert_eq!(e.message, format!("must be between {lo} and {hi}"));
    }

    /// A participant's device (switch with `turn_of`) can only end its own
    /// turn (per_group: its group's): whatever state random commands led
    /// to, every switch it commits ended the turn of that participant (or
    /// its group), and every other is refused as NOT_YOUR_TURN, never as
    /// something a client could retry into an off-turn switch.
    #[test]
    fn only_the_running_clock_owner_switches(
        draft in session_draft(), ops in prop::collection::vec((0i64..2500, op()), 0..30), at in 0i64..2500,
    ) {
        let mut s = CreateSpec::validate(draft).unwrap().into_session(0);
        let mut now: Millis = 0;
        for (dt, op) in ops {
            now += dt;
            while due_timeout(&s, now) {
                s = apply(&s, &Command::Timeout { expected_version: s.version }, now).unwrap().next;
            }
            let cmd = match op {
                Op::Start => Command::Start,
                Op::Switch(_) => sw(),
                Op::Pause => Command::Pause,
                Op::Resume => Command::Resume,
                Op::Complete => Command::Complete,
                Op::Cancel => Command::Cancel,
            };
            if let Ok(t) = apply(&s, &cmd, now) { s = t.next; }
        }
        let now = now + at;
        let group_of = |id: &str| s.participants.iter().find(|p| p.participant_id == id).and_then(|p| p.group_id.clone());
        for p in s.participants.iter().map(|p| p.participant_id.clone()).chain(["stranger".to_owned()]) {
            let cmd = Command::Switch(SwitchArgs { turn_of: Some(p.clone()), ..SwitchArgs::default() });
            let active = s.active_participant().map(|a| a.participant_id.clone());
            let owns = match (&active, s.sync_mode) {
                (Some(a), SyncMode::PerGroup) => group_of(a).is_some() && group_of(a) == group_of(&p),
                (Some(a), _) => *a == p,
                (None, _) => false,
            };
            match apply(&s, &cmd, now) {
                Err(DomainError::NotYourTurn(who)) => {
                    prop_assert_eq!(s.status, Status::Running);
                    prop_assert!(!owns, "{} owns the running clock yet was refused", p);
                    prop_assert_eq!(who, p);
                }
                Ok(t) if !t.preempted => {
                    prop_assert!(owns, "{} switched while {:?} held the turn", p, active);
                    prop_assert_eq!(t.participant_id, active);
                }
                Ok(_) => prop_assert!(owns, "a due timeout is fired only for the clock's owner's press"),
                Err(e) => prop_assert!(s.status != Status::Running, "unexpected {e:?} while running"),
            }
        }
    }

    #[test]
    fn stored_form_round_trips(draft in session_draft()) {
        let s = CreateSpec::validate(draft).unwrap().into_session(5);
        let back: Session = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        prop_assert_eq!(back, s);
    }
}

fn chess(inc: i64, max: Option<i64>) -> Session {
    session(SyncMode::PerParticipant, 10_000, &["w", "b"], |d| {
        d.increment_ms = Some(inc);
        d.max_time_ms = max;
    })
}

fn run(s: &Session, cmd: Command, now: Millis) -> Session {
    apply(s, &cmd, now).unwrap().next
}

fn sw() -> Command {
    Command::Switch(SwitchArgs::default())
}

#[test]
fn chess_clock_with_increment_and_cap() {
    let s = run(&chess(2_000, Some(11_000)), Command::Start, 1_000);
    let s = run(&s, sw(), 4_000); // white used 3 s: 7 s + 2 s = 9 s
    assert_eq!(s.participants[0].bank_ms, 9_000);
    assert_eq!(s.active_participant().unwrap().participant_id, "b");
    let s = run(&s, sw(), 4_500); // black used 0.5 s: 9.5 + 2 = 11.5 → cap 11
    assert_eq!(s.participants[1].bank_ms, 11_000);
    let r = SyncState::render(&s, 6_500);
    assert_eq!(r.participants[0].time_remaining_ms, 7_000);
    assert_eq!(r.deadline_ms, Some(4_500 + 9_000));
}

#[test]
fn pause_charges_and_resume_restarts_the_cycle() {
    let s = run(&chess(0, None), Command::Start, 0);
    let s = run(&s, Command::Pause, 2_500);
    assert_eq!(s.participants[0].bank_ms, 7_500);
    assert_eq!(
        SyncState::render(&s, 60_000).participants[0].time_remaining_ms,
        7_500
    );
    let s = run(&s, Command::Resume, 100_000);
    assert_eq!(s.deadline_ms(), Some(107_500));
}

#[test]
fn guards_refuse_with_conflict() {
    let s = run(&chess(0, None), Command::Start, 0);
    let stale = Command::Switch(SwitchArgs {
        expected_version: Some(1),
        ..SwitchArgs::default()
    });
    assert!(matches!(
        apply(&s, &stale, 10),
        Err(DomainError::Conflict(_))
    ));
    let wrong = Command::Switch(SwitchArgs {
        current_participant_id: Some("b".into()),
        ..SwitchArgs::default()
    });
    assert!(matches!(
        apply(&s, &wrong, 10),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn late_switch_applies_the_timeout_instead() {
    let s = run(&chess(0, None), Command::Start, 0);
    let t = apply(&s, &sw(), 10_001).unwrap();
    assert!(t.preempted);
    assert_eq!(t.expired_participant_id.as_deref(), Some("w"));
    assert_eq!(t.next.status, Status::Expired);
    assert_eq!(t.next.session_completed_at, Some(10_000));
}

#[test]
fn skip_cycle_passes_the_turn_at_the_deadline() {
    let mut s = chess(0, None);
    s.action_on_timeout.kind = TimeoutKind::SkipCycle;
    let s = run(&s, Command::Start, 0);
    let s = run(
        &s,
        Command::Timeout {
            expected_version: 2,
        },
        10_003,
    );
    assert!(s.participants[0].has_expired);
    assert_eq!(s.status, Status::Running);
    assert_eq!(s.cycle_started_at, Some(10_000));
    // The only one left switches back to itself.
    let s = run(&s, sw(), 12_000);
    assert_eq!(s.active_participant().unwrap().participant_id, "b");
    let s = run(
        &s,
        Command::Timeout {
            expected_version: s.version,
        },
        30_000,
    );
    assert_eq!(s.status, Status::Expired);
}

#[test]
fn auto_action_without_advance_waits_at_zero() {
    let mut s = chess(1_000, None);
    s.action_on_timeout.kind = TimeoutKind::AutoAction;
    let s = run(&s, Command::Start, 0);
    let s = run(
        &s,
        Command::Timeout {
            expected_version: 2,
        },
        10_000,
    );
    assert_eq!(s.status, Status::Running);
    assert_eq!(s.deadline_ms(), None);
    assert_eq!(
        SyncState::render(&s, 20_000).participants[0].time_remaining_ms,
        0
    );
    let s = run(&s, sw(), 20_000);
    assert_eq!(
        s.participants[0].bank_ms, 1_000,
        "the increment still applies"
    );
    assert!(!s.participants[0].has_expired);
}

#[test]
fn per_group_rotates_groups_then_members() {
    let s = session(SyncMode::PerGroup, 10_000, &["a1", "b1", "a2", "b2"], |d| {
        for (p, g) in d.participants.iter_mut().zip(["A", "B", "A", "B"]) {
            p.group_id = Some(g.into());
        }
    });
    let mut s = run(&s, Command::Start, 0);
    let mut order = vec![s.active_participant().unwrap().participant_id.clone()];
    for k in 1..=4 {
        s = run(&s, sw(), k * 1_000);
        order.push(s.active_participant().unwrap().participant_id.clone());
    }
    assert_eq!(order, ["a1", "b1", "a2", "b2", "a1"]);
    // Group A's bank paid for a1's and a2's turns: 1 s + 1 s.
    assert_eq!(s.groups[0].bank_ms, 8_000);
}

#[test]
fn global_clock_is_shared_and_switch_does_not_reset_it() {
    let s = run(
        &session(SyncMode::Global, 10_000, &["x", "y"], |_| {}),
        Command::Start,
        0,
    );
    let s = run(&s, sw(), 3_000);
    assert_eq!(s.deadline_ms(), Some(10_000));
    let r = SyncState::render(&s, 4_000);
    assert!(r.participants.iter().all(|p| p.time_remaining_ms == 6_000));
}

#[test]
fn count_up_expires_only_at_max() {
    let s = run(
        &session(SyncMode::CountUp, 1_000, &["x"], |d| {
            d.max_time_ms = Some(5_000)
        }),
        Command::Start,
        0,
    );
    let s = run(&s, Command::Pause, 2_000);
    assert_eq!(s.session_bank_ms, 2_000);
    let s = run(&s, Command::Resume, 9_000);
    assert_eq!(s.deadline_ms(), Some(12_000));
}

#[test]
fn per_cycle_turns_start_fresh_and_waiting_players_show_a_full_turn() {
    let s = run(
        &session(SyncMode::PerCycle, 60_000, &["x", "y"], |d| {
            d.time_per_cycle_ms = Some(10_000)
        }),
        Command::Start,
        0,
    );
    let s = run(&s, sw(), 600);
    let r = SyncState::render(&s, 1_000);
    assert_eq!(r.participants[0].time_remaining_ms, 10_000);
    assert_eq!(r.participants[0].time_used_ms, 600);
    assert_eq!(r.participants[1].time_remaining_ms, 9_600);
}
