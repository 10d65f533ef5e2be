//! The request bodies of the REST API as typed wire formats. One definition
//! per body feeds both the parser (serde, read by [`super::body`]) and the
//! OpenAPI document (utoipa): the schema attributes state what the server
//! enforces, and the tests in `api::doc_check` hold the document to the
//! parser.
//!
//! Each field is read by a small wire type ([`Integer`], [`Text`], …) whose
//! wrong-type error is the contract's message (`must be an integer`); the
//! path of the field (`participants[1].total_time_ms`) comes from
//! `serde_path_to_error`. An absent field and a `null` one mean the same.
//! Unknown fields are ignored. What is left — required fields here; ranges,
//! the id charset, uniqueness and mode rules in `domain::spec` — is checked
//! on the typed values.

use crate::domain::{
    CreateSpec, FieldError, ParticipantDraft, SessionDraft, SwitchArgs, SyncMode, TimeoutAction,
    TimeoutKind,
};
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer, StrDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;
use uuid::Uuid;

/// How one wire type reads a JSON value. Each method accepts one JSON shape;
/// the defaults refuse it with [`Shape::EXPECTED`], so a value of the wrong
/// type gets the contract's message instead of serde's
/// `invalid type: …, expected …`.
trait Shape: Sized {
    /// What the value must be, e.g. `must be an integer`.
    const EXPECTED: &'static str;

    fn accept_bool<E: de::Error>(_: bool) -> Result<Self, E> {
        Err(E::custom(Self::EXPECTED))
    }
    fn accept_i64<E: de::Error>(_: i64) -> Result<Self, E> {
        Err(E::custom(Self::EXPECTED))
    }
    fn accept_u64<E: de::Error>(_: u64) -> Result<Self, E> {
        Err(E::custom(Self::EXPECTED))
    }
    fn accept_str<E: de::Error>(_: &str) -> Result<Self, E> {
        Err(E::custom(Self::EXPECTED))
    }
    fn accept_seq<'de, A: SeqAccess<'de>>(_: A) -> Result<Self, A::Error> {
        Err(de::Error::custom(Self::EXPECTED))
    }
    fn accept_map<'de, A: MapAccess<'de>>(_: A) -> Result<Self, A::Error> {
        Err(de::Error::custom(Self::EXPECTED))
    }
}

/// The one visitor behind every [`Shape`].
struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Shape> Visitor<'de> for ShapeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        T::accept_bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::accept_i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::accept_u64(v)
    }
    /// JSON Schema counts a number with a zero fraction (`2000.0`) as an
    /// integer, and the document says `integer`: such a number is read as
    /// the integer it is (`as` saturates, so a huge one stays out of every
    /// range). Any other fraction is refused.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if !v.is_finite() || v.fract() != 0.0 {
            return Err(E::custom(T::EXPECTED));
        }
        if v >= 0.0 {
            T::accept_u64(v as u64)
        } else {
            T::accept_i64(v as i64)
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::accept_str(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Err(E::custom(T::EXPECTED))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::accept_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::accept_map(map)
    }
}

/// `impl Deserialize` through the type's [`Shape`].
macro_rules! deserialize_by_shape {
    ($($t:ident $(<$g:ident>)?),* $(,)?) => {$(
        impl<'de $(, $g: de::DeserializeOwned)?> Deserialize<'de> for $t $(<$g>)? {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ShapeVisitor::<Self>(PhantomData))
            }
        }
    )*};
}

deserialize_by_shape!(
    Integer,
    Text,
    SessionUuid,
    Mode,
    Kind,
    Flag,
    Metadata,
    Participants,
    ParticipantRef,
    Version,
    Obj<T>,
    Root<T>,
);

/// A JSON integer. One beyond `i64` saturates, so it is out of every range
/// rather than wrapped into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Integer(pub i64);

impl Shape for Integer {
    const EXPECTED: &'static str = "must be an integer";
    fn accept_i64<E: de::Error>(v: i64) -> Result<Self, E> {
        Ok(Integer(v))
    }
    fn accept_u64<E: de::Error>(v: u64) -> Result<Self, E> {
        Ok(Integer(i64::try_from(v).unwrap_or(i64::MAX)))
    }
}

/// A JSON string (ids: their charset is a domain rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl Shape for Text {
    const EXPECTED: &'static str = "must be a string";
    fn accept_str<E: de::Error>(v: &str) -> Result<Self, E> {
        Ok(Text(v.to_string()))
    }
}

