//! Leader election: pre-vote, vote requests and replies, becoming leader,
//! and the check-quorum step-down.

use log::{debug, info, warn};

use super::core::Raft;
use super::message::{Entry, Message};
use super::progress::Progress;
use super::types::Role;

impl Raft {
    /// Starts an election after the election timeout: a pre-vote round when
    /// enabled, otherwise a real one.
    pub(crate) fn campaign(&mut self) {
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    /// Asks the peers whether they would vote for this node in the next term,
    /// without changing its term or vote, so that a node that cannot win
    /// (stale log, or a live leader nearby) does not disrupt the cluster.
    fn become_pre_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "a leader cannot become pre-candidate"
        );
        // A node cut off from the cluster repeats pre-votes every election timeout, so
        // only the first one of a streak is logged at info.
        if self.role == Role::PreCandidate {
            debug!("node {}: pre-vote for term {} again", self.config.id, self.term + 1);
        } else {
            info!(
                "node {}: {} -> pre-candidate, starting pre-vote for term {}",
                self.config.id,
                self.role,
                self.term + 1
            );
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_timers();
        self.request_votes(true);
    }

    /// Starts an election in the next term and votes for itself (Raft paper,
    /// section 5.2).
    pub(crate) fn become_candidate(&mut self) {
        assert_ne!(self.role, Role::Leader, "a leader cannot become candidate");
        self.term += 1;
        self.vote = Some(self.config.id.clone());
        info!(
            "node {}: {} -> candidate, starting election in term {}",
            self.config.id, self.role, self.term
        );
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.reset_timers();
        self.request_votes(false);
    }

    fn request_votes(&mut self, pre_vote: bool) {
        let term = if pre_vote { self.term + 1 } else { self.term };
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term();
        let candidate_id = self.config.id.clone();
        for peer in self.peers.clone() {
            let msg = if pre_vote {
                Message::PreVote {
                    term,
                    candidate_id: candidate_id.clone(),
                    last_log_index,
                    last_log_term,
                }
            } else {
                Message::RequestVote {
                    term,
                    candidate_id: candidate_id.clone(),
                    last_log_index,
                    last_log_term,
                }
            };
            self.send(&peer, msg);
        }
        let own_id = self.config.id.clone();
        self.record_vote(&own_id, true);
    }

    /// Grants or rejects a (pre-)vote. A vote is granted at most once per
    /// term and only to a candidate whose log is at least as up to date as
    /// ours (Raft paper, section 5.4.1: compare the last terms, then the
    /// lengths). The vote is part of the hard state, which the driver saves
    /// before it sends the reply.
    pub(crate) fn handle_vote_request(
        &mut self,
        from: &str,
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        pre_vote: bool,
    ) {
        let can_vote = self.vote.as_deref() == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let up_to_date = self.log.is_up_to_date(last_log_index, last_log_term);
        let granted = can_vote && up_to_date;
        if !granted {
            debug!(
                "node {}: rejecting {} from {from} for term {term}: vote {:?}, leader {:?}, log up to date {up_to_date}",
                self.config.id,
                if pre_vote { "pre-vote" } else { "vote" },
                self.vote,
                self.leader
            );
        }

        let node_id = self.config.id.clone();
        if pre_vote {
            let reply_term = if granted { term } else { self.term };
            self.send(
                from,
                Message::PreVoteResponse {
                    term: reply_term,
                    vote_granted: granted,
                    node_id,
                },
            );
            return;
        }
        if granted {
            info!("node {}: voting for {from} in term {term}", self.config.id);
            self.vote = Some(from.to_string());
            self.reset_timers();
        }
        self.send(
            from,
            Message::RequestVoteResponse {
                term: self.term,
                vote_granted: granted,
                node_id,
            },
        );
    }

    /// Counts a vote reply that belongs to the current (pre-)election.
    pub(crate) fn handle_vote_response(
        &mut self,
        from: &str,
        term: u64,
        granted: bool,
        pre_vote: bool,
    ) {
        let current = match (self.role, pre_vote) {
            (Role::PreCandidate, true) => !granted || term == self.term + 1,
            (Role::Candidate, false) => term == self.term,
            _ => false,
        };
        if current {
            self.record_vote(from, granted);
        }
    }

    /// Records one vote and moves on once a majority decided. Each voter
    /// counts once, however often its reply arrives.
    fn record_vote(&mut self, from: &str, granted: bool) {
        self.votes.entry(from.to_string()).or_insert(granted);
        let granted_count = self.votes.values().filter(|&&g| g).count();
        let rejected_count = self.votes.len() - granted_count;
        if granted_count >= self.quorum() {
            match self.role {
                Role::PreCandidate => self.become_candidate(),
                Role::Candidate => self.become_leader(),
                _ => {}
            }
        } else if rejected_count >= self.quorum() {
            info!(
                "node {}: lost the {} in term {}",
                self.config.id, self.role, self.term
            );
            self.become_follower(self.term, None);
        }
    }

    /// Takes over as leader and appends a no-op of the new term, because a
    /// leader may only count replicas of an entry of its own term to commit
    /// (Raft paper, section 5.4.2).
    fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate can become leader"
        );
        info!(
            "node {}: candidate -> leader in term {}",
            self.config.id, self.term
        );
        self.role = Role::Leader;
        self.leader = Some(self.config.id.clone());
        self.votes.clear();
        self.reset_timers();
        self.incoming_snapshot = None;
        let next_index = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|p| (p.clone(), Progress::new(next_index)))
            .collect();

        let noop = Entry {
            index: next_index,
            term: self.term,
            data: bytes::Bytes::new(),
        };
        self.log.append(noop);
        self.after_leader_append();
    }

    /// Returns whether a majority was heard from during the period that just
    /// ended, and starts a new period. Steps down when it was not, so that a
    /// leader cut off from the majority stops acting as leader.
    pub(crate) fn check_quorum_active(&mut self) -> bool {
        let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
        for pr in self.progress.values_mut() {
            pr.recent_active = false;
        }
        if active >= self.quorum() {
            return true;
        }
        warn!(
            "node {}: stepping down in term {}: heard from {active} of {} voters within {} ticks",
            self.config.id,
            self.term,
            self.config.voters.len(),
            self.config.election_tick_min
        );
        self.become_follower(self.term, None);
        false
    }
}
