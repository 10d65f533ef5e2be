//! Demo sessions (`DEMO=on`): the demo page keeps working when auth is on.
//! The page cannot hold an API key, so the server creates its chess clocks
//! itself and hands out the session tokens: a controller token for the
//! host (start, pause, resume), a participant token per seat (a seat can
//! only press its own clock, on its turn) and a viewer token for the
//! spectator link (it cannot press at all).
//!
//! - `GET /demo/config`: `{"auth": bool, "demo_sessions": bool}`, so the
//!   page knows whether to create through `/v1` (auth off), here, or not at all.
//! - `POST /demo/sessions`: the same body as `POST /v1/sessions` (same
//!   parser, same 400s), two participants; 201 `{data: {session, tokens}}`.
//!   The server picks the session id (the body's is ignored), so a client
//!   cannot aim at an existing session or play games with the slot count.
//!
//! Both are demo routes, like the page: outside `/v1`, not in the OpenAPI
//! document, and public. Abuse is bounded by [`DemoQuota`]: a rate per
//! client address and a cap on live demo sessions, both in memory and per
//! instance.

use super::AppState;
use super::body::JsonBody;
use super::error::{ApiError, ErrorBody, ErrorDetail};
use super::requests::CreateSessionBody;
use crate::clock::now_ms;
use crate::domain::{Millis, SyncState};
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// How long a demo session's tokens last (clamped to the minter's maximum):
/// long enough for a game, short enough that the live-session cap frees up.
pub const DEMO_TOKEN_TTL_SECONDS: u64 = 2 * 3600;

/// Seats of a demo clock: it is a two-player chess clock.
const DEMO_SEATS: usize = 2;

/// Live demo sessions checked per request when the cap is reached (oldest
/// first), so a full table costs a bounded number of store reads.
const SWEEP_BATCH: usize = 64;

/// Client addresses the rate limiter remembers at most; past that, new
/// addresses are refused until old entries lapse (memory stays bounded).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// A demo token's role (API.md's session-token roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoRole {
    /// The spectator link: reads only.
    Viewer,
    /// A seat: switches only while its own clock runs.
    Participant,
    /// The host: start, pause, resume, complete, cancel.
    Controller,
}

/// Signs the demo's session tokens: the auth module's HS256 minter, so the
/// tokens are exactly those `POST /v1/sessions/{id}/tokens` would give.
pub trait DemoMinter: Send + Sync {
    /// A token for `sid` with `role` (and `participant_id` for a seat),
    /// valid `ttl_seconds`; returns the token and its `exp` (Unix seconds).
    fn mint(
        &self,
        sid: Uuid,
        role: DemoRole,
        participant_id: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(String, u64), String>;

    /// The longest lifetime the minter accepts.
    fn max_ttl_seconds(&self) -> u64;
}

/// Limits of the demo endpoint (`DEMO_SESSIONS_PER_MINUTE`, `DEMO_MAX_SESSIONS`).
#[derive(Debug, Clone, Copy)]
pub struct DemoLimits {
    /// Demo sessions one client address may create per minute (also the burst).
    pub per_minute: u32,
    /// Demo sessions live at once on this instance.
    pub max_live: usize,
}

/// Why [`DemoQuota`] refused a demo session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This client address asks too often: 429 `RATE_LIMITED`.
    RateLimited {
        /// Seconds until it may ask again.
        retry_after_s: u64,
    },
    /// The cap on live demo sessions is reached: 429 `QUOTA_EXCEEDED`.
    Full {
        /// Seconds until the oldest one lapses.
        retry_after_s: u64,
    },
}

/// Admission of demo sessions, pure (time is passed in, in ms): a GCRA
/// rate limit per client address (a burst of `per_minute`, then one every
/// `60 s / per_minute`) and a cap on live sessions, each live until its
/// tokens expire or it is found gone or finished ([`DemoQuota::forget`]).
#[derive(Debug)]
pub struct DemoQuota {
    limits: DemoLimits,
    /// Per address: the theoretical arrival time of its next request (GCRA).
    tat: HashMap<IpAddr, i64>,
    /// Live demo sessions and when their tokens lapse, oldest first.
    live: VecDeque<(Uuid, i64)>,
}

