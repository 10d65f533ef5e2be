//! The use cases every engine shares: load → apply a domain command →
//! commit with a version check → broadcast; transparent retries of lost
//! version races; local timers for deadlines plus a sweep that recovers any
//! timer this or another instance lost. Exactly-once timeouts follow from
//! firing being an ordinary versioned commit.

use crate::clock::now_ms;
use crate::domain::{
    self, Actor, Command, CreateSpec, DomainError, EventKind, Millis, Session, SyncState,
    TimeoutKind,
};
use crate::engine::{AuditEvent, Commit, Engine, EngineError, Subscription, Update, UpdateKind};
use crate::metrics::Metrics;
use crate::protocol;
use crate::session_locks::SessionLocks;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Tunables of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// A session disappears this long after its last change…
    pub session_ttl_ms: i64,
    /// …but never before its deadline plus this grace.
    pub deadline_grace_ms: i64,
    /// How often every instance sweeps the deadline index.
    pub sweep_interval: Duration,
    /// Transparent retries of a lost version race.
    pub max_retries: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            session_ttl_ms: 3_600_000,
            deadline_grace_ms: 60_000,
            sweep_interval: Duration::from_secs(1),
            max_retries: 16,
        }
    }
}

/// Why a use case failed, mapped to HTTP once in the API layer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No live session with that id.
    #[error("session not found")]
    NotFound,
    /// Create on a live id.
    #[error("session already exists")]
    Exists,
    /// The domain refused the command.
    #[error("{0}")]
    Domain(DomainError),
    /// Lost the version race more often than the retry budget allows.
    #[error("too many concurrent changes; retry")]
    Contention,
    /// The store is down.
    #[error("state store unavailable")]
    Unavailable(String),
    /// Stored data was unreadable.
    #[error("internal error")]
    Internal(String),
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Exists => ServiceError::Exists,
            EngineError::NotFound => ServiceError::NotFound,
            EngineError::VersionMismatch => ServiceError::Contention,
            EngineError::Unavailable(m) => ServiceError::Unavailable(m),
            EngineError::Corrupt(m) => ServiceError::Internal(m),
        }
    }
}

/// What a command produced, for the API response.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The state after the command, rendered at commit time.
    pub state: SyncState,
    /// Set when a timeout was applied instead of (or before) the command.
    pub expired_participant_id: Option<String>,
}

/// The service: one per process, shared by every request and timer.
pub struct Service {
    engine: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
    config: ServiceConfig,
    timers: Mutex<HashMap<Uuid, (u64, AbortHandle)>>,
    changing: SessionLocks,
}

impl Service {
    /// Builds the service over an engine.
    pub fn new(engine: Arc<dyn Engine>, metrics: Arc<Metrics>, config: ServiceConfig) -> Arc<Self> {
        Arc::new(Service {
            engine,
            metrics,
            config,
            timers: Mutex::new(HashMap::new()),
            changing: SessionLocks::default(),
        })
    }

    /// The engine (for readiness and subscriptions).
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Creates a session (version 1, pending) for a caller without
    /// credentials (tools, tests); the API uses [`Service::create_by`].
    pub async fn create(self: &Arc<Self>, spec: CreateSpec) -> Result<SyncState, ServiceError> {
        self.create_by(spec, &Actor::anonymous()).await
    }

    /// Creates a session, recording `actor` in its audit event.
    pub async fn create_by(
        self: &Arc<Self>,
        spec: CreateSpec,
        actor: &Actor,
    ) -> Result<SyncState, ServiceError> {
        let now = now_ms();
        let mut session = spec.into_session(now);
        session.incarnation = crate::engine::new_incarnation();
        let state = SyncState::render(&session, now);
        let commit = self.build_commit(
            &session,
            &state,
            EventKind::SessionCreated,
            None,
            0,
            None,
            now,
            actor,
        );
        self.engine.create(commit).await?;
        Ok(state)
    }

    /// The live state rendered for now.
    pub async fn get(&self, id: Uuid) -> Result<SyncState, ServiceError> {
        let s = self.engine.load(id).await?.ok_or(ServiceError::NotFound)?;
        Ok(SyncState::render(&s, now_ms()))
    }

    /// Applies a command for a caller without credentials (tools, tests);
    /// the API uses [`Service::command_by`].
    pub async fn command(
        self: &Arc<Self>,
        id: Uuid,
        cmd: Command,
    ) -> Result<Outcome, ServiceError> {
        self.command_by(id, cmd, &Actor::anonymous()).await
    }

