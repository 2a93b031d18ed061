//! Values exchanged between the core and its driver: restored state, the
//! `Ready` bundle, status, and errors.

use std::fmt;

use super::message::{Entry, HardState, Message, NodeId, Snapshot, SnapshotMeta};

/// Persisted state that a node starts from.
///
/// The core keeps only the snapshot's metadata. After `Raft::new`, call
/// `Raft::compact(snapshot.index, data)` with the stored snapshot bytes, or
/// the node cannot send that snapshot to a lagging follower while it leads.
#[derive(Clone, Debug, Default)]
pub struct RestoredState {
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotMeta>,
    /// Entries after the snapshot, contiguous and in index order.
    pub entries: Vec<Entry>,
}

/// Output of the core that the driver must handle, in this order:
///
/// 1. Write `snapshot`, then `entries`, then `hard_state` durably (fsync).
///    Writing the hard state last means a crash in between never leaves a
///    commit index beyond the last stored entry.
/// 2. Send `messages`.
/// 3. Apply `committed_entries` to the state machine.
///
/// Call `Raft::ready` again only after handling the previous bundle.
#[derive(Debug, Default)]
pub struct Ready {
    /// Save durably before sending `messages`. Present only when changed.
    pub hard_state: Option<HardState>,
    /// Append durably before sending `messages`: first delete any stored
    /// entries with index >= `entries[0].index`, then append.
    pub entries: Vec<Entry>,
    /// A snapshot received from the leader. Persist it, discard every stored
    /// log entry and restore the state machine from `data`, before writing
    /// `entries` and applying `committed_entries`. No stored entry can be
    /// kept, because the core installs a snapshot only when its log does not
    /// contain the snapshot's last entry.
    pub snapshot: Option<Snapshot>,
    /// Send after the writes above are durable.
    pub messages: Vec<(NodeId, Message)>,
    /// Apply in order, after the writes above. Never contains an entry at or
    /// below the index of `snapshot`. The core counts them as applied.
    pub committed_entries: Vec<Entry>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.entries.is_empty()
            && self.snapshot.is_none()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(name)
    }
}

/// The leader's replication state for one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    pub id: NodeId,
    pub match_index: u64,
    pub next_index: u64,
    /// Whether the follower replied during the current check-quorum period.
    pub recent_active: bool,
}

/// A snapshot of the node's Raft state, for monitoring.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub voted_for: Option<NodeId>,
    pub commit: u64,
    pub applied: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot: Option<SnapshotMeta>,
    /// One element per other voter while this node leads, empty otherwise.
    pub progress: Vec<PeerProgress>,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("proposal data is empty; empty entries are reserved for the leader's no-op")]
    EmptyData,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CompactError {
    #[error("cannot compact through index {index}: the log is already compacted through {snapshot_index}")]
    Compacted { index: u64, snapshot_index: u64 },
    #[error("cannot compact through index {index}: only entries through {applied} are applied")]
    Unapplied { index: u64, applied: u64 },
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    #[error("invalid Raft configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error("persisted log has a gap: expected entry {expected}, found entry {found}")]
    EntryGap { expected: u64, found: u64 },
    #[error("persisted entry {index} has term {term}, lower than the term {previous} before it")]
    TermDecrease {
        index: u64,
        term: u64,
        previous: u64,
    },
    #[error("persisted commit index {commit} is beyond the last log index {last_index}")]
    CommitBeyondLastIndex { commit: u64, last_index: u64 },
}
