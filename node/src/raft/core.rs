//! The Raft state machine: term, vote, role, timers and the entry points
//! `tick`, `step`, `propose`, `ready` and `compact`. Elections live in
//! `election.rs` and log replication in `replication.rs`.

use std::collections::BTreeMap;

use bytes::Bytes;
use log::{debug, info};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::Config;
use super::log::RaftLog;
use super::message::{Entry, HardState, Message, NodeId, Snapshot, SnapshotMeta};
use super::progress::Progress;
use super::types::{
    CompactError, PeerProgress, ProposeError, Ready, RestoreError, RestoredState, Role, Status,
};

/// A snapshot being received chunk by chunk.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    pub(crate) term: u64,
    pub(crate) leader: NodeId,
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

/// One Raft node without I/O. Drive it with `tick`, `step` and `propose`,
/// and handle the output of `ready`.
#[derive(Debug)]
pub struct Raft {
    pub(crate) config: Config,
    /// Voters other than this node, sorted.
    pub(crate) peers: Vec<NodeId>,
    pub(crate) term: u64,
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// Per-follower replication state, empty unless this node leads.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current (pre-)election, this node's included.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Ticks since the last reset. A follower resets it when it hears from
    /// the leader or grants a vote; a leader, every check-quorum period.
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Drawn from [election_tick_min, election_tick_max) at each reset.
    pub(crate) randomized_election_timeout: u32,
    rng: StdRng,
    pub(crate) messages: Vec<(NodeId, Message)>,
    /// Hard state as last handed out by `ready`.
    last_hard_state: HardState,
    /// The latest snapshot with its data, sent to followers that need it.
    pub(crate) snapshot: Option<Snapshot>,
    /// A snapshot received from the leader, for the next `ready`.
    pub(crate) pending_snapshot: Option<Snapshot>,
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
}

