//! Timestamp formatting: the wire contract wants ISO-8601 UTC with a `Z` and
//! exactly millisecond precision, which strict client parsers check.

use super::Millis;

/// Formats epoch milliseconds as `2026-11-25T14:30:00.000Z`.
pub fn iso_millis(ms: Millis) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        // Same shape as the strftime pattern %Y-%m-%dT%H:%M:%S%.3fZ, without
        // parsing a format string on every call (it showed in profiles).
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// Serde helpers for `Option<Millis>` rendered as ISO strings.
pub mod opt_iso {
    use serde::Serializer;

    /// Writes `None` as JSON null and `Some(ms)` as an ISO string.
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(ms) => s.serialize_str(&super::iso_millis(*ms)),
            None => s.serialize_none(),
        }
    }
}

/// Serde helper for `Millis` rendered as an ISO string.
pub mod iso {
    use serde::Serializer;

    /// Writes epoch milliseconds as an ISO string.
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::iso_millis(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_764_081_000_123), "2025-11-25T14:30:00.123Z");
    }
}