    /// Applies a client command with transparent retries of version races,
    /// recording `actor` in its audit event (a due timeout the command runs
    /// into is recorded as the server's).
    pub async fn command_by(
        self: &Arc<Self>,
        id: Uuid,
        cmd: Command,
        actor: &Actor,
    ) -> Result<Outcome, ServiceError> {
        let started = std::time::Instant::now();
        // Changes of one session made here queue instead of racing: each
        // starts from the state the previous one committed.
        let _turn = self.changing.lock(id).await;
        let mut expired = None;
        let mut races = 0;
        // A cached copy may be stale: it is only trusted to commit (the
        // engine re-checks the version). A refusal computed from it is
        // re-checked against a fresh read before it reaches the client.
        let mut use_cache = true;
        let server = Actor::server();
        let out = loop {
            let (s, from_cache) = match use_cache.then(|| self.engine.cached(id)).flatten() {
                Some(s) => (s, true),
                None => (
                    Arc::new(self.engine.load(id).await?.ok_or(ServiceError::NotFound)?),
                    false,
                ),
            };
            let now = now_ms();
            let t = match domain::apply(&s, &cmd, now) {
                Ok(t) => t,
                Err(_) if from_cache => {
                    use_cache = false;
                    continue;
                }
                Err(e) => return Err(ServiceError::Domain(e)),
            };
            let by = if t.preempted { &server } else { actor };
            match self.commit_transition(&t, now, by).await {
                Ok(state) => {
                    if t.expired_participant_id.is_some() {
                        expired = t.expired_participant_id.clone();
                    }
                    // A timeout that was due is committed on its own; every
                    // command but switch is then applied to the new state.
                    if t.preempted && !matches!(cmd, Command::Switch(_)) {
                        continue;
                    }
                    break Outcome {
                        state,
                        expired_participant_id: expired,
                    };
                }
                Err(EngineError::VersionMismatch) if races < self.config.max_retries => {
                    // The engine may have kept the state that won: retry from it.
                    races += 1;
                    use_cache = true;
                    self.metrics.commit_retries.inc();
                }
                Err(EngineError::NotFound) if from_cache => use_cache = false,
                Err(e) => return Err(e.into()),
            }
        };
        if matches!(cmd, Command::Switch(_)) {
            self.metrics
                .switch_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(out)
    }

    /// Deletes a session for a caller without credentials (tools, tests);
    /// the API uses [`Service::delete_by`].
    pub async fn delete(&self, id: Uuid) -> Result<bool, ServiceError> {
        self.delete_by(id, &Actor::anonymous()).await
    }

    /// Deletes a session, recording `actor`; true when it existed.
    pub async fn delete_by(&self, id: Uuid, actor: &Actor) -> Result<bool, ServiceError> {
        let now = now_ms();
        let update = Update {
            session_id: id,
            version: 0,
            kind: UpdateKind::Deleted,
            frames: vec![protocol::bare("SESSION_DELETED", id, now)],
        };
        let audit = self.engine.audit_enabled().then_some(AuditEvent {
            session_id: id,
            version: 0,
            event_type: EventKind::SessionDeleted,
            participant_id: None,
            time_remaining_ms: None,
            time_elapsed_ms: 0,
            at_ms: now,
            state: serde_json::Value::Null,
            actor: actor.clone(),
        });
        let existed = self.engine.delete(id, update, audit).await?;
        if let Some((_, h)) = self.timers.lock().remove(&id) {
            h.abort();
        }
        Ok(existed)
    }

    /// Subscribes to a session's updates on this instance.
    pub fn subscribe(&self, id: Uuid) -> Subscription {
        self.engine.hub().subscribe(id)
    }

    async fn commit_transition(
        self: &Arc<Self>,
        t: &domain::Transition,
        now: Millis,
        actor: &Actor,
    ) -> Result<SyncState, EngineError> {
        let state = SyncState::render(&t.next, now);
        let commit = self.build_commit(
            &t.next,
            &state,
            t.event,
            t.participant_id.as_deref(),
            t.charged_ms,
            t.expired_participant_id.as_deref().map(|p| (p, now)),
            now,
            actor,
        );
        let deadline = commit.deadline_ms;
        self.engine.commit(commit).await?;
        if t.expired_participant_id.is_some() {
            let action = match t.next.action_on_timeout.kind {
                TimeoutKind::EndSession => "end_session",
                TimeoutKind::SkipCycle => "skip_cycle",
                TimeoutKind::AutoAction => "auto_action",
            };
            self.metrics
                .timeouts_fired
                .with_label_values(&[action])
                .inc();
        }
        if let Some(d) = deadline {
            self.arm(t.next.session_id, t.next.version, d);
        }
        Ok(state)
    }

    #[allow(clippy::too_many_arguments)]
    fn build_commit<'a>(
        &self,
        session: &'a Session,
        state: &SyncState,
        event: EventKind,
        participant_id: Option<&str>,
        charged_ms: i64,
        expired: Option<(&str, Millis)>,
        now: Millis,
        actor: &Actor,
    ) -> Commit<'a> {
        let deadline_ms = session.deadline_ms();
        let expire_at_ms = (now + self.config.session_ttl_ms)
            .max(deadline_ms.map_or(0, |d| d + self.config.deadline_grace_ms));
        let update = self.engine.wants_frames(session.session_id).then(|| {
            let mut frames = vec![protocol::state_message("STATE_UPDATE", state)];
            if let Some((pid, at)) = expired {
                frames.push(protocol::time_expired(
                    session.session_id,
                    at,
                    Some(pid),
                    &session.action_on_timeout,
                ));
            }
            Update {
                session_id: session.session_id,
                version: session.version,
                kind: UpdateKind::State,
                frames,
            }
        });
        let audit = self.engine.audit_enabled().then(|| {
            let remaining = participant_id.and_then(|p| {
                state
                    .participants
                    .iter()
                    .find(|x| x.participant_id == p)
                    .map(|x| x.time_remaining_ms)
            });
            AuditEvent {
                session_id: session.session_id,
                version: session.version,
                event_type: event,
                participant_id: participant_id.map(str::to_string),
                time_remaining_ms: remaining,
                time_elapsed_ms: charged_ms,
                at_ms: now,
                state: serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
                actor: actor.clone(),
            }
        });
        Commit {
            session,
            deadline_ms,
            expire_at_ms,
            update,
            audit,
        }
    }

    /// Arms (or re-arms) the local timer of a session's deadline.
    pub fn arm(self: &Arc<Self>, id: Uuid, version: u64, deadline: Millis) {
        let mut timers = self.timers.lock();
        if let Some((v, h)) = timers.get(&id) {
            if *v > version {
                return;
            }
            h.abort();
        }
        let delay = Duration::from_millis((deadline - now_ms()).max(0) as u64);
        let me = Arc::clone(self);
        let handle = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.fire(id, version).await;
        });
        timers.insert(id, (version, handle.abort_handle()));
    }

    /// Applies the timeout of `version` if it is still due; a no-op when the
    /// session moved on (another commit, or another instance fired first).
    pub async fn fire(self: &Arc<Self>, id: Uuid, version: u64) {
        {
            let mut timers = self.timers.lock();
            if timers.get(&id).is_some_and(|(v, _)| *v == version) {
                timers.remove(&id);
            }
        }
        let s = match self.engine.load(id).await {
            Ok(Some(s)) if s.version == version => s,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "timeout load failed; the sweep will retry");
                return;
            }
        };
        let now = now_ms();
        match domain::apply(
            &s,
            &Command::Timeout {
                expected_version: version,
            },
            now,
        ) {
            Ok(t) => {
                let lateness = s.deadline_ms().map_or(0, |d| now - d).max(0);
                match self.commit_transition(&t, now, &Actor::server()).await {
                    Ok(_) => self
                        .metrics
                        .timeout_lateness_seconds
                        .observe(lateness as f64 / 1000.0),
                    Err(EngineError::VersionMismatch | EngineError::NotFound) => {}
                    Err(e) => {
                        tracing::warn!(session = %id, error = %e, "timeout commit failed; the sweep will retry")
                    }
                }
            }
            Err(DomainError::NotDue) => {
                // Fired early (clock adjustment): wait for the real deadline.
                if let Some(d) = s.deadline_ms() {
                    self.arm(id, version, d);
                }
            }
            Err(e) => tracing::warn!(session = %id, error = %e, "timeout refused"),
        }
    }

    /// One pass over the engine's due deadlines (recovers lost timers).
    pub async fn sweep_once(self: &Arc<Self>) -> usize {
        match self.engine.due(now_ms(), 1000).await {
            Ok(due) => {
                let n = due.len();
                for d in due {
                    self.fire(d.session_id, d.version).await;
                }
                n
            }
            Err(e) => {
                tracing::debug!(error = %e, "sweep failed");
                0
            }
        }
    }

    /// Runs the sweep loop until `shutdown`.
    pub fn spawn_sweeper(self: &Arc<Self>, shutdown: CancellationToken) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.config.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => { me.sweep_once().await; }
                }
            }
        });
    }
}