impl Raft {
    /// Creates a node from its configuration and persisted state. A fresh
    /// node passes `RestoredState::default()`.
    pub fn new(config: Config, restored: RestoredState) -> Result<Raft, RestoreError> {
        config.validate()?;
        let snapshot = restored.snapshot.unwrap_or_default();
        check_restored_entries(&snapshot, &restored.entries)?;

        let last_index = snapshot.index + restored.entries.len() as u64;
        let hard_state = restored.hard_state;
        if hard_state.commit > last_index {
            return Err(RestoreError::CommitBeyondLastIndex {
                commit: hard_state.commit,
                last_index,
            });
        }
        // The snapshot covers committed entries only, so it raises a lower stored commit.
        let commit = hard_state.commit.max(snapshot.index);
        let log = RaftLog::restore(snapshot, restored.entries, commit);

        // A crash between writing entries and writing the hard state can
        // leave entries of a term newer than the stored one. No message of
        // that term left this node, so adopting the term without a vote is safe.
        let (term, vote) = if log.last_term() > hard_state.term {
            (log.last_term(), None)
        } else {
            (hard_state.term, hard_state.voted_for.clone())
        };

        let mut peers: Vec<NodeId> = config
            .voters
            .iter()
            .filter(|v| **v != config.id)
            .cloned()
            .collect();
        peers.sort();
        let rng = StdRng::seed_from_u64(config.seed);
        let mut raft = Raft {
            config,
            peers,
            term,
            vote,
            role: Role::Follower,
            leader: None,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            rng,
            messages: Vec::new(),
            last_hard_state: hard_state,
            snapshot: None,
            pending_snapshot: None,
            incoming_snapshot: None,
        };
        raft.reset_timers();
        info!(
            "node {}: starting as follower in term {} (commit {}, last index {})",
            raft.config.id,
            raft.term,
            raft.log.committed,
            raft.log.last_index()
        );
        Ok(raft)
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn leader(&self) -> Option<&NodeId> {
        self.leader.as_ref()
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Advances logical time by one tick: counts down to an election, or,
    /// on a leader, to the next heartbeat and check-quorum round.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_election_timeout {
            self.campaign();
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_tick_min {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.check_quorum_active() {
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Handles a message from peer `from`. The term is settled first (Raft
    /// paper, section 5.1: a higher term turns any node into a follower, a
    /// lower term is stale), then the message is dispatched by role.
    pub fn step(&mut self, from: &str, msg: Message) {
        if from == self.config.id || !self.peers.iter().any(|p| p == from) {
            debug!(
                "node {}: ignoring {} from unknown node {from:?}",
                self.config.id,
                msg.type_name()
            );
            return;
        }
        if !self.settle_term(from, &msg) {
            return;
        }
        match msg {
            Message::RequestVote {
                term,
                last_log_index,
                last_log_term,
                ..
            } => self.handle_vote_request(from, term, last_log_index, last_log_term, false),
            Message::PreVote {
                term,
                last_log_index,
                last_log_term,
                ..
            } => self.handle_vote_request(from, term, last_log_index, last_log_term, true),
            Message::RequestVoteResponse {
                term, vote_granted, ..
            } => self.handle_vote_response(from, term, vote_granted, false),
            Message::PreVoteResponse {
                term, vote_granted, ..
            } => self.handle_vote_response(from, term, vote_granted, true),
            Message::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                ..
            } => {
                if self.accept_leader(from, term) {
                    self.handle_append_entries(
                        from,
                        prev_log_index,
                        prev_log_term,
                        entries,
                        leader_commit,
                    );
                }
            }
            Message::AppendEntriesResponse {
                success,
                match_index,
                conflict_index,
                conflict_term,
                ..
            } => {
                if self.role == Role::Leader {
                    self.handle_append_response(
                        from,
                        success,
                        match_index,
                        conflict_index,
                        conflict_term,
                    );
                }
            }
            Message::InstallSnapshot {
                term,
                last_included_index,
                last_included_term,
                offset,
                data,
                done,
                ..
            } => {
                if self.accept_leader(from, term) {
                    let meta = SnapshotMeta {
                        index: last_included_index,
                        term: last_included_term,
                    };
                    self.handle_install_snapshot(from, meta, offset, data, done);
                }
            }
            Message::InstallSnapshotResponse {
                success,
                next_offset,
                ..
            } => {
                if self.role == Role::Leader {
                    self.handle_snapshot_response(from, success, next_offset);
                }
            }
        }
    }

    /// Compares the message's term with ours. Returns false when the message
    /// is fully handled (stale, or ignored under a leader lease).
    fn settle_term(&mut self, from: &str, msg: &Message) -> bool {
        let msg_term = msg.term();
        if msg_term > self.term {
            // A node that heard from a leader within the minimum election
            // timeout ignores vote requests, so a rejoining node cannot depose
            // a live leader (Raft paper, section 6, on disruptive servers).
            // Pre-votes always get this check. Real votes get it only with
            // check-quorum, because then a leader that lost its majority steps
            // down instead of holding followers in a lease.
            let ignore = match msg {
                Message::PreVote { .. } => self.heard_from_leader_recently(),
                Message::RequestVote { .. } => {
                    self.config.check_quorum && self.heard_from_leader_recently()
                }
                _ => false,
            };
            if ignore {
                debug!(
                    "node {}: ignoring {} from {from} in term {msg_term}: leader {:?} is live",
                    self.config.id,
                    msg.type_name(),
                    self.leader
                );
                return false;
            }
            match msg {
                // Pre-vote messages never change the receiver's term. A
                // granted pre-vote carries the term the candidate will use.
                Message::PreVote { .. }
                | Message::PreVoteResponse {
                    vote_granted: true, ..
                } => {}
                Message::AppendEntries { .. } | Message::InstallSnapshot { .. } => {
                    self.become_follower(msg_term, Some(from.to_string()))
                }
                _ => self.become_follower(msg_term, None),
            }
            return true;
        }
        if msg_term < self.term {
            self.reject_stale(from, msg);
            return false;
        }
        true
    }

    /// Replies to a message from an older term with our term, so that a stale
    /// leader or candidate learns it and steps down.
    fn reject_stale(&mut self, from: &str, msg: &Message) {
        debug!(
            "node {}: rejecting {} from {from}: its term {} is below ours {}",
            self.config.id,
            msg.type_name(),
            msg.term(),
            self.term
        );
        let node_id = self.config.id.clone();
        let reply = match msg {
            Message::AppendEntries { .. } => Message::AppendEntriesResponse {
                term: self.term,
                success: false,
                node_id,
                match_index: self.log.committed,
                conflict_index: None,
                conflict_term: None,
            },
            Message::InstallSnapshot { .. } => Message::InstallSnapshotResponse {
                term: self.term,
                node_id,
                success: false,
                next_offset: 0,
            },
            Message::RequestVote { .. } => Message::RequestVoteResponse {
                term: self.term,
                vote_granted: false,
                node_id,
            },
            Message::PreVote { .. } => Message::PreVoteResponse {
                term: self.term,
                vote_granted: false,
                node_id,
            },
            _ => return,
        };
        self.send(from, reply);
    }

    /// Makes `from` the known leader of the current term. Returns false if
    /// this node is itself the leader of that term, which Raft's election
    /// safety rules out.
    fn accept_leader(&mut self, from: &str, term: u64) -> bool {
        if self.role == Role::Leader {
            log::error!(
                "node {}: got leader traffic from {from} in term {term}, in which this node leads; ignoring it",
                self.config.id
            );
            return false;
        }
        if self.role != Role::Follower || self.leader.as_deref() != Some(from) {
            self.become_follower(term, Some(from.to_string()));
        }
        self.election_elapsed = 0;
        true
    }

    /// Returns whether this node heard from a leader within the minimum
    /// election timeout. A leader counts itself during each check-quorum
    /// period.
    pub(crate) fn heard_from_leader_recently(&self) -> bool {
        self.leader.is_some() && self.election_elapsed < self.config.election_tick_min
    }

    pub(crate) fn quorum(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    pub(crate) fn send(&mut self, to: &str, msg: Message) {
        self.messages.push((to.to_string(), msg));
    }

    pub(crate) fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_timeout = self
            .rng
            .gen_range(self.config.election_tick_min..self.config.election_tick_max);
    }

    /// Switches to follower. A higher `term` clears the vote.
    pub(crate) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        assert!(
            term >= self.term,
            "term must not decrease ({} -> {term})",
            self.term
        );
        if term > self.term {
            info!("node {}: term {} -> {term}", self.config.id, self.term);
            self.term = term;
            self.vote = None;
        }
        if self.role != Role::Follower {
            info!(
                "node {}: {} -> follower in term {term}",
                self.config.id, self.role
            );
        }
        if leader.is_some() && leader != self.leader {
            info!(
                "node {}: following leader {} in term {term}",
                self.config.id,
                leader.as_deref().unwrap_or("")
            );
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.reset_timers();
    }

    /// Appends an entry for `data` to the leader's log and starts replicating it.
    /// Returns the entry's index and term; the entry is durable once it shows
    /// up in `committed_entries`.
    pub fn propose(&mut self, data: Bytes) -> Result<(u64, u64), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader.clone(),
            });
        }
        if data.is_empty() {
            return Err(ProposeError::EmptyData);
        }
        let index = self.log.last_index() + 1;
        self.log.append(Entry {
            index,
            term: self.term,
            data,
        });
        self.after_leader_append();
        Ok((index, self.term))
    }

