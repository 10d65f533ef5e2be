//! How the engine's values look inside Redis: the stored session, the
//! audit payload of an outbox entry, and an update on a pub/sub channel.
//! Only this engine writes and reads them; the key layout and the state
//! prefix are in [`keys`](super::keys).

use super::keys;
use crate::domain::Session;
use crate::engine::{AuditEvent, EngineError, Update, UpdateKind};
use bytes::Bytes;
use uuid::Uuid;

/// A session as stored: the `<version>.<incarnation>|` prefix, then JSON.
pub(super) fn encode_session(session: &Session) -> Result<Bytes, EngineError> {
    let json = serde_json::to_vec(session).map_err(|e| EngineError::Corrupt(e.to_string()))?;
    Ok(Bytes::from(keys::encode_state(
        session.version,
        session.incarnation,
        &json,
    )))
}

/// A stored value as a session, its incarnation taken from the prefix.
pub(super) fn decode_session(id: Uuid, raw: &[u8]) -> Result<Session, EngineError> {
    let stored = keys::decode_state(raw).ok_or_else(|| corrupt(&id, "bad stored value"))?;
    let mut s: Session = serde_json::from_slice(stored.json).map_err(|e| corrupt(&id, e))?;
    if s.version != stored.version {
        return Err(corrupt(&id, "version prefix disagrees with the state"));
    }
    s.incarnation = stored.incarnation;
    Ok(s)
}

fn corrupt(id: &Uuid, what: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(format!("session {id}: {what}"))
}

/// The outbox entry's `e` field (JSON); empty when there is no audit row,
/// which tells the scripts not to XADD.
pub(super) fn encode_audit(audit: Option<&AuditEvent>) -> Result<String, EngineError> {
    match audit {
        Some(a) => serde_json::to_string(a).map_err(|e| EngineError::Corrupt(e.to_string())),
        None => Ok(String::new()),
    }
}

/// What [`encode_audit`] wrote.
pub(super) fn decode_audit(payload: &str) -> Result<AuditEvent, serde_json::Error> {
    serde_json::from_str(payload)
}

/// Encodes an update for a pub/sub channel: a header line `version kind`,
/// then one frame per line (JSON frames never contain a raw newline).
pub(super) fn encode_update(update: &Update) -> Bytes {
    let kind = match update.kind {
        UpdateKind::State => 's',
        UpdateKind::Resync => 'r',
        UpdateKind::Deleted => 'd',
    };
    let mut out = Vec::with_capacity(update.frames.iter().map(|f| f.len() + 1).sum::<usize>() + 24);
    out.extend_from_slice(format!("{} {}", update.version, kind).as_bytes());
    for f in &update.frames {
        out.push(b'\n');
        out.extend_from_slice(f);
    }
    Bytes::from(out)
}

/// Decodes what [`encode_update`] wrote; `None` for garbage.
pub(super) fn decode_update(session_id: Uuid, raw: &[u8]) -> Option<Update> {
    let mut lines = raw.split(|b| *b == b'\n');
    let header = std::str::from_utf8(lines.next()?).ok()?;
    let (v, k) = header.split_once(' ')?;
    let kind = match k {
        "s" => UpdateKind::State,
        "r" => UpdateKind::Resync,
        "d" => UpdateKind::Deleted,
        _ => return None,
    };
    Some(Update {
        session_id,
        version: v.parse().ok()?,
        kind,
        frames: lines.map(Bytes::copy_from_slice).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_encoding_round_trips() {
        let id = Uuid::new_v4();
        let u = Update {
            session_id: id,
            version: 42,
            kind: UpdateKind::State,
            frames: vec![
                Bytes::from_static(b"{\"a\":\"x\\ny\"}"),
                Bytes::from_static(b"{}"),
            ],
        };
        assert_eq!(decode_update(id, &encode_update(&u)), Some(u));
        assert_eq!(decode_update(id, b"garbage"), None);
    }
}
