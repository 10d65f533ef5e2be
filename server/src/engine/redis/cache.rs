//! The last state this instance saw of each session it recently touched.
//!
//! A switch is load → apply → commit. With the state of the previous commit
//! at hand, the load round trip to Redis is skipped: the commit script
//! compares the version (and incarnation) anyway, so a copy that another
//! instance has overtaken only costs a retry, and the script's mismatch
//! reply carries the stored value to retry from. Bounded: when a shard is
//! full an arbitrary entry goes, which at worst costs that session one read.

use crate::domain::Session;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

const SHARDS: usize = 16;

/// See the module doc.
pub struct SessionCache {
    shards: Vec<Mutex<HashMap<Uuid, Arc<Session>>>>,
    per_shard: usize,
}

impl SessionCache {
    /// A cache of at most about `capacity` sessions (0 disables it).
    pub fn new(capacity: usize) -> Self {
        SessionCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, id: &Uuid) -> &Mutex<HashMap<Uuid, Arc<Session>>> {
        &self.shards[(id.as_u128() % SHARDS as u128) as usize]
    }

    /// The copy held for `id`.
    pub fn get(&self, id: &Uuid) -> Option<Arc<Session>> {
        self.shard(id).lock().get(id).cloned()
    }

    /// Keeps `s` unless the copy held is a later version of the same
    /// incarnation (replies of concurrent requests can arrive out of order).
    pub fn put(&self, s: Arc<Session>) {
        if self.per_shard == 0 {
            return;
        }
        let mut map = self.shard(&s.session_id).lock();
        if let Some(old) = map.get(&s.session_id) {
            if old.incarnation == s.incarnation && old.version > s.version {
                return;
            }
        } else if map.len() >= self.per_shard {
            let victim = map.keys().next().copied();
            if let Some(v) = victim {
                map.remove(&v);
            }
        }
        map.insert(s.session_id, s);
    }

    /// Forgets `id` (deleted or gone).
    pub fn remove(&self, id: &Uuid) {
        self.shard(id).lock().remove(id);
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CreateSpec;
    use proptest::prelude::*;

    fn session(id: Uuid, version: u64, incarnation: u32) -> Arc<Session> {
        let spec = CreateSpec::from_json(&serde_json::json!({
            "session_id": id,
            "sync_mode": "per_participant",
            "participants": [{"participant_id": "a", "participant_index": 0, "total_time_ms": 1000}],
            "total_time_ms": 1000
        }))
        .unwrap();
        let mut s = spec.into_session(0);
        s.version = version;
        s.incarnation = incarnation;
        Arc::new(s)
    }

    #[test]
    fn a_late_reply_never_replaces_a_newer_version() {
        let c = SessionCache::new(100);
        let id = Uuid::new_v4();
        c.put(session(id, 5, 7));
        c.put(session(id, 4, 7));
        assert_eq!(c.get(&id).unwrap().version, 5);
        c.put(session(id, 6, 7));
        assert_eq!(c.get(&id).unwrap().version, 6);
        // Another incarnation (deleted, created again) always replaces.
        c.put(session(id, 1, 9));
        assert_eq!(c.get(&id).unwrap().incarnation, 9);
        c.remove(&id);
        assert!(c.get(&id).is_none());
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let c = SessionCache::new(0);
        c.put(session(Uuid::new_v4(), 1, 1));
        assert!(c.is_empty());
    }

    proptest! {
        #[test]
        fn stays_within_capacity(cap in 1usize..200, n in 0usize..1000) {
            let c = SessionCache::new(cap);
            for _ in 0..n {
                c.put(session(Uuid::new_v4(), 1, 1));
            }
            prop_assert!(c.len() <= cap.div_ceil(SHARDS) * SHARDS);
            prop_assert!(c.len() <= n);
        }
    }
}
