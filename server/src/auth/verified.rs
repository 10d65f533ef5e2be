//! A bounded memo of session tokens whose signature and static claims have
//! already been verified, so a device that presents the same token on every
//! request pays for the HMAC/ECDSA check and the claims' JSON once, not per
//! switch (issue 12's budget: auth may cost at most 10% of switch
//! throughput). Sound because a token's signature depends only on its bytes
//! and the keys, which are fixed for the life of the process; the only
//! time-dependent rule left, expiry, is checked on every hit (`exp - now`
//! over the maximum lifetime can only shrink as time passes, so it stays
//! passed). Only verified tokens enter, so garbage cannot fill it; memory is
//! bounded by [`CAPACITY`] entries of at most [`MAX_TOKEN_BYTES`] each, and a
//! full memo is simply emptied (re-verifying is the only cost).

use super::SessionToken;
use parking_lot::RwLock;
use std::collections::HashMap;

/// Entries kept before the memo is emptied (about 8 MiB at the longest).
pub const CAPACITY: usize = 4096;
/// Longer tokens are verified every time rather than remembered.
pub const MAX_TOKEN_BYTES: usize = 2048;

/// Verified tokens by their exact text.
#[derive(Default)]
pub struct VerifiedTokens {
    map: RwLock<HashMap<Box<str>, SessionToken>>,
}

impl VerifiedTokens {
    /// The grant of `token` if it was verified before.
    pub fn get(&self, token: &str) -> Option<SessionToken> {
        self.map.read().get(token).cloned()
    }

    /// Remembers a token that just passed verification.
    pub fn insert(&self, token: &str, grant: &SessionToken) {
        if token.len() > MAX_TOKEN_BYTES {
            return;
        }
        let mut map = self.map.write();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(token.into(), grant.clone());
    }

    /// Forgets a token (it expired).
    pub fn remove(&self, token: &str) {
        self.map.write().remove(token);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::Role;
    use uuid::Uuid;

    fn grant(n: u128) -> SessionToken {
        SessionToken {
            sid: Uuid::from_u128(n),
            role: Role::Viewer,
            sub: None,
            exp: 100,
        }
    }

    #[test]
    fn stays_bounded_and_skips_long_tokens() {
        let memo = VerifiedTokens::default();
        for i in 0..(CAPACITY as u128 * 3) {
            memo.insert(&format!("t{i}"), &grant(i));
            assert!(memo.len() <= CAPACITY);
        }
        memo.insert(&"x".repeat(MAX_TOKEN_BYTES + 1), &grant(1));
        assert!(memo.get(&"x".repeat(MAX_TOKEN_BYTES + 1)).is_none());
        memo.insert("a", &grant(7));
        assert_eq!(memo.get("a"), Some(grant(7)));
        memo.remove("a");
        assert_eq!(memo.get("a"), None);
    }
}