/// A session id: a UUID string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUuid(pub Uuid);

impl Shape for SessionUuid {
    const EXPECTED: &'static str = "must be a UUID string";
    fn accept_str<E: de::Error>(v: &str) -> Result<Self, E> {
        Uuid::parse_str(v)
            .map(SessionUuid)
            .map_err(|_| E::custom(Self::EXPECTED))
    }
}

/// Reads a unit enum of the domain from its snake_case name.
fn named<T: de::DeserializeOwned, E: de::Error>(v: &str, expected: &str) -> Result<T, E> {
    T::deserialize(StrDeserializer::<de::value::Error>::new(v)).map_err(|_| E::custom(expected))
}

/// `sync_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub SyncMode);

impl Shape for Mode {
    const EXPECTED: &'static str =
        "must be one of per_participant, per_cycle, per_group, global, count_up";
    fn accept_str<E: de::Error>(v: &str) -> Result<Self, E> {
        named(v, Self::EXPECTED).map(Mode)
    }
}

/// `action_on_timeout.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind(pub TimeoutKind);

impl Shape for Kind {
    const EXPECTED: &'static str = "must be one of end_session, skip_cycle, auto_action";
    fn accept_str<E: de::Error>(v: &str) -> Result<Self, E> {
        named(v, Self::EXPECTED).map(Kind)
    }
}

/// A JSON boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl Shape for Flag {
    const EXPECTED: &'static str = "must be a boolean";
    fn accept_bool<E: de::Error>(v: bool) -> Result<Self, E> {
        Ok(Flag(v))
    }
}

/// `metadata`: any JSON object (its size is a domain rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata(pub Map<String, Value>);

impl Shape for Metadata {
    const EXPECTED: &'static str = "must be an object";
    fn accept_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Map::deserialize(MapAccessDeserializer::new(map)).map(Metadata)
    }
}

/// `participants`: an array of participant objects (how many is a domain
/// rule).
#[derive(Debug)]
pub struct Participants(pub Vec<CreateParticipantBody>);

impl Shape for Participants {
    const EXPECTED: &'static str = "must be an array";
    fn accept_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Vec::<Obj<CreateParticipantBody>>::deserialize(SeqAccessDeserializer::new(seq))
            .map(|ps| Participants(ps.into_iter().map(|Obj(p)| p).collect()))
    }
}

/// A participant id named by a switch: 1..=128 bytes (whether it names a
/// participant is the domain's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRef(pub String);

impl Shape for ParticipantRef {
    const EXPECTED: &'static str = "must be a participant id string";
    fn accept_str<E: de::Error>(v: &str) -> Result<Self, E> {
        if v.is_empty() || v.len() > crate::domain::spec::MAX_ID_LEN {
            return Err(E::custom(Self::EXPECTED));
        }
        Ok(ParticipantRef(v.to_string()))
    }
}

/// `expected_version`: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub u64);

impl Shape for Version {
    const EXPECTED: &'static str = "must be a positive integer";
    fn accept_u64<E: de::Error>(v: u64) -> Result<Self, E> {
        if v == 0 {
            return Err(E::custom(Self::EXPECTED));
        }
        Ok(Version(v))
    }
    fn accept_i64<E: de::Error>(v: i64) -> Result<Self, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(Self::EXPECTED))
            .and_then(Self::accept_u64)
    }
}

/// A nested object of type `T`: anything but a JSON object is refused with
/// `must be an object` at its own path (a derived struct alone would also
/// take an array, field by field).
#[derive(Debug)]
pub struct Obj<T>(pub T);

impl<T: de::DeserializeOwned> Shape for Obj<T> {
    const EXPECTED: &'static str = "must be an object";
    fn accept_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
    }
}

/// A whole request body of type `T`: anything but a JSON object (`null`
/// too) is refused with `must be a JSON object`, reported on `body`.
#[derive(Debug)]
pub struct Root<T>(pub T);

impl<T: de::DeserializeOwned> Shape for Root<T> {
    const EXPECTED: &'static str = "must be a JSON object";
    fn accept_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Root)
    }
}

fn required<T>(v: Option<T>, field: impl Into<String>) -> Result<T, FieldError> {
    v.ok_or_else(|| FieldError::new(field, "is required"))
}

