//! Authorization: what each principal may do, exactly API.md's table. Pure:
//! a principal, an operation and the session it targets in, a grant or a
//! refusal out. Whose turn it is is not known here: a participant's switch
//! is granted *bound to its own turn* ([`Grant::turn_of`]), and the domain
//! checks that binding against the very state the switch is computed from.

use super::Principal;
use super::token::Role;
use uuid::Uuid;

/// The operation classes of API.md's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET` a session, its WebSocket, its `/events`.
    Read,
    /// `switch`; `jump` when the body names `next_participant_id`.
    Switch {
        /// The switch names the next participant instead of the rotation.
        jump: bool,
    },
    /// `start`, `pause`, `resume`, `complete`, `cancel`.
    Control,
    /// `create`, `delete`, minting tokens, and the admin endpoints
    /// (`/metrics`, `/ready`) on the main port: API keys only.
    Admin,
}

/// What was granted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// A participant's switch is allowed only while this participant's clock
    /// runs (`SwitchArgs::turn_of`); `None` for everyone else.
    pub turn_of: Option<String>,
}

/// Why an authenticated principal may not (a 403 `FORBIDDEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The token is for another session, or the operation names none.
    #[error("this token is for another session")]
    OtherSession,
    /// The token's role does not allow the operation.
    #[error("the token's role does not allow this operation")]
    Role,
    /// A participant may not choose who plays next.
    #[error("a participant token cannot name next_participant_id")]
    Jump,
}

/// Decides whether `principal` may perform `op` on `session` (None for an
/// operation on no session: create, the admin endpoints).
pub fn authorize(
    principal: &Principal,
    op: Operation,
    session: Option<Uuid>,
) -> Result<Grant, Denied> {
    let token = match principal {
        Principal::Anonymous | Principal::ApiKey(_) => return Ok(Grant::default()),
        Principal::Token(t) => t,
    };
    if op == Operation::Admin {
        return Err(Denied::Role);
    }
    if session != Some(token.sid) {
        return Err(Denied::OtherSession);
    }
    match (op, token.role) {
        (Operation::Read, _) => Ok(Grant::default()),
        (Operation::Switch { .. }, Role::Controller) => Ok(Grant::default()),
        (Operation::Switch { jump: true }, Role::Participant) => Err(Denied::Jump),
        (Operation::Switch { jump: false }, Role::Participant) => Ok(Grant {
            turn_of: token.sub.clone(),
        }),
        (Operation::Control, Role::Controller) => Ok(Grant::default()),
        (Operation::Switch { .. } | Operation::Control, _) => Err(Denied::Role),
        (Operation::Admin, _) => Err(Denied::Role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SessionToken;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// API.md's table, transcribed cell by cell: rows viewer, participant,
    /// controller, API key; columns read, switch, control, admin. `turn` is
    /// "only while its own clock runs", `jump403` its `next_participant_id`
    /// refusal.
    const TABLE: [(&str, [&str; 4]); 4] = [
        ("viewer", ["ok", "403", "403", "403"]),
        ("participant", ["ok", "turn/jump403", "403", "403"]),
        ("controller", ["ok", "ok", "ok", "403"]),
        ("api_key", ["ok", "ok", "ok", "ok"]),
    ];

    const SESSIONS: [u128; 3] = [1, 2, 3];

    fn principal() -> impl Strategy<Value = Principal> {
        prop_oneof![
            Just(Principal::Anonymous),
            "[a-z]{1,8}".prop_map(|n| Principal::ApiKey(Arc::from(n.as_str()))),
            (0..3usize, 0..3usize, proptest::option::of("[a-z]{1,8}")).prop_map(
                |(role, sid, sub)| {
                    let role = [Role::Viewer, Role::Participant, Role::Controller][role];
                    // A participant token always has `sub` (verification
                    // refuses one without).
                    let sub = if role == Role::Participant {
                        Some(sub.unwrap_or_else(|| "p".into()))
                    } else {
                        sub
                    };
                    Principal::Token(SessionToken {
                        sid: Uuid::from_u128(SESSIONS[sid]),
                        role,
                        sub,
                        exp: u64::MAX,
                    })
                }
            ),
        ]
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            Just(Operation::Read),
            any::<bool>().prop_map(|jump| Operation::Switch { jump }),
            Just(Operation::Control),
            Just(Operation::Admin),
        ]
    }

    /// The expected answer, read off [`TABLE`] and the sentence above it
    /// ("anything on another session: 403").
    fn expected(p: &Principal, op: Operation, session: Option<Uuid>) -> Result<Option<String>, ()> {
        let (row, token) = match p {
            Principal::Anonymous => return Ok(None),
            Principal::ApiKey(_) => ("api_key", None),
            Principal::Token(t) => (t.role.as_str(), Some(t)),
        };
        let col = match op {
            Operation::Read => 0,
            Operation::Switch { .. } => 1,
            Operation::Control => 2,
            Operation::Admin => 3,
        };
        let cell = TABLE.iter().find(|(r, _)| *r == row).map(|(_, c)| c[col]);
        if let Some(t) = token
            && session != Some(t.sid)
        {
            return Err(());
        }
        match cell {
            Some("ok") => Ok(None),
            Some("turn/jump403") => match op {
                Operation::Switch { jump: true } => Err(()),
                _ => Ok(token.and_then(|t| t.sub.clone())),
            },
            _ => Err(()),
        }
    }

    proptest! {
        #[test]
        fn authorize_is_the_api_md_table(
            p in principal(),
            op in operation(),
            session in proptest::option::of(0..3usize),
        ) {
            let session = session.map(|i| Uuid::from_u128(SESSIONS[i]));
            let got = authorize(&p, op, session).map(|g| g.turn_of).map_err(|_| ());
            prop_assert_eq!(got, expected(&p, op, session), "{:?} {:?} {:?}", p, op, session);
        }
    }

    #[test]
    fn refusals_say_why() {
        let tok = |role| {
            Principal::Token(SessionToken {
                sid: Uuid::from_u128(1),
                role,
                sub: Some("a".into()),
                exp: u64::MAX,
            })
        };
        let s1 = Some(Uuid::from_u128(1));
        let s2 = Some(Uuid::from_u128(2));
        assert_eq!(
            authorize(&tok(Role::Controller), Operation::Read, s2),
            Err(Denied::OtherSession)
        );
        assert_eq!(
            authorize(&tok(Role::Viewer), Operation::Switch { jump: false }, s1),
            Err(Denied::Role)
        );
        assert_eq!(
            authorize(
                &tok(Role::Participant),
                Operation::Switch { jump: true },
                s1
            ),
            Err(Denied::Jump)
        );
        assert_eq!(
            authorize(&tok(Role::Controller), Operation::Admin, s1),
            Err(Denied::Role)
        );
        assert_eq!(
            authorize(
                &tok(Role::Participant),
                Operation::Switch { jump: false },
                s1
            ),
            Ok(Grant {
                turn_of: Some("a".into())
            })
        );
    }
}
