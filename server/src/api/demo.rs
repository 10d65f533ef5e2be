//! The demo page at `/`: a two-player chess clock built on the TypeScript
//! SDK (source in `sdk/demo/`, built by `make demo` into
//! `server/assets/demo/`). The files are compiled into the binary so that
//! `make run` shows a working page with nothing else installed or running.
//!
//! Caching: the HTML is `no-cache` (it names the current asset versions);
//! the script and stylesheet are referenced with a content hash in `?v=`, so
//! those URLs are immutable and cached for a year. A request without `?v=`
//! gets `no-cache` instead.

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The page; it references the assets below by content hash.
const INDEX_HTML: &str = include_str!("../../assets/demo/index.html");
/// The bundled SDK plus the page logic (ES module, minified).
const DEMO_JS: &str = include_str!("../../assets/demo/demo.js");
/// The stylesheet.
const DEMO_CSS: &str = include_str!("../../assets/demo/demo.css");
/// The icon, also answered at `/favicon.ico` so browsers do not log a 404.
const FAVICON_SVG: &str = include_str!("../../assets/demo/favicon.svg");

/// Same-origin only: the page talks to this server over fetch and WebSocket.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// Routes for the demo page: `/`, `/demo`, `/demo/`, `/demo/demo.js`, `/demo/demo.css`,
/// `/demo/favicon.svg` and `/favicon.ico`.
/// Generic over the router state so it merges into any `Router<S>`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/", get(index))
        .route("/demo/index.html", get(index))
        .route("/demo/demo.js", get(script))
        .route("/demo/demo.css", get(stylesheet))
        .route("/demo/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

fn respond(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Immutable caching only for the hashed URLs the page itself uses.
fn asset_cache(query: Option<&str>) -> &'static str {
    let versioned =
        query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("v=") && kv.len() > 2));
    if versioned { IMMUTABLE } else { NO_CACHE }
}

async fn index() -> Response {
    let mut resp = respond(INDEX_HTML, "text/html; charset=utf-8", NO_CACHE);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn script(RawQuery(q): RawQuery) -> Response {
    respond(
        DEMO_JS,
        "text/javascript; charset=utf-8",
        asset_cache(q.as_deref()),
    )
}

async fn stylesheet(RawQuery(q): RawQuery) -> Response {
    respond(
        DEMO_CSS,
        "text/css; charset=utf-8",
        asset_cache(q.as_deref()),
    )
}

async fn icon(RawQuery(q): RawQuery) -> Response {
    respond(FAVICON_SVG, "image/svg+xml", asset_cache(q.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn index_is_html_and_not_cached() {
        for path in ["/", "/demo/", "/demo/index.html"] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header_of(&r, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            assert_eq!(header_of(&r, header::CACHE_CONTROL), "no-cache");
            assert!(header_of(&r, header::CONTENT_SECURITY_POLICY).contains("connect-src 'self'"));
            let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
            let html = std::str::from_utf8(&body).unwrap();
            assert!(
                html.contains("/demo/demo.js?v="),
                "the page references the hashed script"
            );
            assert!(html.contains("/demo/demo.css?v="));
        }
    }

    #[tokio::test]
    async fn assets_have_types_and_immutable_cache_when_versioned() {
        let js = get("/demo/demo.js?v=abc123").await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            header_of(&js, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header_of(&js, header::CACHE_CONTROL), IMMUTABLE);
        assert_eq!(header_of(&js, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let body = to_bytes(js.into_body(), 1 << 22).await.unwrap();
        assert_eq!(body.len(), DEMO_JS.len());

        let css = get("/demo/demo.css?v=1").await;
        assert_eq!(
            header_of(&css, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
        assert_eq!(header_of(&css, header::CACHE_CONTROL), IMMUTABLE);

        for path in ["/favicon.ico", "/demo/favicon.svg?v=9"] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&r, header::CONTENT_TYPE), "image/svg+xml");
        }

        let unversioned = get("/demo/demo.js").await;
        assert_eq!(header_of(&unversioned, header::CACHE_CONTROL), "no-cache");
    }

    #[tokio::test]
    async fn demo_without_slash_redirects() {
        let r = get("/demo").await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header_of(&r, header::LOCATION), "/demo/");
    }
}