/// Seconds to wait for `ms`, rounded up, at least 1 (`Retry-After` is an integer).
fn ceil_secs(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

/// The rate-limit key of a client: its address, IPv6 by /64 (one host's
/// usual allocation, so rotating addresses within it does not help).
pub fn client_key(addr: Option<IpAddr>) -> IpAddr {
    match addr {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
        Some(v4) => v4,
        // No peer address known: every such client shares one bucket.
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

impl DemoQuota {
    /// An empty quota.
    pub fn new(limits: DemoLimits) -> DemoQuota {
        DemoQuota {
            limits: DemoLimits {
                per_minute: limits.per_minute.max(1),
                max_live: limits.max_live.max(1),
            },
            tat: HashMap::new(),
            live: VecDeque::new(),
        }
    }

    /// Charges one request to `key` at `now`, or says when to retry.
    pub fn charge(&mut self, key: IpAddr, now: i64) -> Result<(), Refused> {
        let interval = 60_000 / i64::from(self.limits.per_minute);
        let tolerance = interval * (i64::from(self.limits.per_minute) - 1);
        if !self.tat.contains_key(&key) && self.tat.len() >= MAX_TRACKED_ADDRESSES {
            // An entry whose tat has passed is the same as no entry.
            self.tat.retain(|_, tat| *tat > now);
            if self.tat.len() >= MAX_TRACKED_ADDRESSES {
                return Err(Refused::RateLimited {
                    retry_after_s: ceil_secs(interval),
                });
            }
        }
        let tat = self.tat.get(&key).copied().unwrap_or(now).max(now);
        if tat - now > tolerance {
            return Err(Refused::RateLimited {
                retry_after_s: ceil_secs(tat - tolerance - now),
            });
        }
        self.tat.insert(key, tat + interval);
        Ok(())
    }

    /// Reserves a live slot for `id` until `until`, or says when one frees up.
    pub fn reserve(&mut self, id: Uuid, until: i64, now: i64) -> Result<(), Refused> {
        while self.live.front().is_some_and(|(_, u)| *u <= now) {
            self.live.pop_front();
        }
        if self.live.len() >= self.limits.max_live {
            let oldest = self.live.front().map_or(now, |(_, u)| *u);
            return Err(Refused::Full {
                retry_after_s: ceil_secs(oldest - now),
            });
        }
        // Kept sorted by lapse time: every reservation uses the same lifetime,
        // so this is a push at the back in practice.
        let at = self.live.partition_point(|(_, u)| *u <= until);
        self.live.insert(at, (id, until));
        Ok(())
    }

    /// Frees the slots of sessions that are gone or finished.
    pub fn forget(&mut self, ids: &[Uuid]) {
        self.live.retain(|(id, _)| !ids.contains(id));
    }

    /// The sessions holding a slot.
    pub fn live_ids(&self) -> Vec<Uuid> {
        self.live.iter().map(|(id, _)| *id).collect()
    }

    /// How many slots are held.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }
}

/// The demo endpoint's state: whether it is on, whether auth is on, the
/// minter and the quota.
pub struct DemoSessions {
    enabled: bool,
    auth_on: bool,
    minter: Option<Arc<dyn DemoMinter>>,
    quota: Mutex<DemoQuota>,
}

impl DemoSessions {
    /// `DEMO=off`: the config route still answers (the page needs it), the
    /// sessions route is a 404.
    pub fn off(auth_on: bool) -> DemoSessions {
        DemoSessions {
            enabled: false,
            auth_on,
            minter: None,
            quota: Mutex::new(DemoQuota::new(DemoLimits {
                per_minute: 1,
                max_live: 1,
            })),
        }
    }

    /// `DEMO=on`. With auth on, `minter` must be set: a demo without tokens
    /// could not be used, and startup refuses it before getting here.
    pub fn on(
        auth_on: bool,
        minter: Option<Arc<dyn DemoMinter>>,
        limits: DemoLimits,
    ) -> Result<DemoSessions, String> {
        if auth_on && minter.is_none() {
            return Err(
                "DEMO=on with auth on hands out session tokens and needs TOKEN_SECRET \
                 (or TOKEN_SECRET_FILE); set one, or leave the demo off"
                    .into(),
            );
        }
        Ok(DemoSessions {
            enabled: true,
            auth_on,
            minter,
            quota: Mutex::new(DemoQuota::new(limits)),
        })
    }

    fn quota(&self) -> std::sync::MutexGuard<'_, DemoQuota> {
        // The quota holds no invariant a panicking holder could break halfway.
        self.quota.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Routes: `GET /demo/config`, `POST /demo/sessions`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/demo/config", get(config))
        .route("/demo/sessions", post(create))
}

#[derive(Serialize)]
struct DemoConfig {
    auth: bool,
    demo_sessions: bool,
}

async fn config(State(app): State<AppState>) -> Response {
    let mut resp = Json(DemoConfig {
        auth: app.demo.auth_on,
        demo_sessions: app.demo.enabled,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The tokens of one demo session.
#[derive(Serialize)]
struct DemoTokens {
    /// Controller: the page that created the clock.
    host: String,
    /// Participant token per participant id.
    seats: HashMap<String, String>,
    /// Viewer: the spectator link.
    viewer: String,
    /// When they all expire (ISO time, like a minted token's `expires_at`).
    #[serde(serialize_with = "crate::domain::time::iso::serialize")]
    expires_at: Millis,
}

#[derive(Serialize)]
struct DemoCreated {
    session: SyncState,
    /// Null when auth is off (nothing to present).
    tokens: Option<DemoTokens>,
}

#[derive(Serialize)]
struct Data<T> {
    data: T,
}

fn too_many(code: &str, message: String, retry_after_s: u64) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message,
            details: None,
        },
    };
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    resp
}

fn refusal(r: Refused, max_live: usize) -> Response {
    match r {
        Refused::RateLimited { retry_after_s } => too_many(
            "RATE_LIMITED",
            "too many demo clocks from this address; retry later".into(),
            retry_after_s,
        ),
        Refused::Full { retry_after_s } => too_many(
            "QUOTA_EXCEEDED",
            format!("demo_sessions: {max_live} demo clocks are live, the most this server runs"),
            retry_after_s,
        ),
    }
}

async fn create(State(app): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let demo = &app.demo;
    if !demo.enabled {
        return Err(ApiError::NoRoute);
    }
    // The peer address, when the listener records it (axum's ConnectInfo).
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let JsonBody(body) = JsonBody::<CreateSessionBody>::from_request(req, &app).await?;
    let body = body.ok_or_else(|| ApiError::field("body", "a JSON object is required"))?;
    let mut spec = body.into_spec()?;
    spec.session_id = Uuid::new_v4();
    if spec.participants.len() != DEMO_SEATS {
        return Err(ApiError::field(
            "participants",
            format!("the demo clock has exactly {DEMO_SEATS} participants"),
        ));
    }
    let now = now_ms();
    let max_live = demo.quota().limits.max_live;
    if let Err(r) = demo.quota().charge(client_key(peer), now) {
        return Ok(refusal(r, max_live));
    }
    let ttl = demo.minter.as_ref().map_or(DEMO_TOKEN_TTL_SECONDS, |m| {
        DEMO_TOKEN_TTL_SECONDS.min(m.max_ttl_seconds())
    });
    let id = spec.session_id;
    let until = now + ttl as i64 * 1000;
    let reserved = demo.quota().reserve(id, until, now);
    if reserved.is_err() {
        // Full: free the slots of demo sessions already gone or finished, then retry once.
        let ids = demo.quota().live_ids();
        let mut dead = Vec::new();
        for sid in ids.into_iter().take(SWEEP_BATCH) {
            match app.service.get(sid).await {
                Ok(s) if !s.status.is_terminal() => {}
                _ => dead.push(sid),
            }
        }
        demo.quota().forget(&dead);
        if let Err(r) = demo.quota().reserve(id, until, now) {
            return Ok(refusal(r, max_live));
        }
    }
    let created = async {
        let state = app.service.create(spec).await?;
        let tokens = match &demo.minter {
            Some(m) => Some(mint_all(m.as_ref(), &state, ttl).map_err(ApiError::Internal)?),
            None => None,
        };
        Ok::<_, ApiError>(DemoCreated {
            session: state,
            tokens,
        })
    }
    .await;
    match created {
        Ok(out) => Ok((StatusCode::CREATED, Json(Data { data: out })).into_response()),
        Err(e) => {
            demo.quota().forget(&[id]);
            Err(e)
        }
    }
}

fn mint_all(m: &dyn DemoMinter, state: &SyncState, ttl: u64) -> Result<DemoTokens, String> {
    let sid = state.session_id;
    let (host, expires_at) = m.mint(sid, DemoRole::Controller, None, ttl)?;
    let (viewer, _) = m.mint(sid, DemoRole::Viewer, None, ttl)?;
    let mut seats = HashMap::new();
    for p in &state.participants {
        let (t, _) = m.mint(sid, DemoRole::Participant, Some(&p.participant_id), ttl)?;
        seats.insert(p.participant_id.clone(), t);
    }
    Ok(DemoTokens {
        host,
        seats,
        viewer,
        expires_at: i64::try_from(expires_at)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    })
}

/// Demo tokens are minted with the server's own HS256 secret.
impl DemoMinter for crate::auth::Auth {
    fn mint(
        &self,
        sid: Uuid,
        role: DemoRole,
        participant_id: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(String, u64), String> {
        use crate::auth::token::Role;
        let minter = self
            .minter()
            .ok_or("minting demo tokens needs TOKEN_SECRET")?;
        let role = match role {
            DemoRole::Viewer => Role::Viewer,
            DemoRole::Participant => Role::Participant,
            DemoRole::Controller => Role::Controller,
        };
        minter
            .mint(
                sid,
                role,
                participant_id.map(str::to_string),
                Some(ttl_seconds),
                crate::auth::now_seconds(),
            )
            .map(|m| (m.token, m.exp))
            .map_err(|e| e.message)
    }

    fn max_ttl_seconds(&self) -> u64 {
        self.minter().map_or(0, |m| m.max_ttl_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(per_minute: u32, max_live: usize) -> DemoLimits {
        DemoLimits {
            per_minute,
            max_live,
        }
    }

    #[test]
    fn a_burst_of_per_minute_then_one_per_interval_with_retry_after() {
        let mut q = DemoQuota::new(limits(3, 100));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(q.charge(a, 0), Ok(()));
        }
        assert_eq!(
            q.charge(a, 0),
            Err(Refused::RateLimited { retry_after_s: 20 })
        );
        assert_eq!(q.charge(b, 0), Ok(()), "another address has its own budget");
        assert!(q.charge(a, 19_999).is_err());
        assert_eq!(q.charge(a, 20_000), Ok(()));
        assert!(q.charge(a, 20_001).is_err());
    }

    #[test]
    fn the_live_cap_refuses_until_the_oldest_lapses_or_is_forgotten() {
        let mut q = DemoQuota::new(limits(100, 2));
        let (x, y, z) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(q.reserve(x, 10_000, 0), Ok(()));
        assert_eq!(q.reserve(y, 12_000, 1_000), Ok(()));
        assert_eq!(
            q.reserve(z, 13_000, 2_500),
            Err(Refused::Full { retry_after_s: 8 })
        );
        q.forget(&[y]);
        assert_eq!(q.reserve(z, 13_000, 2_500), Ok(()));
        assert_eq!(q.live_ids(), vec![x, z]);
        assert!(q.reserve(y, 20_000, 9_999).is_err());
        assert_eq!(q.reserve(y, 20_000, 10_000), Ok(()), "x lapsed");
        assert_eq!(q.live_count(), 2);
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64_and_mapped_v4_is_v4() {
        let k = |s: &str| client_key(Some(s.parse().unwrap()));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:bbbb::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.7"), k("192.0.2.7"));
        assert_eq!(client_key(None), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn the_address_table_is_bounded() {
        let mut q = DemoQuota::new(limits(1, 10));
        for i in 0..MAX_TRACKED_ADDRESSES as u32 {
            assert!(q.charge(IpAddr::V4(Ipv4Addr::from(i)), 0).is_ok());
        }
        let newcomer = IpAddr::V4(Ipv4Addr::from(u32::MAX));
        assert!(q.charge(newcomer, 0).is_err(), "full table, nothing lapsed");
        assert!(q.charge(newcomer, 60_000).is_ok(), "old entries lapsed");
        assert!(q.tat.len() <= MAX_TRACKED_ADDRESSES);
    }

    proptest! {
        /// GCRA's promise: over any span T, one address gets at most
        /// per_minute + T / interval admissions.
        #[test]
        fn no_address_exceeds_burst_plus_rate(
            per_minute in 1u32..20,
            steps in prop::collection::vec((0u8..3, 0i64..5_000), 1..300),
        ) {
            let mut q = DemoQuota::new(limits(per_minute, 1));
            let interval = 60_000 / i64::from(per_minute);
            let mut t = 0;
            let mut admitted: HashMap<u8, Vec<i64>> = HashMap::new();
            for (who, dt) in steps {
                t += dt;
                if q.charge(IpAddr::V4(Ipv4Addr::new(10, 0, 0, who)), t).is_ok() {
                    admitted.entry(who).or_default().push(t);
                }
            }
            for times in admitted.values() {
                for (i, start) in times.iter().enumerate() {
                    for (j, end) in times.iter().enumerate().skip(i) {
                        let n = (j - i + 1) as i64;
                        prop_assert!(n <= i64::from(per_minute) + (end - start) / interval);
                    }
                }
            }
        }

        /// The cap is never exceeded, and a refusal happens only at the cap.
        #[test]
        fn live_sessions_never_exceed_the_cap(
            max_live in 1usize..10,
            steps in prop::collection::vec((0i64..3_000, 1i64..20_000, any::<bool>()), 1..200),
        ) {
            let mut q = DemoQuota::new(limits(1, max_live));
            let mut t = 0;
            for (dt, ttl, forget_oldest) in steps {
                t += dt;
                let id = Uuid::new_v4();
                let before = q.live.iter().filter(|(_, u)| *u > t).count();
                match q.reserve(id, t + ttl, t) {
                    Ok(()) => prop_assert!(before < max_live),
                    Err(Refused::Full { retry_after_s }) => {
                        prop_assert_eq!(before, max_live);
                        prop_assert!(retry_after_s >= 1);
                    }
                    Err(other) => prop_assert!(false, "unexpected {:?}", other),
                }
                prop_assert!(q.live_count() <= max_live);
                if forget_oldest && let Some(first) = q.live_ids().first().copied() {
                    q.forget(&[first]);
                }
            }
        }
    }
}
