//! Who made a change: recorded with every audit event so the trail answers
//! "who pressed the clock", not just "what happened". The API layer builds
//! one from the request's credential; the service records `server` for the
//! timeouts it applies itself.

use serde::{Deserialize, Serialize};

/// The kind of credential behind a change (API.md, "Authentication").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A trusted backend holding an API key.
    ApiKey,
    /// An end-user device holding a session token.
    Token,
    /// The server itself (timeouts).
    Server,
    /// No credential: auth is off (or the event predates access control).
    #[default]
    Anonymous,
}

/// The audit trail's `actor` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    /// What kind of credential it was.
    pub kind: ActorKind,
    /// The API key's name (never its secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The token's subject (participant id), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The token's role (`viewer` | `participant` | `controller`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Actor {
    /// A backend identified by its API key's name.
    pub fn api_key(name: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::ApiKey,
            name: Some(name.into()),
            ..Actor::default()
        }
    }

    /// A session token's holder.
    pub fn token(role: &str, sub: Option<String>) -> Self {
        Actor {
            kind: ActorKind::Token,
            sub,
            role: Some(role.to_owned()),
            ..Actor::default()
        }
    }

    /// A caller without credentials (auth off).
    pub fn anonymous() -> Self {
        Actor::default()
    }

    /// The server acting by itself (a clock that ran out).
    pub fn server() -> Self {
        Actor {
            kind: ActorKind::Server,
            ..Actor::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_as_the_contract_says() {
        assert_eq!(
            serde_json::to_value(Actor::api_key("backend")).unwrap(),
            json!({"kind": "api_key", "name": "backend"})
        );
        assert_eq!(
            serde_json::to_value(Actor::token("participant", Some("p1".into()))).unwrap(),
            json!({"kind": "token", "sub": "p1", "role": "participant"})
        );
        assert_eq!(
            serde_json::to_value(Actor::server()).unwrap(),
            json!({"kind": "server"})
        );
    }

    #[test]
    fn an_event_without_actor_reads_as_anonymous() {
        let a: Actor = serde_json::from_value(json!({"kind": "anonymous"})).unwrap();
        assert_eq!(a, Actor::anonymous());
    }
}
