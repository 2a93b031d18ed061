//! The leader's view of one follower: how much of the log is known to match,
//! what to send next, and how many AppendEntries are in flight.

use std::collections::VecDeque;

use super::message::Snapshot;

/// Replication mode of the leader towards one follower.
#[derive(Debug, Clone)]
pub(crate) enum ReplicationState {
    /// The leader does not know where the follower's log matches. It sends
    /// one AppendEntries with entries and waits for a reply, to it or to a
    /// later heartbeat, before sending entries again.
    Probe,
    /// The follower accepted the last probe. The leader streams entries
    /// without waiting for replies, up to the in-flight limit.
    Replicate,
    /// The follower needs entries that the leader has compacted. The leader
    /// sends `snapshot` chunk by chunk, starting at `offset`.
    Snapshot { snapshot: Snapshot, offset: u64 },
}

#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// Highest index known to be identical on the follower. Only a successful
    /// AppendEntries reply (or the follower's commit index) raises it.
    pub(crate) match_index: u64,
    /// Next index to send, always greater than `match_index`.
    pub(crate) next_index: u64,
    pub(crate) state: ReplicationState,
    /// In Probe, whether a probe was sent since the last reply or heartbeat.
    pub(crate) probe_sent: bool,
    /// Last index of each AppendEntries in flight, in sending order (Replicate only).
    pub(crate) in_flight: VecDeque<u64>,
    /// Whether the follower sent anything during the current check-quorum period.
    pub(crate) recent_active: bool,
}

impl Progress {
    pub(crate) fn new(next_index: u64) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: ReplicationState::Probe,
            probe_sent: false,
            in_flight: VecDeque::new(),
            recent_active: true,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ReplicationState::Probe;
        self.probe_sent = false;
        self.in_flight.clear();
        self.next_index = self.next_index.max(self.match_index + 1);
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.probe_sent = false;
        self.in_flight.clear();
        self.next_index = self.match_index + 1;
    }

    pub(crate) fn become_snapshot(&mut self, snapshot: Snapshot) {
        self.state = ReplicationState::Snapshot {
            snapshot,
            offset: 0,
        };
        self.probe_sent = false;
        self.in_flight.clear();
    }

    /// Records a successful reply. Returns false for a stale reply that does
    /// not raise the match index.
    pub(crate) fn maybe_update(&mut self, match_index: u64) -> bool {
        if match_index <= self.match_index {
            return false;
        }
        self.match_index = match_index;
        self.next_index = self.next_index.max(match_index + 1);
        while self
            .in_flight
            .front()
            .is_some_and(|&last| last <= match_index)
        {
            self.in_flight.pop_front();
        }
        true
    }

    /// Returns whether the leader must wait before sending more entries.
    pub(crate) fn is_paused(&self, max_in_flight: usize) -> bool {
        match self.state {
            ReplicationState::Probe => self.probe_sent,
            ReplicationState::Replicate => self.in_flight.len() >= max_in_flight,
            ReplicationState::Snapshot { .. } => true,
        }
    }

    /// Records that an AppendEntries whose last entry is `last` was sent.
    pub(crate) fn sent_entries(&mut self, last: u64, count: usize) {
        match self.state {
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Replicate => {
                if count > 0 {
                    self.next_index = last + 1;
                    self.in_flight.push_back(last);
                }
            }
            ReplicationState::Snapshot { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_reply_does_not_lower_match() {
        let mut progress = Progress::new(5);
        assert!(progress.maybe_update(4));
        assert!(!progress.maybe_update(2));
        assert_eq!(progress.match_index, 4);
        assert_eq!(progress.next_index, 5);
    }

    #[test]
    fn replicate_pauses_at_in_flight_limit() {
        let mut progress = Progress::new(1);
        progress.become_replicate();
        progress.sent_entries(3, 3);
        progress.sent_entries(6, 3);
        assert!(progress.is_paused(2));
        assert_eq!(progress.next_index, 7);

        progress.maybe_update(3);
        assert!(!progress.is_paused(2));
        assert_eq!(progress.in_flight.len(), 1);
    }

    #[test]
    fn probe_sends_one_message_at_a_time() {
        let mut progress = Progress::new(4);
        assert!(!progress.is_paused(8));
        progress.sent_entries(6, 2);
        assert!(progress.is_paused(8));
        assert_eq!(progress.next_index, 4, "probe does not advance next_index");
    }
}
