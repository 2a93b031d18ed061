//! Raft consensus core (Ongaro and Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", 2014), without I/O.
//!
//! The core is a deterministic state machine: time enters through
//! [`Raft::tick`], peer messages through [`Raft::step`], client commands
//! through [`Raft::propose`]. Everything it wants done comes out of
//! [`Raft::ready`] as a [`Ready`] bundle: state to persist, messages to send
//! after persisting, committed entries to apply. Randomness comes from a
//! seeded generator, so a run replays exactly from its inputs.
//!
//! Layout:
//! - `message`: log entries, hard state, snapshot metadata, peer messages
//!   and their JSON form.
//! - `config`: node settings and their defaults.
//! - `types`: restored state, the `Ready` bundle, status, roles and errors.
//! - `log`: the in-memory log after the latest snapshot, with the commit
//!   and apply cursors.
//! - `progress`: the leader's replication state for each follower.
//! - `core`: the `Raft` type, term handling, role changes, `ready`, `compact`.
//! - `election`: pre-vote, votes, becoming leader, check-quorum.
//! - `replication`: AppendEntries, InstallSnapshot and the commit rule.
//!
//! The deterministic cluster simulation that checks the safety properties
//! lives in the `sim` integration test of this crate.

mod config;
mod core;
mod election;
mod log;
mod message;
mod progress;
mod replication;
mod types;

#[cfg(test)]
mod tests;

pub use self::config::Config;
pub use self::core::Raft;
pub use self::message::{base64_bytes, Entry, HardState, Message, NodeId, Snapshot, SnapshotMeta};
pub use self::types::{
    CompactError, PeerProgress, ProposeError, Ready, RestoreError, RestoredState, Role, Status,
};
