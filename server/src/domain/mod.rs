//! The pure state machine of a timer session: modes, transitions, time
//! arithmetic and rendering.
//!
//! Nothing here reads a clock or does I/O: every function takes `now` (Unix
//! epoch milliseconds) as an argument, so the rules can be property-tested
//! with scripted time and are shared unchanged by every engine.

mod actor;
mod model;
#[cfg(test)]
mod proptests;
mod render;
pub mod spec;
pub mod time;
mod transition;

pub use actor::{Actor, ActorKind};
pub use model::{
    EventKind, GroupBank, Millis, Participant, Session, Status, SyncMode, TimeoutAction,
    TimeoutKind,
};
pub use render::{RenderedParticipant, SyncState};
pub use spec::{CreateParticipant, CreateSpec, FieldError, ParticipantDraft, SessionDraft};
pub use transition::{
    Command, DomainError, SwitchArgs, Transition, apply, due_timeout, holds_turn,
};
