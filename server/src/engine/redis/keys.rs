//! The Redis key layout: every key one commit touches shares one hash tag.
//!
//! A session belongs to one of [`BUCKETS`] buckets (a stable hash of its
//! id). The bucket is the hash tag, so a session's state, its bucket's
//! deadline index, its bucket's outbox stream and its update channel all
//! live in one Redis Cluster slot and one Lua script can touch them
//! atomically. Tagging by bucket rather than by session keeps the deadline
//! index to [`BUCKETS`] sorted sets that a sweep can scan, instead of one
//! per session.
//!
//! | what            | key                          | type   |
//! |-----------------|------------------------------|--------|
//! | session state   | `sk:{b<k>}:s:<uuid>`         | string `<version>.<incarnation>\|<json>`, PX TTL |
//! | deadline index  | `sk:{b<k>}:d`                | zset, member `<uuid>:<version>`, score deadline ms |
//! | audit outbox    | `sk:{b<k>}:o`                | stream, field `e` = audit event JSON |
//! | update channel  | `sk:{b<k>}:u:<uuid>`         | sharded pub/sub channel |
//!
//! Changing [`BUCKETS`] or [`bucket`] moves every session to another key:
//! both are part of the storage format.

use uuid::Uuid;

/// Number of buckets. Part of the storage format (see the module doc):
/// 256 spreads evenly over the 16384 cluster slots while a sweep stays 256
/// cheap range queries.
pub const BUCKETS: u32 = 256;

/// The bucket of a session: FNV-1a over the id's bytes, so that ids a client
/// chose (not only random v4 ids) spread evenly too.
pub fn bucket(id: &Uuid) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(BUCKETS)) as u32
}

/// The state key of a session.
pub fn state_key(id: &Uuid) -> String {
    format!("sk:{{b{}}}:s:{id}", bucket(id))
}

/// The deadline index (sorted set) of a bucket.
pub fn deadlines_key(bucket: u32) -> String {
    format!("sk:{{b{bucket}}}:d")
}

/// The audit outbox stream of a bucket (read by the audit writer).
pub fn outbox_key(bucket: u32) -> String {
    format!("sk:{{b{bucket}}}:o")
}

/// Every outbox stream, for a consumer that reads them all.
pub fn outbox_keys() -> Vec<String> {
    (0..BUCKETS).map(outbox_key).collect()
}

/// The sharded pub/sub channel of a session's updates.
pub fn channel(id: &Uuid) -> String {
    format!("sk:{{b{}}}:u:{id}", bucket(id))
}

/// The session of an update channel; `None` for foreign channels.
pub fn parse_channel(channel: &str) -> Option<Uuid> {
    let rest = channel.strip_prefix("sk:{b")?;
    let (_, id) = rest.split_once("}:u:")?;
    Uuid::parse_str(id).ok()
}

/// The deadline index member of one version of a session: carrying the
/// version lets a sweep fire exactly that version without a read.
pub fn member(id: &Uuid, version: u64) -> String {
    format!("{id}:{version}")
}

/// Inverse of [`member`].
pub fn parse_member(m: &str) -> Option<(Uuid, u64)> {
    let (id, v) = m.rsplit_once(':')?;
    Some((Uuid::parse_str(id).ok()?, v.parse().ok()?))
}

/// How many leading bytes of a stored value always hold its CAS token and
/// the `|` after it (what the scripts' `GETRANGE 0 31` reads).
pub const HEAD_BYTES: usize = 32;

/// The stored value: the CAS token first (see [`cas_token`]), so a script
/// can compare it with a short GETRANGE and no JSON parsing.
pub fn encode_state(version: u64, incarnation: u32, json: &[u8]) -> Vec<u8> {
    let token = cas_token(version, incarnation);
    let mut out = Vec::with_capacity(json.len() + token.len() + 1);
    out.extend_from_slice(token.as_bytes());
    out.push(b'|');
    out.extend_from_slice(json);
    out
}

/// What a commit compares before it writes: `<version>.<incarnation hex>`.
/// The version alone would let a copy of a deleted session commit over a
/// new session with the same id that reached the same version (ABA); the
/// incarnation, random per create, tells the two lives apart. Incarnation 0
/// (values written before incarnations existed) is the bare version.
pub fn cas_token(version: u64, incarnation: u32) -> String {
    if incarnation == 0 {
        version.to_string()
    } else {
        format!("{version}.{incarnation:08x}")
    }
}

/// A stored value split into version, incarnation and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    /// The version of the session the JSON holds.
    pub version: u64,
    /// Which create the session comes from (0: none recorded).
    pub incarnation: u32,
    /// The session JSON.
    pub json: &'a [u8],
}

