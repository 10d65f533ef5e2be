//! The HTTP listener: accepts connections up to a cap, serves each with
//! hyper's HTTP/1 (with its header-read timer, which also closes idle
//! keep-alive connections) and WebSocket upgrades, and on shutdown stops
//! accepting and drains for at most the grace period, whatever clients do.
//!
//! `axum::serve` builds hyper without a timer, so its header timeout is off
//! and a half-sent request blocks its graceful shutdown forever; hence this
//! loop over `hyper-util`'s building blocks.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How the listener treats connections.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Time to send a request's headers (and to start the next one on an
    /// idle keep-alive connection).
    pub header_timeout: Duration,
    /// Open connections at once; more are closed on accept.
    pub max_connections: usize,
    /// How long shutdown waits for open connections before dropping them.
    pub grace: Duration,
}

/// Descriptors kept free of the connection caps (logs, Redis, PostgreSQL,
/// the listener itself).
const RESERVED_FDS: u64 = 128;

/// Raises the soft descriptor limit to the hard one and returns it: the
/// connection caps must fit under it, or an fd-exhaustion attack stops
/// `accept` (and `/health`) for everyone.
pub fn descriptor_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    // rlim_t is u64 on Linux but not on every platform libc supports.
    #[allow(clippy::unnecessary_cast)]
    Some(lim.rlim_cur as u64)
}

/// The caps (HTTP connections, WebSockets) as configured, shrunk in
/// proportion when together they would not fit under `fds`.
pub fn fit_caps(http: u64, ws: u64, fds: Option<u64>) -> (u64, u64) {
    let Some(fds) = fds else {
        return (http, ws);
    };
    let room = fds.saturating_sub(RESERVED_FDS).max(2);
    if http + ws <= room {
        return (http, ws);
    }
    let h = (room * http / (http + ws)).max(1);
    (h, (room - h).max(1))
}

/// Serves `router` on `listener` until `stop` resolves, then drains open
/// connections for at most `cfg.grace`. Accept errors (EMFILE under an fd
/// attack) pause accepting briefly instead of ending the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: ListenConfig,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    // Each connection is told to finish (hyper's graceful shutdown: the
    // request in flight completes, an idle one closes) and tracked, so the
    // drain can be awaited with a deadline.
    let closing = CancellationToken::new();
    let conns = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing accepts for 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(%peer, "connection cap reached; closing the new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer address, for the rate limiter (`ConnectInfo` as axum's own
        // `into_make_service_with_connect_info` would give it).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        ));
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let closing = closing.clone();
        conns.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = closing.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    closing.cancel();
    conns.close();
    if tokio::time::timeout(cfg.grace, conns.wait()).await.is_err() {
        tracing::warn!(
            open = conns.len(),
            "some HTTP connections did not finish within the grace period; dropping them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fit_caps;

    #[test]
    fn caps_fit_under_the_descriptor_limit() {
        assert_eq!(fit_caps(10_000, 10_000, None), (10_000, 10_000));
        assert_eq!(fit_caps(100, 100, Some(20_000)), (100, 100));
        let (h, w) = fit_caps(10_000, 10_000, Some(1024));
        assert!(h + w <= 1024 - 128 && h > 0 && w > 0, "{h} {w}");
        let (h, w) = fit_caps(10, 10, Some(3));
        assert!(h >= 1 && w >= 1);
    }
}
