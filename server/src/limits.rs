//! Rate limits: who a request counts against ([`RateKey`]), how the client
//! address is found ([`client_address`]), and the keyed GCRA limiters
//! (`governor`) that answer "may it pass, or how long until it may".
//!
//! Every limit is configurable and off at 0; the defaults are far above
//! what a chess or quiz client (or the game server behind one address that
//! drives many of them) sends. Memory is bounded: keys that have not been
//! seen for a full refill period are dropped by [`RateLimits::spawn_cleanup`].

use axum::http::{HeaderMap, HeaderName};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What one request counts against. The access-control layer adds a
/// `Credential` arm (API key name, or a token's `sid`+`sub`) that replaces
/// `Address` for authenticated requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An anonymous client, by address.
    Address(IpAddr),
    /// Commands on one session, whoever sends them.
    Session(Uuid),
}

/// Crossing a limit: retry after this long (at least one second on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for the `Retry-After` header, rounded up, at least 1.
    pub fn seconds(self) -> u64 {
        self.0.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// `n` per second with a burst of `2n`; `None` when `n` is 0 (off).
pub fn per_second(n: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(n)?;
    let burst = NonZeroU32::new(n.saturating_mul(2)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// The configured limits of the HTTP API.
#[derive(Debug, Clone, Default)]
pub struct RateLimitConfig {
    /// Requests per second per client address (0: off).
    pub per_address: u32,
    /// Commands per second per session (0: off).
    pub per_session: u32,
    /// Header a trusted proxy sets to the client address (none: the peer).
    pub trusted_proxy_header: Option<HeaderName>,
    /// Proxies appending to that header: the client is this many from the right.
    pub trusted_proxy_hops: usize,
}

/// The keyed limiters, one per kind of [`RateKey`].
pub struct RateLimits {
    addresses: Option<DefaultKeyedRateLimiter<RateKey>>,
    sessions: Option<DefaultKeyedRateLimiter<RateKey>>,
    /// How the client address is found.
    pub config: RateLimitConfig,
}

impl RateLimits {
    /// Limiters for `config` (a kind set to 0 has none).
    pub fn new(config: RateLimitConfig) -> Arc<Self> {
        Arc::new(RateLimits {
            addresses: per_second(config.per_address).map(DefaultKeyedRateLimiter::keyed),
            sessions: per_second(config.per_session).map(DefaultKeyedRateLimiter::keyed),
            config,
        })
    }

    /// Counts one request against `key`: Ok, or how long until it may pass.
    pub fn check(&self, key: &RateKey) -> Result<(), RetryAfter> {
        let limiter = match key {
            RateKey::Address(_) => &self.addresses,
            RateKey::Session(_) => &self.sessions,
        };
        match limiter {
            Some(l) => l
                .check_key(key)
                .map_err(|not_until| RetryAfter(not_until.wait_time_from(Instant::now()))),
            None => Ok(()),
        }
    }

    /// Keys currently tracked (for tests and the cleanup's log).
    pub fn tracked(&self) -> usize {
        [&self.addresses, &self.sessions]
            .into_iter()
            .flatten()
            .map(|l| l.len())
            .sum()
    }

    /// Every `every`, forgets keys whose bucket is full again (they would
    /// pass anyway), so the maps hold only recently active clients.
    pub fn spawn_cleanup(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        for l in [&me.addresses, &me.sessions].into_iter().flatten() {
                            l.retain_recent();
                            l.shrink_to_fit();
                        }
                    }
                }
            }
        });
    }
}

/// The client's address: the peer's, unless a trusted proxy header is
/// configured, in which case the entry `hops` places from the right of the
/// comma-separated list (each trusted proxy appends the address it saw, so
/// entries further left are whatever the client claimed). A missing or
/// unreadable header falls back to the peer.
pub fn client_address(
    headers: &HeaderMap,
    peer: IpAddr,
    header: Option<&HeaderName>,
    hops: usize,
) -> IpAddr {
    let Some(name) = header else {
        return peer;
    };
    let entries: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    entries
        .len()
        .checked_sub(hops.max(1))
        .and_then(|i| entries.get(i))
        .and_then(|s| s.parse().ok())
        .unwrap_or(peer)
}