/// Splits a stored value; `None` for garbage. Accepts the bare-version
/// prefix of older values as incarnation 0.
pub fn decode_state(raw: &[u8]) -> Option<Stored<'_>> {
    let bar = raw.iter().position(|b| *b == b'|')?;
    let head = std::str::from_utf8(&raw[..bar]).ok()?;
    let (version, incarnation) = match head.split_once('.') {
        Some((v, i)) if i.len() == 8 => (v, u32::from_str_radix(i, 16).ok()?),
        Some(_) => return None,
        None => (head, 0),
    };
    if !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Stored {
        version: version.parse().ok()?,
        incarnation,
        json: &raw[bar + 1..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::util::redis_keyslot;

    #[test]
    fn every_key_of_a_commit_shares_one_slot() {
        for _ in 0..1000 {
            let id = Uuid::new_v4();
            let b = bucket(&id);
            let slot = redis_keyslot(state_key(&id).as_bytes());
            assert_eq!(redis_keyslot(deadlines_key(b).as_bytes()), slot);
            assert_eq!(redis_keyslot(outbox_key(b).as_bytes()), slot);
            assert_eq!(redis_keyslot(channel(&id).as_bytes()), slot);
        }
    }

    #[test]
    fn buckets_spread_over_three_primaries() {
        // `redis-cli --cluster create` with 3 primaries splits the slots in
        // three ranges; each should own roughly a third of the buckets.
        let mut per_primary = [0u32; 3];
        for b in 0..BUCKETS {
            let slot = u32::from(redis_keyslot(deadlines_key(b).as_bytes()));
            per_primary[(slot * 3 / 16384) as usize] += 1;
        }
        for n in per_primary {
            assert!((60..=110).contains(&n), "uneven spread: {per_primary:?}");
        }
        let distinct: std::collections::HashSet<u16> = (0..BUCKETS)
            .map(|b| redis_keyslot(deadlines_key(b).as_bytes()))
            .collect();
        assert!(
            distinct.len() > 240,
            "buckets collide on slots: {}",
            distinct.len()
        );
    }

    #[test]
    fn random_ids_fill_buckets_evenly() {
        let mut counts = vec![0u32; BUCKETS as usize];
        for _ in 0..256_000 {
            counts[bucket(&Uuid::new_v4()) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 800 && *max < 1200, "min {min} max {max}");
        // Sequential ids (a client counting) spread too.
        let mut seq = vec![0u32; BUCKETS as usize];
        for i in 0..25_600u128 {
            seq[bucket(&Uuid::from_u128(i)) as usize] += 1;
        }
        assert!(seq.iter().all(|c| *c > 50), "sequential ids cluster");
    }

    #[test]
    fn bucket_is_stable_for_an_id() {
        let id = Uuid::new_v4();
        assert_eq!(
            bucket(&id),
            bucket(&Uuid::parse_str(&id.to_string()).unwrap())
        );
        assert!(bucket(&id) < BUCKETS);
    }

    #[test]
    fn channels_and_members_round_trip() {
        let id = Uuid::new_v4();
        assert_eq!(parse_channel(&channel(&id)), Some(id));
        assert_eq!(parse_channel("other:channel"), None);
        assert_eq!(parse_channel(&state_key(&id)), None);
        assert_eq!(parse_member(&member(&id, 42)), Some((id, 42)));
        assert_eq!(parse_member("garbage"), None);
        assert_eq!(parse_member(&format!("{id}:x")), None);
    }

    #[test]
    fn stored_value_round_trips() {
        let raw = encode_state(17, 0xdead_beef, br#"{"a":"b|c"}"#);
        assert!(raw.starts_with(b"17.deadbeef|"));
        let s = decode_state(&raw).unwrap();
        assert_eq!(
            (s.version, s.incarnation, s.json),
            (17, 0xdead_beef, &br#"{"a":"b|c"}"#[..])
        );
        // Older values: bare version, incarnation 0, same token as before.
        let s = decode_state(b"17|{}").unwrap();
        assert_eq!((s.version, s.incarnation), (17, 0));
        assert_eq!(encode_state(17, 0, b"{}"), b"17|{}");
        assert_eq!(decode_state(b"x|{}"), None);
        assert_eq!(decode_state(b"+1|{}"), None);
        assert_eq!(decode_state(b"1.xyz|{}"), None);
        assert_eq!(decode_state(b"1.0000000g|{}"), None);
        assert_eq!(decode_state(b"{}"), None);
    }

    #[test]
    fn token_fits_the_scripts_getrange() {
        // The scripts read the first 32 bytes: the longest token plus '|'.
        let longest = cas_token(u64::MAX, u32::MAX);
        assert!(longest.len() < HEAD_BYTES, "{longest}");
    }
}
