//! The state snapshot an audit event carries, as JSON text.
//!
//! The hot path serializes the rendered state once; the outbox stores that
//! text inside the event, the consumer reads it back without building a
//! tree, and PostgreSQL parses it once, when it casts it to `jsonb`. A
//! `serde_json::Value` here cost the server a tree build, a re-serialization,
//! a re-parse and a deep clone per event (docs/audit.md, profile).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Valid JSON text of a state snapshot (an object), embedded verbatim when
/// the event is serialized and validated, not parsed into a tree, when it
/// is read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateJson(Box<RawValue>);

impl StateJson {
    /// Serializes `value` once; `None` if it cannot be serialized (a map
    /// with non-string keys, which the rendered state never has).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Option<StateJson> {
        serde_json::value::to_raw_value(value).ok().map(StateJson)
    }

    /// Validates `text` as JSON (for tests and tools).
    pub fn parse(text: &str) -> Result<StateJson, serde_json::Error> {
        RawValue::from_string(text.to_string()).map(StateJson)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The snapshot as a tree (tests and tools; the audit path never needs one).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// Same text, same snapshot (the service serializes deterministically).
impl PartialEq for StateJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_verbatim_inside_an_enclosing_document() {
        let s = StateJson::of(&serde_json::json!({"a": [1, {"b": "\u{0}x"}]})).unwrap();
        #[derive(Serialize, Deserialize)]
        struct W {
            state: Option<StateJson>,
        }
        let text = serde_json::to_string(&W {
            state: Some(s.clone()),
        })
        .unwrap();
        let back: W = serde_json::from_str(&text).unwrap();
        assert_eq!(back.state, Some(s));
        let none: W = serde_json::from_str(r#"{"state":null}"#).unwrap();
        assert!(none.state.is_none());
        assert!(StateJson::parse("{").is_err());
    }
}
