//! REST client helpers: every call returns status, headers and the body
//! parsed as JSON (or `Null` with the raw text kept), so a failed assertion
//! can print exactly what the server said.

use crate::checks::{check_state, check_switch_result};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// One HTTP exchange, kept whole for assertion messages.
pub struct Resp {
    /// e.g. `POST /v1/sessions`.
    pub request: String,
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body parsed as JSON; `Null` when it is not JSON.
    pub body: Value,
    /// Raw body text.
    pub text: String,
}

impl fmt::Display for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = shorten(&self.text, 2000);
        write!(f, "{} -> {} {}", self.request, self.status, text)
    }
}

impl Resp {
    /// Asserts the status code.
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {self}");
        self
    }

    /// Asserts a success status and the `{"data": ...}` wrapper; returns `data`.
    pub fn data(&self, status: u16) -> &Value {
        self.expect_status(status);
        let obj = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("success body is not a JSON object: {self}"));
        assert!(
            obj.contains_key("data"),
            "success body lacks `data`: {self}"
        );
        assert!(
            obj.keys().all(|k| k == "data" || k == "next_cursor"),
            "success body has keys besides `data`: {self}"
        );
        &self.body["data"]
    }

    /// Asserts an error response: status, `error.code`, a string message, and
    /// `details` absent or an object. Returns the `error` object.
    pub fn error(&self, status: u16, code: &str) -> &Value {
        self.expect_status(status);
        let err = &self.body["error"];
        assert!(
            err.is_object(),
            "error body lacks an `error` object: {self}"
        );
        assert_eq!(err["code"], code, "error code: {self}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error.message must be a non-empty string: {self}"
        );
        assert!(
            err.get("details").is_none_or(|d| d.is_object()),
            "error.details must be an object when present: {self}"
        );
        err
    }

    /// Asserts a 400 `VALIDATION_ERROR` naming `field` in `details.field`.
    pub fn validation(&self, field: &str) -> &Value {
        let err = self.error(400, "VALIDATION_ERROR");
        assert_eq!(err["details"]["field"], field, "details.field: {self}");
        err
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A REST client bound to one server.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// A client for `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Api {
        Self::build(base, HeaderMap::new())
    }

    fn build(base: &str, headers: HeaderMap) -> Api {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .default_headers(headers)
            .build()
            .unwrap_or_else(|e| panic!("reqwest client: {e}"));
        Api {
            client,
            base: base.to_string(),
        }
    }

    /// The same server, every request sending `Authorization: {value}`
    /// verbatim (malformed values included).
    pub fn with_authorization(&self, value: &str) -> Api {
        let mut headers = HeaderMap::new();
        let v = reqwest::header::HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("Authorization value {value:?}: {e}"));
        headers.insert(reqwest::header::AUTHORIZATION, v);
        Self::build(&self.base, headers)
    }

    /// The same server, every request sending `Authorization: Bearer {credential}`.
    pub fn with_bearer(&self, credential: &str) -> Api {
        self.with_authorization(&format!("Bearer {credential}"))
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, request: String, rb: reqwest::RequestBuilder) -> Resp {
        let res = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{request}: transport error: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res
            .text()
            .await
            .unwrap_or_else(|e| panic!("{request}: reading body: {e}"));
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            request,
            status,
            headers,
            body,
            text,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        let url = format!("{}{path}", self.base);
        self.send(format!("GET {path}"), self.client.get(url)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        let url = format!("{}{path}", self.base);
        let shown = shorten(&body.to_string(), 300);
        self.send(
            format!("POST {path} {shown}"),
            self.client.post(url).json(body),
        )
        .await
    }

    /// `POST path` with no body and no content type.
    pub async fn post_empty(&self, path: &str) -> Resp {
        let url = format!("{}{path}", self.base);
        self.send(format!("POST {path} (no body)"), self.client.post(url))
            .await
    }

    /// `POST path` with raw bytes and an optional content type.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut shown = String::from_utf8_lossy(&body).into_owned();
        if shown.len() > 120 {
            let cut = (0..=120)
                .rev()
                .find(|&i| shown.is_char_boundary(i))
                .unwrap_or(0);
            shown.truncate(cut);
            shown = format!("{shown}… ({} bytes)", body.len());
        }
        let mut rb = self.client.post(url).body(body);
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        self.send(format!("POST {path} [{content_type:?}] {shown}"), rb)
            .await
    }

    /// `POST path` over a raw TCP connection, writing `body` while reading
    /// the response concurrently. For oversized bodies: a server may answer
    /// 413 and close before reading everything, and a client that only reads
    /// after writing (reqwest) would then see a broken pipe instead of the
    /// answer. Returns status and body text (`Connection: close` is sent).
    pub async fn post_raw_streaming(&self, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://").to_string();
        let request = format!(
            "POST {path} [{content_type}] ({} bytes, streamed)",
            body.len()
        );
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("{request}: connect: {e}"));
        let (mut rd, mut wr) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let writer = tokio::spawn(async move {
            if wr.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for chunk in body.chunks(16 * 1024) {
                if wr.write_all(chunk).await.is_err() {
                    return;
                }
            }
            let _ = wr.flush().await;
        });
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let read = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        writer.abort();
        assert!(read.is_ok(), "{request}: no end of response within 15 s");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body_text) = text.split_once("\r\n\r\n").unwrap_or_else(|| {
            panic!(
                "{request}: no complete HTTP response (got {} bytes: {text:?})",
                raw.len()
            )
        });
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("{request}: bad status line in {head:?}"));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body_text = if chunked {
            dechunk(body_text)
        } else {
            body_text.to_string()
        };
        let mut headers = HeaderMap::new();
        for line in head.lines().skip(1) {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
        Resp {
            request,
            status,
            headers,
            body: serde_json::from_str(&body_text).unwrap_or(Value::Null),
            text: body_text,
        }
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Resp {
        let url = format!("{}{path}", self.base);
        self.send(format!("DELETE {path}"), self.client.delete(url))
            .await
    }

    /// Creates a session; asserts 201 and a well-formed state.
    pub async fn create(&self, body: &Value) -> Value {
        let r = self.post("/v1/sessions", body).await;
        let state = r.data(201).clone();
        check_state(&state);
        state
    }

    /// `GET /v1/sessions/{id}`; asserts 200 and a well-formed state.
    pub async fn state(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/sessions/{id}")).await;
        let state = r.data(200).clone();
        check_state(&state);
        state
    }

    /// `POST /v1/sessions/{id}/{verb}` with no body (start, pause, resume,
    /// complete, cancel); asserts 200 and a well-formed state.
    pub async fn act(&self, id: &str, verb: &str) -> Value {
        let r = self.post_empty(&format!("/v1/sessions/{id}/{verb}")).await;
        let state = r.data(200).clone();
        check_state(&state);
        state
    }

    /// Creates and starts a session; returns the state after start.
    pub async fn create_started(&self, body: &Value) -> Value {
        let created = self.create(body).await;
        let id = created["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.act(&id, "start").await
    }

    /// `POST /v1/sessions/{id}/switch` with `body`; asserts 200 and a
    /// well-formed SwitchResult.
    pub async fn switch(&self, id: &str, body: &Value) -> Value {
        let r = self.post(&format!("/v1/sessions/{id}/switch"), body).await;
        let res = r.data(200).clone();
        check_switch_result(&res);
        res
    }
}

/// Decodes an HTTP/1.1 chunked body (enough for short error bodies).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary, marked with `…`.
fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &s[..cut])
}