/// One WebSocket's message budget: a direct limiter plus how many messages
/// in a row were refused, so persistent abuse can be told from a burst.
pub struct MessageBudget {
    limiter: Option<DefaultDirectRateLimiter>,
    refused_in_a_row: u32,
}

/// What to do with a client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Handle it.
    Yes,
    /// Answer ERROR `RATE_LIMITED`.
    Refuse,
    /// Too many refusals in a row: close with 1008.
    Close,
}

/// Refusals in a row after which a WebSocket is closed.
pub const REFUSALS_BEFORE_CLOSE: u32 = 20;

impl MessageBudget {
    /// `per_second` messages (burst twice that); 0 is unlimited.
    pub fn new(per_second_limit: u32) -> Self {
        MessageBudget {
            limiter: per_second(per_second_limit).map(DefaultDirectRateLimiter::direct),
            refused_in_a_row: 0,
        }
    }

    /// Counts one client message.
    pub fn admit(&mut self) -> Admit {
        match &self.limiter {
            Some(l) if l.check().is_err() => {
                self.refused_in_a_row += 1;
                if self.refused_in_a_row >= REFUSALS_BEFORE_CLOSE {
                    Admit::Close
                } else {
                    Admit::Refuse
                }
            }
            _ => {
                self.refused_in_a_row = 0;
                Admit::Yes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn the_peer_is_the_client_unless_a_header_is_trusted() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = xff("1.2.3.4, 5.6.7.8");
        assert_eq!(client_address(&h, peer, None, 1), peer);
        let name = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            client_address(&h, peer, Some(&name), 1),
            "5.6.7.8".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(&h, peer, Some(&name), 2),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // Fewer entries than hops, junk, or no header: the peer.
        assert_eq!(client_address(&h, peer, Some(&name), 3), peer);
        assert_eq!(client_address(&xff("junk"), peer, Some(&name), 1), peer);
        assert_eq!(
            client_address(&HeaderMap::new(), peer, Some(&name), 1),
            peer
        );
    }

    #[test]
    fn a_key_past_its_burst_is_refused_with_a_wait() {
        let limits = RateLimits::new(RateLimitConfig {
            per_session: 1,
            ..RateLimitConfig::default()
        });
        let key = RateKey::Session(Uuid::new_v4());
        assert!(limits.check(&key).is_ok());
        assert!(limits.check(&key).is_ok());
        let wait = limits.check(&key).unwrap_err();
        assert!(wait.0 <= Duration::from_secs(1) && wait.seconds() == 1);
        // Another key, and a kind that is off, are unaffected.
        assert!(limits.check(&RateKey::Session(Uuid::new_v4())).is_ok());
        for _ in 0..100 {
            assert!(
                limits
                    .check(&RateKey::Address("127.0.0.1".parse().unwrap()))
                    .is_ok()
            );
        }
    }

    #[test]
    fn persistent_abuse_closes_a_burst_does_not() {
        let mut b = MessageBudget::new(1);
        assert_eq!(b.admit(), Admit::Yes);
        assert_eq!(b.admit(), Admit::Yes);
        let verdicts: Vec<Admit> = (0..REFUSALS_BEFORE_CLOSE).map(|_| b.admit()).collect();
        assert!(
            verdicts[..verdicts.len() - 1]
                .iter()
                .all(|v| *v == Admit::Refuse)
        );
        assert_eq!(verdicts.last(), Some(&Admit::Close));
        let mut off = MessageBudget::new(0);
        assert!((0..1000).all(|_| off.admit() == Admit::Yes));
    }
}