    /// Returns whether `ready` would return anything.
    pub fn has_ready(&self) -> bool {
        self.hard_state() != self.last_hard_state
            || self.pending_snapshot.is_some()
            || self.log.has_unstable()
            || !self.messages.is_empty()
            || self.log.has_unapplied()
    }

    /// Takes all pending output; see `Ready` for what the caller must do
    /// with it before the next call. Committed entries returned are counted
    /// as applied.
    pub fn ready(&mut self) -> Ready {
        let mut ready = Ready::default();
        let hard_state = self.hard_state();
        if hard_state != self.last_hard_state {
            self.last_hard_state = hard_state.clone();
            ready.hard_state = Some(hard_state);
        }
        ready.snapshot = self.pending_snapshot.take();
        ready.entries = self.log.take_unstable();
        ready.messages = std::mem::take(&mut self.messages);
        ready.committed_entries = self.log.take_committed();
        ready
    }

    /// Records that the application's state through `index` (at most the
    /// applied index) is captured in `data`. Drops the log entries through
    /// `index` and keeps the snapshot to send to followers that need them.
    /// `index` equal to the current snapshot index only replaces the data,
    /// which is how a restarted node gets its stored snapshot back.
    pub fn compact(&mut self, index: u64, data: Bytes) -> Result<(), CompactError> {
        let snapshot_index = self.log.snapshot_meta().index;
        if index < snapshot_index {
            return Err(CompactError::Compacted {
                index,
                snapshot_index,
            });
        }
        if index > self.log.applied {
            return Err(CompactError::Unapplied {
                index,
                applied: self.log.applied,
            });
        }
        let term = self
            .log
            .term(index)
            .expect("an index between snapshot and applied has a term");
        let meta = SnapshotMeta { index, term };
        self.log.compact(meta.clone());
        self.snapshot = Some(Snapshot { meta, data });
        Ok(())
    }

    pub fn status(&self) -> Status {
        let snapshot = self.log.snapshot_meta();
        let progress = self
            .progress
            .iter()
            .map(|(id, pr)| PeerProgress {
                id: id.clone(),
                match_index: pr.match_index,
                next_index: pr.next_index,
                recent_active: pr.recent_active,
            })
            .collect();
        Status {
            id: self.config.id.clone(),
            role: self.role,
            term: self.term,
            leader: self.leader.clone(),
            voted_for: self.vote.clone(),
            commit: self.log.committed,
            applied: self.log.applied,
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            snapshot: (snapshot.index > 0).then(|| snapshot.clone()),
            progress,
        }
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.vote.clone(),
            commit: self.log.committed,
        }
    }
}

/// Checks that restored entries follow the snapshot without gaps and that
/// their terms never decrease.
fn check_restored_entries(snapshot: &SnapshotMeta, entries: &[Entry]) -> Result<(), RestoreError> {
    let mut previous = snapshot.term;
    for (expected, entry) in (snapshot.index + 1..).zip(entries) {
        if entry.index != expected {
            return Err(RestoreError::EntryGap {
                expected,
                found: entry.index,
            });
        }
        if entry.term < previous {
            return Err(RestoreError::TermDecrease {
                index: entry.index,
                term: entry.term,
                previous,
            });
        }
        previous = entry.term;
    }
    Ok(())
}