/// Body of `POST /v1/sessions`. Absent and `null` fields take their
/// defaults; the required ones are refused with `is required`. Unknown
/// fields are ignored; a field given twice in one object is refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateSessionBody {
    /// UUID chosen by the client.
    #[schema(value_type = Uuid, required = true)]
    pub session_id: Option<SessionUuid>,
    /// Mode.
    #[schema(value_type = SyncMode, required = true)]
    pub sync_mode: Option<Mode>,
    /// Participants in rotation order, with unique `participant_id`s and
    /// `participant_index`es.
    #[schema(value_type = Vec<CreateParticipantBody>, required = true, min_items = 1, max_items = 1000)]
    pub participants: Option<Participants>,
    /// Session budget (global mode's clock) and every participant's default
    /// bank.
    #[schema(value_type = i64, required = true, minimum = 1000, maximum = 86400000)]
    pub total_time_ms: Option<Integer>,
    /// Budget of every turn; required in per_cycle.
    #[schema(value_type = Option<i64>, minimum = 1000, maximum = 86400000)]
    pub time_per_cycle_ms: Option<Integer>,
    /// Added to a bank at the end of its turn (default 0).
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 60000)]
    pub increment_ms: Option<Integer>,
    /// Bank cap after increment; count_up expires here.
    #[schema(value_type = Option<i64>, minimum = 1000, maximum = 86400000)]
    pub max_time_ms: Option<Integer>,
    /// What happens at zero (default `{"type": "end_session"}`).
    #[schema(value_type = Option<TimeoutActionBody>)]
    pub action_on_timeout: Option<Obj<TimeoutActionBody>>,
    /// With auto_action, the server also advances the turn (default false).
    #[schema(value_type = Option<bool>)]
    pub auto_advance: Option<Flag>,
    /// Client data, echoed back; at most 16384 bytes serialized (default
    /// `{}`).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// A participant in a create body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateParticipantBody {
    /// 1..=128 characters of `[A-Za-z0-9._:@-]`.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:@-]+$")]
    pub participant_id: Option<Text>,
    /// Rotation position (default: position in the array).
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_u64)]
    pub participant_index: Option<Integer>,
    /// Group id, same charset as ids; required in per_group.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:@-]+$")]
    pub group_id: Option<Text>,
    /// Own bank (default: the session's `total_time_ms`).
    #[schema(value_type = Option<i64>, minimum = 1000, maximum = 86400000)]
    pub total_time_ms: Option<Integer>,
}

/// `action_on_timeout` of a create body: the `type` the server acts on plus
/// any extra fields, echoed back untouched.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TimeoutActionBody {
    /// The behaviour the server applies.
    #[serde(rename = "type")]
    #[schema(value_type = TimeoutKind, required = true)]
    pub kind: Option<Kind>,
    /// Client-defined extras such as `action` or `penalty`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl CreateParticipantBody {
    fn into_draft(self, i: usize) -> Result<ParticipantDraft, FieldError> {
        Ok(ParticipantDraft {
            participant_id: required(
                self.participant_id,
                format!("participants[{i}].participant_id"),
            )?
            .0,
            participant_index: self.participant_index.map(|n| n.0),
            group_id: self.group_id.map(|g| g.0),
            total_time_ms: self.total_time_ms.map(|n| n.0),
        })
    }
}

impl CreateSessionBody {
    /// The typed draft the domain validates; refuses a missing required
    /// field.
    pub fn into_draft(self) -> Result<SessionDraft, FieldError> {
        let session_id = required(self.session_id, "session_id")?.0;
        let sync_mode = required(self.sync_mode, "sync_mode")?.0;
        let total_time_ms = required(self.total_time_ms, "total_time_ms")?.0;
        let action_on_timeout = match self.action_on_timeout {
            None => None,
            Some(Obj(a)) => Some(TimeoutAction {
                kind: required(a.kind, "action_on_timeout.type")?.0,
                extra: a.extra,
            }),
        };
        let participants = required(self.participants, "participants")?
            .0
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.into_draft(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SessionDraft {
            session_id,
            sync_mode,
            participants,
            total_time_ms,
            time_per_cycle_ms: self.time_per_cycle_ms.map(|n| n.0),
            increment_ms: self.increment_ms.map(|n| n.0),
            max_time_ms: self.max_time_ms.map(|n| n.0),
            action_on_timeout,
            auto_advance: self.auto_advance.map(|f| f.0),
            metadata: self.metadata.map(|m| m.0),
        })
    }

    /// The checked spec: presence here, the rules in the domain.
    pub fn into_spec(self) -> Result<CreateSpec, FieldError> {
        CreateSpec::validate(self.into_draft()?)
    }
}

