//! The in-memory Raft log: entries after the latest snapshot, the commit and
//! apply cursors, and which entries still have to be handed out for storage.

use super::message::{Entry, SnapshotMeta};

/// Log entries after `snapshot.index`, with the commit and apply cursors.
///
/// Invariants: `snapshot.index <= applied <= committed <= last_index()`, and
/// `entries[i].index == snapshot.index + 1 + i`.
#[derive(Debug, Clone)]
pub(crate) struct RaftLog {
    /// Index and term of the last entry covered by the snapshot, or (0, 0)
    /// when the log was never compacted.
    snapshot: SnapshotMeta,
    entries: Vec<Entry>,
    pub(crate) committed: u64,
    /// Highest index handed to the application, either as a committed entry
    /// or through a snapshot.
    pub(crate) applied: u64,
    /// First index not yet returned by `take_unstable`. Entries from here on
    /// are not yet on stable storage.
    unstable_from: u64,
}

impl RaftLog {
    /// Creates a log from persisted state, whose entries are all stable.
    pub(crate) fn restore(snapshot: SnapshotMeta, entries: Vec<Entry>, committed: u64) -> RaftLog {
        let applied = snapshot.index;
        let unstable_from = snapshot.index + 1 + entries.len() as u64;
        RaftLog {
            snapshot,
            entries,
            committed,
            applied,
            unstable_from,
        }
    }

