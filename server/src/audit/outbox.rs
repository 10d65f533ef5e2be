//! The Redis engine's outbox streams, read through a consumer group.
//! (Filled in once the Redis engine's stream layout has landed.)
