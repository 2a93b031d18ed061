//! Log replication: AppendEntries and InstallSnapshot on both the leader's
//! and the follower's side, and the leader's commit rule.

use bytes::Bytes;
use log::{debug, info, warn};

use super::core::{IncomingSnapshot, Raft};
use super::message::{Entry, Message, Snapshot, SnapshotMeta};
use super::progress::ReplicationState;

impl Raft {
    /// Sends new entries to every follower that is not waiting for replies,
    /// and commits if this node alone is a majority.
    pub(crate) fn after_leader_append(&mut self) {
        for peer in self.peers.clone() {
            self.maybe_send_append(&peer, false);
        }
        if self.maybe_commit() {
            self.broadcast_commit();
        }
    }

    /// Sends an AppendEntries to every follower so they learn a new commit index.
    fn broadcast_commit(&mut self) {
        for peer in self.peers.clone() {
            self.maybe_send_append(&peer, true);
        }
    }

    /// Sends each follower a heartbeat that carries no payload, so that a
    /// follower that is down costs little traffic. Its reply makes the
    /// leader send entries or snapshot data again.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        for peer in self.peers.clone() {
            match self.progress[&peer].state {
                ReplicationState::Probe | ReplicationState::Replicate => self.send_heartbeat(&peer),
                ReplicationState::Snapshot { .. } => self.send_snapshot_heartbeat(&peer),
            }
        }
    }

    /// Sends entries from the follower's next index unless it is waiting for
    /// replies. With `send_if_empty`, sends even when there is nothing new,
    /// which carries the commit index.
    fn maybe_send_append(&mut self, to: &str, send_if_empty: bool) {
        let pr = &self.progress[to];
        if pr.is_paused(self.config.max_in_flight) {
            return;
        }
        self.send_append(to, send_if_empty);
    }

    /// Sends entries from the follower's next index, or starts a snapshot
    /// transfer if the entry before it was compacted away.
    fn send_append(&mut self, to: &str, send_if_empty: bool) {
        let pr = self
            .progress
            .get_mut(to)
            .expect("leader has progress for every peer");
        let prev_log_index = pr.next_index - 1;
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            self.start_snapshot_transfer(to);
            return;
        };
        let entries = self.log.slice(
            pr.next_index,
            self.log.last_index() + 1,
            self.config.max_append_entries,
            self.config.max_append_bytes,
        );
        if entries.is_empty() && !send_if_empty {
            return;
        }
        let last = entries.last().map_or(prev_log_index, |e| e.index);
        pr.sent_entries(last, entries.len());
        let msg = Message::AppendEntries {
            term: self.term,
            leader_id: self.config.id.clone(),
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.log.committed,
        };
        self.send(to, msg);
    }

    /// Raises the commit index to the highest index stored on a majority,
    /// if that entry is of the current term. Raft paper, section 5.4.2: an
    /// entry of an earlier term is committed only indirectly, by committing
    /// a later entry of the leader's own term.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.match_index).collect();
        matched.push(self.log.last_index());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        if candidate <= self.log.committed || self.log.term(candidate) != Some(self.term) {
            return false;
        }
        self.log.commit_to(candidate)
    }

    /// Follower side of AppendEntries (Raft paper, section 5.3).
    pub(crate) fn handle_append_entries(
        &mut self,
        from: &str,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
    ) {
        let committed = self.log.committed;
        let (prev_log_index, entries) = if prev_log_index < committed {
            // Our committed prefix is identical to the leader's log (leader
            // completeness), so only entries after it need checking.
            let tail: Vec<Entry> = entries
                .into_iter()
                .filter(|e| e.index > committed)
                .collect();
            (committed, tail)
        } else if self.log.matches(prev_log_index, prev_log_term) {
            (prev_log_index, entries)
        } else {
            self.reject_append(from, prev_log_index, prev_log_term);
            return;
        };

        let last_new = prev_log_index + entries.len() as u64;
        if let Some(index) = self.log.merge(&entries) {
            debug!(
                "node {}: truncated conflicting entries from index {index}",
                self.config.id
            );
        }
        self.log.commit_to(leader_commit.min(last_new));
        let reply = Message::AppendEntriesResponse {
            term: self.term,
            success: true,
            node_id: self.config.id.clone(),
            match_index: last_new,
            conflict_index: None,
            conflict_term: None,
        };
        self.send(from, reply);
    }

    /// Rejects an AppendEntries whose previous entry does not match. The
    /// hint lets the leader skip a whole term per round trip. It is the term
    /// of our entry at `prev_log_index` with the first index of that term,
    /// or our last index + 1 when our log is shorter.
    fn reject_append(&mut self, from: &str, prev_log_index: u64, prev_log_term: u64) {
        let (conflict_index, conflict_term) = match self.log.term(prev_log_index) {
            None => (self.log.last_index() + 1, None),
            Some(term) => {
                let first = self.log.first_index_of_term(prev_log_index, term);
                (first.max(self.log.committed + 1), Some(term))
            }
        };
        debug!(
            "node {}: rejecting AppendEntries from {from}: no entry ({prev_log_index}, term {prev_log_term}); hint index {conflict_index}, term {conflict_term:?}",
            self.config.id
        );
        let reply = Message::AppendEntriesResponse {
            term: self.term,
            success: false,
            node_id: self.config.id.clone(),
            match_index: self.log.committed,
            conflict_index: Some(conflict_index),
            conflict_term,
        };
        self.send(from, reply);
    }

    /// Leader side of an AppendEntries reply.
    pub(crate) fn handle_append_response(
        &mut self,
        from: &str,
        success: bool,
        match_index: u64,
        conflict_index: Option<u64>,
        conflict_term: Option<u64>,
    ) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(from) else {
            return;
        };
        pr.recent_active = true;
        if match_index > last_index {
            debug!(
                "node {}: ignoring match index {match_index} from {from} beyond our last index",
                self.config.id
            );
            return;
        }

        if success {
            let updated = pr.maybe_update(match_index);
            // Any success ends probing: the log matches through `match_index`,
            // so streaming can start right after it.
            if matches!(pr.state, ReplicationState::Probe) {
                pr.become_replicate();
            }
            // Even a stale or repeated reply shows the follower is reachable,
            // so the leader sends whatever the in-flight window allows.
            if updated && self.maybe_commit() {
                self.broadcast_commit();
            } else {
                self.maybe_send_append(from, false);
            }
            return;
        }

        // A follower whose log is now shorter than an index it acknowledged has lost
        // its storage (for example, its data directory was wiped). Raft assumes
        // durable storage, so rather than retry the acknowledged point forever the
        // leader resends from the follower's commit index. Lowering a match index
        // only delays commits; it never undoes one.
        let log_too_short = conflict_term.is_none() && conflict_index.is_some_and(|i| i <= pr.match_index);
        if log_too_short && match_index < pr.match_index {
            warn!(
                "node {}: {from} lost entries it had acknowledged (match {}, its log ends before {}); resending from {}",
                self.config.id,
                pr.match_index,
                conflict_index.unwrap_or(0),
                match_index + 1
            );
            pr.match_index = match_index;
            pr.next_index = match_index + 1;
            pr.become_probe();
            self.maybe_send_append(from, true);
            return;
        }

        // On rejection `match_index` is the follower's commit index, which is
        // identical to our log up to there.
        pr.maybe_update(match_index);
        let hinted = match (conflict_term, conflict_index) {
            (Some(term), Some(index)) => self.log.last_index_of_term(term).map_or(index, |j| j + 1),
            (None, Some(index)) => index,
            (_, None) => pr.next_index.saturating_sub(1),
        };
        let next = hinted.clamp(pr.match_index + 1, last_index + 1);
        // A real rejection of what was sent last points below `next_index`.
        // A stale one may still have raised `match_index` and emptied the
        // in-flight window, so the leader sends what it now can.
        let stale = matches!(pr.state, ReplicationState::Snapshot { .. }) || next >= pr.next_index;
        if stale {
            self.maybe_send_append(from, false);
            return;
        }
        debug!(
            "node {}: {from} rejected AppendEntries; retrying from index {next} (was {})",
            self.config.id, pr.next_index
        );
        pr.next_index = next;
        pr.become_probe();
        self.maybe_send_append(from, true);
    }

    /// Sends an AppendEntries without entries at the follower's next index.
    /// Entries in flight are not sent again. If one was lost, the follower
    /// rejects this message and the leader falls back to probing.
    fn send_heartbeat(&mut self, to: &str) {
        let prev_log_index = self.progress[to].next_index - 1;
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            self.start_snapshot_transfer(to);
            return;
        };
        let msg = Message::AppendEntries {
            term: self.term,
            leader_id: self.config.id.clone(),
            prev_log_index,
            prev_log_term,
            entries: Vec::new(),
            leader_commit: self.log.committed,
        };
        self.send(to, msg);
    }

    /// Moves a follower to snapshot transfer, if a snapshot with data exists.
    fn start_snapshot_transfer(&mut self, to: &str) {
        let Some(snapshot) = self.snapshot.clone() else {
            debug!(
                "node {}: {to} needs entries before index {} but no snapshot data was given to compact()",
                self.config.id,
                self.log.first_index()
            );
            return;
        };
        info!(
            "node {}: sending snapshot through index {} to {to} in term {}",
            self.config.id, snapshot.meta.index, self.term
        );
        self.progress
            .get_mut(to)
            .expect("leader has progress for every peer")
            .become_snapshot(snapshot);
        self.send_snapshot_chunk(to);
    }

    /// Sends the chunk at the follower's current snapshot offset.
    fn send_snapshot_chunk(&mut self, to: &str) {
        self.send_snapshot_bytes(to, self.config.snapshot_chunk_bytes);
    }

    /// Sends a chunk without data at the current offset. The follower's
    /// reply gives the offset to resume at. An empty snapshot is sent whole, because
    /// its only chunk is also its last.
    fn send_snapshot_heartbeat(&mut self, to: &str) {
        self.send_snapshot_bytes(to, 0);
    }

    fn send_snapshot_bytes(&mut self, to: &str, max_bytes: usize) {
        let pr = &self.progress[to];
        let ReplicationState::Snapshot { snapshot, offset } = &pr.state else {
            return;
        };
        let len = snapshot.data.len();
        let start = (*offset as usize).min(len);
        let end = start.saturating_add(max_bytes).min(len);
        let msg = Message::InstallSnapshot {
            term: self.term,
            leader_id: self.config.id.clone(),
            last_included_index: snapshot.meta.index,
            last_included_term: snapshot.meta.term,
            offset: start as u64,
            data: snapshot.data.slice(start..end),
            done: end == len,
        };
        self.send(to, msg);
    }

    /// Leader side of an InstallSnapshot reply: send the next chunk, or,
    /// once the follower has the whole snapshot, probe with AppendEntries
    /// right after it. The match index is left to the AppendEntries reply.
    pub(crate) fn handle_snapshot_response(&mut self, from: &str, success: bool, next_offset: u64) {
        let Some(pr) = self.progress.get_mut(from) else {
            return;
        };
        pr.recent_active = true;
        let ReplicationState::Snapshot { snapshot, offset } = &mut pr.state else {
            return;
        };
        let len = snapshot.data.len() as u64;
        if success && next_offset >= len {
            let index = snapshot.meta.index;
            pr.next_index = index + 1;
            pr.become_probe();
            self.maybe_send_append(from, true);
            return;
        }
        *offset = next_offset.min(len);
        self.send_snapshot_chunk(from);
    }

    /// Follower side of InstallSnapshot (Raft paper, section 7): collect the
    /// chunks in order, then replace the log by the snapshot, unless the log
    /// already contains the snapshot's last entry.
    pub(crate) fn handle_install_snapshot(
        &mut self,
        from: &str,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        done: bool,
    ) {
        let chunk_end = offset + data.len() as u64;
        if meta.index <= self.log.committed || self.log.matches(meta.index, meta.term) {
            // Everything the snapshot covers is already here. It is committed
            // because the leader only snapshots applied entries.
            self.log.commit_to(meta.index);
            self.incoming_snapshot = None;
            self.reply_snapshot(from, true, chunk_end);
            return;
        }

        let same_transfer = self
            .incoming_snapshot
            .as_ref()
            .is_some_and(|s| s.term == self.term && s.leader == from && s.meta == meta);
        if offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                term: self.term,
                leader: from.to_string(),
                meta: meta.clone(),
                data: Vec::new(),
            });
        } else if !same_transfer {
            self.incoming_snapshot = None;
            self.reply_snapshot(from, false, 0);
            return;
        }
        let incoming = self.incoming_snapshot.as_mut().expect("transfer exists");
        if incoming.data.len() as u64 != offset {
            let expected = incoming.data.len() as u64;
            self.reply_snapshot(from, false, expected);
            return;
        }
        incoming.data.extend_from_slice(&data);
        let received = incoming.data.len() as u64;
        if done {
            let incoming = self.incoming_snapshot.take().expect("transfer exists");
            self.install_snapshot(Snapshot {
                meta: incoming.meta,
                data: Bytes::from(incoming.data),
            });
        }
        self.reply_snapshot(from, true, received);
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) {
        info!(
            "node {}: installing snapshot through index {} (term {}) in term {}",
            self.config.id, snapshot.meta.index, snapshot.meta.term, self.term
        );
        self.log.install_snapshot(snapshot.meta.clone());
        self.pending_snapshot = Some(snapshot.clone());
        self.snapshot = Some(snapshot);
    }

    fn reply_snapshot(&mut self, to: &str, success: bool, next_offset: u64) {
        let reply = Message::InstallSnapshotResponse {
            term: self.term,
            node_id: self.config.id.clone(),
            success,
            next_offset,
        };
        self.send(to, reply);
    }
}
