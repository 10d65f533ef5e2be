//! Client JSON the audit trail can store: what the API accepts must reach
//! PostgreSQL, so a value that cannot is refused up front (400 naming the
//! field) instead of being dropped later by the audit consumer.
//!
//! Two things PostgreSQL or the audit encoding cannot carry:
//! - a NUL character (`\u0000`) in a string or an object key: `jsonb`
//!   rejects it, which would poison every event of the session;
//! - nesting deeper than [`MAX_JSON_DEPTH`]: the client value is wrapped
//!   (state, event) on its way to PostgreSQL, and serde_json reads at most
//!   128 levels.

use super::spec::FieldError;
use serde_json::Value;

/// Deepest nesting of a client JSON value (`metadata`, the extras of
/// `action_on_timeout`): a value counts 1, each array or object level
/// inside it one more. Far below the 128 levels JSON readers accept, so the
/// wrapped audit event stays readable.
pub const MAX_JSON_DEPTH: usize = 32;

/// Checks `value`, sent as `field`, for what the audit trail cannot store;
/// the error names the offending member (`metadata.notes[2]`).
pub fn check_storable(field: &str, value: &Value) -> Result<(), FieldError> {
    // Iterative: a hostile value must not exhaust the stack here either.
    let mut todo: Vec<(String, &Value, usize)> = vec![(field.to_string(), value, 1)];
    while let Some((path, v, depth)) = todo.pop() {
        if depth > MAX_JSON_DEPTH {
            return Err(FieldError::new(
                field,
                format!("must nest at most {MAX_JSON_DEPTH} levels deep"),
            ));
        }
        match v {
            Value::String(s) if s.contains('\0') => return Err(nul(&path)),
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate().rev() {
                    todo.push((format!("{path}[{i}]"), x, depth + 1));
                }
            }
            Value::Object(map) => {
                for (k, x) in map.iter() {
                    if k.contains('\0') {
                        return Err(FieldError::new(
                            path,
                            "must not have keys containing NUL (\\u0000) characters",
                        ));
                    }
                    todo.push((format!("{path}.{k}"), x, depth + 1));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn nul(path: &str) -> FieldError {
    FieldError::new(path, "must not contain NUL (\\u0000) characters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        (1..levels).fold(json!(1), |v, _| json!([v]))
    }

    #[test]
    fn names_the_member_holding_a_nul() {
        let e = check_storable("metadata", &json!({"a": {"b": ["ok", "x\u{0}y"]}})).unwrap_err();
        assert_eq!(e.field, "metadata.a.b[1]");
        let e = check_storable("metadata", &json!({"k\u{0}": 1})).unwrap_err();
        assert_eq!(e.field, "metadata");
        assert!(e.message.contains("keys"));
    }

    #[test]
    fn depth_limit_is_inclusive() {
        assert!(check_storable("metadata", &nested(MAX_JSON_DEPTH)).is_ok());
        let e = check_storable("metadata", &nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert_eq!(e.field, "metadata");
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Accepted exactly when no string or key holds a NUL (these values
        /// are never deeper than the limit).
        #[test]
        fn accepts_exactly_the_nul_free_values(v in any_json()) {
            let text = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(check_storable("metadata", &v).is_ok(), !text.contains("\\u0000"));
        }
    }
}