    pub(crate) fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// Returns the index of the first entry still held in memory.
    pub(crate) fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// Returns the term of the entry at `index`, or `None` when the entry is
    /// beyond the last index or compacted into the snapshot (except the
    /// snapshot's own last entry, whose term is kept).
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index < self.snapshot.index || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.snapshot.index - 1) as usize].term)
    }

    pub(crate) fn matches(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Returns whether a log ending at (`last_index`, `last_term`) is at least
    /// as up to date as this one: a later last term wins, and with equal last
    /// terms the longer log wins.
    pub(crate) fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Returns entries in `[from, to)`, limited to `max_count` entries and
    /// `max_bytes` payload bytes, but always at least one entry when the range
    /// is not empty. `from` must be at or after `first_index()`.
    pub(crate) fn slice(
        &self,
        from: u64,
        to: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Entry> {
        let to = to.min(self.last_index() + 1);
        if from >= to {
            return Vec::new();
        }
        assert!(
            from > self.snapshot.index,
            "slice from {from} reaches into the snapshot at {}",
            self.snapshot.index
        );
        let start = (from - self.snapshot.index - 1) as usize;
        let end = (to - self.snapshot.index - 1) as usize;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in &self.entries[start..end] {
            if !out.is_empty()
                && (out.len() >= max_count || bytes + entry.payload_len() > max_bytes)
            {
                break;
            }
            bytes += entry.payload_len();
            out.push(entry.clone());
        }
        out
    }

    /// Appends one entry at the end of the log.
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "appended entry must follow the last index"
        );
        self.entries.push(entry);
    }

    /// Merges entries received from the leader that follow a matching
    /// (prev index, prev term). Entries already present with the same term are
    /// kept, so a stale or duplicated AppendEntries never truncates. The first
    /// entry whose term differs, and everything after it, is replaced
    /// (Raft paper, section 5.3: delete a conflicting entry and all that
    /// follow it). Returns the index of the first entry that was truncated,
    /// if any.
    pub(crate) fn merge(&mut self, entries: &[Entry]) -> Option<u64> {
        let conflict = entries
            .iter()
            .position(|e| self.term(e.index) != Some(e.term));
        let position = conflict?;
        let first_new = entries[position].index;
        let mut truncated = None;
        if first_new <= self.last_index() {
            assert!(
                first_new > self.committed,
                "conflicting entry at index {first_new} is at or below the commit index {}",
                self.committed
            );
            self.entries
                .truncate((first_new - self.snapshot.index - 1) as usize);
            self.unstable_from = self.unstable_from.min(first_new);
            truncated = Some(first_new);
        }
        for entry in &entries[position..] {
            self.append(entry.clone());
        }
        truncated
    }

    /// Returns the first index of the run of entries with `term` that
    /// contains `index`, not going below the first in-memory entry.
    pub(crate) fn first_index_of_term(&self, index: u64, term: u64) -> u64 {
        let mut first = index;
        while first > self.first_index() && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// Returns the last index whose entry has `term`, searching down from the
    /// last index and stopping at the first entry with a smaller term.
    pub(crate) fn last_index_of_term(&self, term: u64) -> Option<u64> {
        let mut index = self.last_index();
        while index > self.snapshot.index {
            let entry_term = self.term(index)?;
            if entry_term == term {
                return Some(index);
            }
            if entry_term < term {
                return None;
            }
            index -= 1;
        }
        (self.snapshot.term == term && self.snapshot.index > 0).then_some(self.snapshot.index)
    }

    /// Raises the commit index; it never decreases.
    pub(crate) fn commit_to(&mut self, index: u64) -> bool {
        if index <= self.committed {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "commit index {index} beyond last index {}",
            self.last_index()
        );
        self.committed = index;
        true
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Returns the entries not yet handed out for storage and marks them stable.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from.max(self.first_index());
        let out = self.slice(from, self.last_index() + 1, usize::MAX, usize::MAX);
        self.unstable_from = self.last_index() + 1;
        out
    }

    pub(crate) fn has_unapplied(&self) -> bool {
        self.committed > self.applied
    }

    /// Returns the committed entries after `applied` and marks them applied.
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        let out = self.slice(self.applied + 1, self.committed + 1, usize::MAX, usize::MAX);
        self.applied = self.committed;
        out
    }

    /// Drops the entries through `meta.index`, which the application has
    /// captured in a snapshot. `meta.index` must be applied.
    pub(crate) fn compact(&mut self, meta: SnapshotMeta) {
        assert!(
            meta.index <= self.applied,
            "compaction through {} beyond applied {}",
            meta.index,
            self.applied
        );
        assert!(
            meta.index >= self.snapshot.index,
            "compaction through {} below snapshot {}",
            meta.index,
            self.snapshot.index
        );
        let drop = (meta.index - self.snapshot.index) as usize;
        self.entries.drain(..drop);
        self.snapshot = meta;
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub(crate) fn install_snapshot(&mut self, meta: SnapshotMeta) {
        self.entries.clear();
        self.committed = self.committed.max(meta.index);
        self.applied = meta.index;
        self.unstable_from = meta.index + 1;
        self.snapshot = meta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from(format!("{index}/{term}")),
        }
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(i as u64 + 1, t))
            .collect();
        RaftLog::restore(SnapshotMeta::default(), entries, 0)
    }

    #[test]
    fn merge_truncates_only_from_first_conflict() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        let truncated = log.merge(&[entry(2, 1), entry(3, 3)]);
        assert_eq!(truncated, Some(3));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Some(3));
        assert_eq!(log.term(2), Some(1));
    }

    #[test]
    fn merge_of_matching_prefix_keeps_longer_log() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        let truncated = log.merge(&[entry(2, 1), entry(3, 2)]);
        assert_eq!(truncated, None);
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn truncation_marks_entries_unstable_again() {
        let mut log = log_with_terms(&[1, 1, 1]);
        assert!(!log.has_unstable());
        log.merge(&[entry(2, 2)]);
        let unstable = log.take_unstable();
        assert_eq!(unstable, vec![entry(2, 2)]);
    }

    #[test]
    fn slice_sends_one_entry_even_over_byte_limit() {
        let log = log_with_terms(&[1, 1, 1]);
        assert_eq!(log.slice(1, 4, 10, 0).len(), 1);
        assert_eq!(log.slice(1, 4, 2, usize::MAX).len(), 2);
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let log = log_with_terms(&[1, 2, 2]);
        assert!(log.is_up_to_date(1, 3), "later last term wins");
        assert!(!log.is_up_to_date(5, 1), "earlier last term loses");
        assert!(log.is_up_to_date(3, 2), "equal log is up to date");
        assert!(!log.is_up_to_date(2, 2), "shorter log with same term loses");
    }

    #[test]
    fn term_lookups_around_snapshot() {
        let mut log = log_with_terms(&[1, 1, 2, 3]);
        log.committed = 3;
        log.applied = 3;
        log.compact(SnapshotMeta { index: 2, term: 1 });
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.first_index_of_term(3, 2), 3);
        assert_eq!(log.last_index_of_term(1), Some(2));
        assert_eq!(log.last_index_of_term(2), Some(3));
        assert_eq!(log.last_index_of_term(5), None);
    }
}