impl CreateSpec {
    /// Parses and checks a create body held as JSON exactly as
    /// `POST /v1/sessions` does. For tests and tools; it lives here, with
    /// the wire format, because the domain knows no JSON bodies.
    pub fn from_json(body: &Value) -> Result<CreateSpec, FieldError> {
        super::body::from_value::<CreateSessionBody>(body)?.into_spec()
    }
}

/// Body of `POST /v1/sessions/{id}/switch`; every field optional, and the
/// body itself may be absent or empty.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct SwitchBody {
    /// Jump to this participant (400 if it is not in the session).
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128)]
    pub next_participant_id: Option<ParticipantRef>,
    /// Refuse with 409 CONFLICT unless the live version matches (ext).
    #[schema(value_type = Option<u64>, minimum = 1)]
    pub expected_version: Option<Version>,
    /// Refuse with 409 CONFLICT unless this participant is active (ext).
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128)]
    pub current_participant_id: Option<ParticipantRef>,
}

impl From<SwitchBody> for SwitchArgs {
    fn from(b: SwitchBody) -> Self {
        SwitchArgs {
            next_participant_id: b.next_participant_id.map(|p| p.0),
            expected_version: b.expected_version.map(|v| v.0),
            current_participant_id: b.current_participant_id.map(|p| p.0),
            turn_of: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::body::from_value;
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "session_id": "550e8400-e29b-41d4-a716-446655440000",
            "sync_mode": "per_participant",
            "total_time_ms": 60000,
            "participants": [{"participant_id": "a"}, {"participant_id": "b"}]
        })
    }

    fn refused(v: Value) -> FieldError {
        CreateSpec::from_json(&v).unwrap_err()
    }

    /// JSON Schema's `integer` includes `60000.0`; the document says
    /// `integer`, so the parser takes it (schemathesis sends such numbers).
    #[test]
    fn a_number_with_a_zero_fraction_is_an_integer() {
        let mut v = base();
        v["total_time_ms"] = json!(60000.0);
        v["participants"][1]["participant_index"] = json!(5.0);
        let spec = CreateSpec::from_json(&v).expect("integral floats are integers");
        assert_eq!(spec.total_time_ms, 60000);
        assert_eq!(spec.participants[1].participant_index, 5);
        v["total_time_ms"] = json!(1e300);
        assert_eq!(
            refused(v),
            FieldError::new("total_time_ms", "must be between 1000 and 86400000")
        );
        let sw = from_value::<SwitchBody>(&json!({"expected_version": 3.0})).expect("3.0 is 3");
        assert_eq!(sw.expected_version, Some(Version(3)));
    }

    #[test]
    fn wrong_types_name_the_field_with_the_contract_message() {
        let cases = [
            (
                "/participants/1/total_time_ms",
                json!("ten"),
                "participants[1].total_time_ms",
                "must be an integer",
            ),
            (
                "/total_time_ms",
                json!(1.5),
                "total_time_ms",
                "must be an integer",
            ),
            (
                "/session_id",
                json!("nope"),
                "session_id",
                "must be a UUID string",
            ),
            (
                "/session_id",
                json!(7),
                "session_id",
                "must be a UUID string",
            ),
            ("/sync_mode", json!("bogus"), "sync_mode", Mode::EXPECTED),
            (
                "/participants",
                json!("a,b"),
                "participants",
                "must be an array",
            ),
            (
                "/participants/0",
                json!("a"),
                "participants[0]",
                "must be an object",
            ),
            (
                "/participants/0/participant_id",
                json!(5),
                "participants[0].participant_id",
                "must be a string",
            ),
            (
                "/auto_advance",
                json!("yes"),
                "auto_advance",
                "must be a boolean",
            ),
            ("/metadata", json!([1]), "metadata", "must be an object"),
            (
                "/action_on_timeout",
                json!("end_session"),
                "action_on_timeout",
                "must be an object",
            ),
            (
                "/action_on_timeout",
                json!({"type": "explode"}),
                "action_on_timeout.type",
                Kind::EXPECTED,
            ),
        ];
        for (ptr, value, field, message) in cases {
            let mut v = base();
            let (parent, key) = ptr.rsplit_once('/').unwrap_or_else(|| panic!("{ptr}"));
            match v.pointer_mut(parent) {
                Some(Value::Object(o)) => {
                    o.insert(key.to_string(), value);
                }
                Some(Value::Array(a)) => a[key.parse::<usize>().unwrap()] = value,
                _ => panic!("{ptr}"),
            }
            assert_eq!(refused(v), FieldError::new(field, message), "{ptr}");
        }
    }

    #[test]
    fn missing_and_null_are_the_same() {
        for key in ["session_id", "sync_mode", "total_time_ms", "participants"] {
            let mut v = base();
            v.as_object_mut().unwrap().remove(key);
            assert_eq!(refused(v), FieldError::new(key, "is required"));
            let mut v = base();
            v[key] = Value::Null;
            assert_eq!(refused(v), FieldError::new(key, "is required"));
        }
        let mut v = base();
        v["action_on_timeout"] = json!({"action": "fold"});
        assert_eq!(
            refused(v),
            FieldError::new("action_on_timeout.type", "is required")
        );
        let mut v = base();
        v["participants"][1] = json!({"total_time_ms": 5000});
        assert_eq!(
            refused(v),
            FieldError::new("participants[1].participant_id", "is required")
        );
        let mut v = base();
        v["max_time_ms"] = Value::Null;
        v["metadata"] = Value::Null;
        assert!(CreateSpec::from_json(&v).is_ok());
    }

    #[test]
    fn a_key_given_twice_is_refused_naming_its_object() {
        let raw = br#"{"total_time_ms": 5000, "total_time_ms": 6000}"#;
        let e = super::super::body::parse::<CreateSessionBody>(raw).unwrap_err();
        assert_eq!(
            e,
            FieldError::new("body", "duplicate field `total_time_ms`")
        );
        let raw = br#"{"participants": [{"participant_id": "a", "participant_id": "b"}]}"#;
        let e = super::super::body::parse::<CreateSessionBody>(raw).unwrap_err();
        assert_eq!(e.field, "participants[0]");
    }

    #[test]
    fn huge_integers_are_out_of_range_not_wrapped() {
        let mut v = base();
        v["total_time_ms"] = json!(u64::MAX);
        assert_eq!(refused(v).field, "total_time_ms");
    }

    #[test]
    fn unknown_fields_are_ignored_and_action_extras_kept() {
        let mut v = base();
        v["favourite_colour"] = json!("blue");
        v["participants"][0]["nickname"] = json!("al");
        v["action_on_timeout"] = json!({"type": "auto_action", "action": "fold"});
        let s = CreateSpec::from_json(&v).unwrap();
        assert_eq!(s.action_on_timeout.kind, TimeoutKind::AutoAction);
        assert_eq!(
            s.action_on_timeout.extra.get("action"),
            Some(&json!("fold"))
        );
        assert!(!s.action_on_timeout.extra.contains_key("type"));
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused_on_body() {
        for v in [json!([]), Value::Null, json!(42), json!("s"), json!(["x"])] {
            let e = CreateSpec::from_json(&v).unwrap_err();
            assert_eq!(e, FieldError::new("body", "must be a JSON object"));
            let e = from_value::<SwitchBody>(&v).unwrap_err();
            assert_eq!(e, FieldError::new("body", "must be a JSON object"));
        }
    }

    #[test]
    fn switch_fields() {
        let args: SwitchArgs = from_value::<SwitchBody>(
            &json!({"next_participant_id": "c", "expected_version": 3, "x": 1}),
        )
        .unwrap()
        .into();
        assert_eq!(args.next_participant_id.as_deref(), Some("c"));
        assert_eq!(args.expected_version, Some(3));
        for (v, field, msg) in [
            (
                json!({"next_participant_id": 5}),
                "next_participant_id",
                ParticipantRef::EXPECTED,
            ),
            (
                json!({"next_participant_id": ""}),
                "next_participant_id",
                ParticipantRef::EXPECTED,
            ),
            (
                json!({"current_participant_id": "x".repeat(129)}),
                "current_participant_id",
                ParticipantRef::EXPECTED,
            ),
            (
                json!({"expected_version": 0}),
                "expected_version",
                Version::EXPECTED,
            ),
            (
                json!({"expected_version": -1}),
                "expected_version",
                Version::EXPECTED,
            ),
            (
                json!({"expected_version": 2.5}),
                "expected_version",
                Version::EXPECTED,
            ),
            (
                json!({"expected_version": "two"}),
                "expected_version",
                Version::EXPECTED,
            ),
        ] {
            assert_eq!(
                from_value::<SwitchBody>(&v).unwrap_err(),
                FieldError::new(field, msg)
            );
        }
    }
}
