//! Durable Raft state: one append-only file of checksummed records.
//!
//! Each record is `[length: u32 LE][!length: u32 LE][crc32 of body: u32 LE][body]`, and
//! the body starts with a kind byte. The inverted copy of the length distinguishes a
//! damaged length field from a record cut short by a crash. An entry record whose index is at or below the last stored index
//! replaces that entry and everything after it, which is how conflict truncation is
//! persisted without rewriting the file. The last hard-state record wins.
//!
//! Recovery reads records until the end. A record with an intact length that runs past
//! the end of the file, or that fails its checksum as the last thing in the file, is a
//! torn write: the file is cut back to the last valid record. A damaged length field, or
//! a bad record followed by more data, is corruption in the middle, and opening fails
//! instead of serving wrong data.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use log::{info, warn};

use crate::raft::{Entry, HardState, Snapshot, SnapshotMeta};

const LOG_FILE: &str = "raft.log";
const SNAPSHOT_FILE: &str = "snapshot";
/// Snapshot file header: index, term, CRC32 of the data.
const SNAPSHOT_HEADER_BYTES: usize = 20;
const HEADER_BYTES: usize = 12;
/// Upper bound of one record, so a corrupt length never causes a huge allocation.
const MAX_RECORD_BYTES: usize = 1 << 30;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
/// Marks the start of a compacted file: entries before `first_index` live in the snapshot.
const KIND_FIRST_INDEX: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "corrupt record at byte {offset} of {path} ({reason}) with {following} bytes after it; \
         refusing to start. Restore this node's data directory from a backup or delete it so \
         the node catches up from the leader"
    )]
    Corrupt { path: PathBuf, offset: u64, reason: String, following: u64 },
    #[error(
        "snapshot {path} is corrupt ({reason}); refusing to start. Restore this node's data \
         directory from a backup or delete it so the node catches up from the leader"
    )]
    CorruptSnapshot { path: PathBuf, reason: String },
    #[error("entry {index} in {path} does not follow entry {previous}; the log has a gap")]
    Gap { path: PathBuf, index: u64, previous: u64 },
}

/// State read back from disk at start.
#[derive(Debug, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    /// Entries after the compaction point, contiguous and in order.
    pub entries: Vec<Entry>,
    /// Bytes cut from a torn tail, zero when the file ended cleanly.
    pub truncated_bytes: u64,
}

/// The open log file.
pub struct LogStore {
    path: PathBuf,
    file: File,
    fsync: bool,
    /// Bytes in the file, so appends and compaction know the size without a stat call.
    size: u64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

impl LogStore {
    /// Opens (or creates) `dir/raft.log` and reads back its state, repairing a torn tail.
    pub fn open(dir: &Path, fsync: bool) -> Result<(LogStore, Recovered), StorageError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(LOG_FILE);

        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_error(&path))?;
        }
        let (recovered, valid_len) = replay(&path, &bytes)?;

        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_error(&path))?;
        if (valid_len as usize) < bytes.len() {
            warn!(
                "log {}: cut a torn tail of {} bytes after byte {valid_len}",
                path.display(),
                bytes.len() as u64 - valid_len
            );
            file.set_len(valid_len).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
        }
        sync_dir(dir)?;

        let recovered = Recovered { truncated_bytes: bytes.len() as u64 - valid_len, ..recovered };
        info!(
            "log {}: recovered term {} vote {:?} commit {} and {} entries",
            path.display(),
            recovered.hard_state.term,
            recovered.hard_state.voted_for,
            recovered.hard_state.commit,
            recovered.entries.len()
        );
        Ok((LogStore { path, file, fsync, size: valid_len }, recovered))
    }

    /// Appends entries and a hard state in one write, with an fsync when `sync` is set.
    /// New entries, a new term or a new vote need the fsync before any message that
    /// depends on them. A commit index alone may be lost, because Raft recovers it.
    pub fn append(&mut self, hard_state: Option<&HardState>, entries: &[Entry], sync: bool) -> Result<(), StorageError> {
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::new();
        for entry in entries {
            encode_record(&mut buffer, KIND_ENTRY, &encode_entry(entry));
        }
        if let Some(state) = hard_state {
            encode_record(&mut buffer, KIND_HARD_STATE, &encode_hard_state(state));
        }

        self.file.write_all(&buffer).map_err(io_error(&self.path))?;
        if self.fsync && sync {
            self.file.sync_data().map_err(io_error(&self.path))?;
        }
        self.size += buffer.len() as u64;
        Ok(())
    }

    /// Replaces the file with one holding only `entries` (those after a snapshot) and the hard state.
    pub fn rewrite(&mut self, first_index: u64, hard_state: &HardState, entries: &[Entry]) -> Result<(), StorageError> {
        let mut buffer = Vec::new();
        encode_record(&mut buffer, KIND_FIRST_INDEX, &first_index.to_le_bytes());
        for entry in entries {
            encode_record(&mut buffer, KIND_ENTRY, &encode_entry(entry));
        }
        encode_record(&mut buffer, KIND_HARD_STATE, &encode_hard_state(hard_state));

        let temp = self.path.with_extension("log.tmp");
        write_file_synced(&temp, &buffer)?;
        std::fs::rename(&temp, &self.path).map_err(io_error(&self.path))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }

        self.file = OpenOptions::new().append(true).open(&self.path).map_err(io_error(&self.path))?;
        self.size = buffer.len() as u64;
        Ok(())
    }

    /// Drops every entry at or below `index` (now covered by a snapshot) from the file.
    pub fn compact(&mut self, index: u64, hard_state: &HardState) -> Result<(), StorageError> {
        let bytes = std::fs::read(&self.path).map_err(io_error(&self.path))?;
        let (recovered, _) = replay(&self.path, &bytes)?;
        let later_entries: Vec<Entry> = recovered.entries.into_iter().filter(|e| e.index > index).collect();
        self.rewrite(index + 1, hard_state, &later_entries)
    }

    /// Current size of the log file in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Saves a snapshot atomically as `dir/snapshot`.
pub fn save_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<(), StorageError> {
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + snapshot.data.len());
    bytes.extend_from_slice(&snapshot.meta.index.to_le_bytes());
    bytes.extend_from_slice(&snapshot.meta.term.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&snapshot.data).to_le_bytes());
    bytes.extend_from_slice(&snapshot.data);

    let temp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    write_file_synced(&temp, &bytes)?;
    let path = dir.join(SNAPSHOT_FILE);
    std::fs::rename(&temp, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}

/// Reads `dir/snapshot` back, or `None` when the node never took one.
pub fn load_snapshot(dir: &Path) -> Result<Option<Snapshot>, StorageError> {
    let path = dir.join(SNAPSHOT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(io_error(&path))?;
    let corrupt = |reason: &str| StorageError::CorruptSnapshot { path: path.clone(), reason: reason.to_string() };
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(corrupt("shorter than its header"));
    }
    let index = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
    let term = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
    let data = Bytes::from(bytes).slice(SNAPSHOT_HEADER_BYTES..);
    if crc32fast::hash(&data) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Some(Snapshot { meta: SnapshotMeta { index, term }, data }))
}

/// Writes `bytes` to `path` and fsyncs the file.
pub fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut file = File::create(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Fsyncs a directory so that a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))
}

fn encode_record(buffer: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(body);
    let length = (body.len() + 1) as u32;
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(&(!length).to_le_bytes());
    buffer.extend_from_slice(&hasher.finalize().to_le_bytes());
    buffer.push(kind);
    buffer.extend_from_slice(body);
}

fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + entry.data.len());
    body.extend_from_slice(&entry.index.to_le_bytes());
    body.extend_from_slice(&entry.term.to_le_bytes());
    body.extend_from_slice(&entry.data);
    body
}

fn encode_hard_state(state: &HardState) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&state.term.to_le_bytes());
    body.extend_from_slice(&state.commit.to_le_bytes());
    if let Some(vote) = &state.voted_for {
        body.extend_from_slice(vote.as_bytes());
    }
    body
}

/// Reads all records; returns the state and the length of the valid prefix.
fn replay(path: &Path, bytes: &[u8]) -> Result<(Recovered, u64), StorageError> {
    let mut recovered = Recovered::default();
    let mut offset = 0usize;

    while offset < bytes.len() {
        let record = match read_record(bytes, offset) {
            Ok(record) => record,
            Err(RecordError::Torn) => break,
            Err(RecordError::Corrupt(reason)) => {
                return Err(StorageError::Corrupt {
                    path: path.to_path_buf(),
                    offset: offset as u64,
                    reason,
                    following: (bytes.len() - offset) as u64,
                });
            }
        };
        apply_record(path, &mut recovered, record.0, record.1, offset)?;
        offset = record.2;
    }
    Ok((recovered, offset as u64))
}

/// Reason a record could not be read.
enum RecordError {
    /// Cut short by a crash during the write; everything from here on is discarded.
    Torn,
    /// Damaged data that a crash cannot explain.
    Corrupt(String),
}

/// Returns `(kind, body, next offset)` or why the record is invalid.
fn read_record(bytes: &[u8], offset: usize) -> Result<(u8, &[u8], usize), RecordError> {
    if offset + HEADER_BYTES > bytes.len() {
        return Err(RecordError::Torn);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[offset + at..offset + at + 4].try_into().unwrap());
    let (length, inverted, crc) = (word(0), word(4), word(8));
    if inverted != !length {
        return Err(RecordError::Corrupt("length field does not match its check copy".into()));
    }
    let length = length as usize;
    if length == 0 || length > MAX_RECORD_BYTES {
        return Err(RecordError::Corrupt(format!("record length {length} is out of range")));
    }

    let start = offset + HEADER_BYTES;
    let end = start + length;
    if end > bytes.len() {
        return Err(RecordError::Torn);
    }
    let payload = &bytes[start..end];
    if crc32fast::hash(payload) != crc {
        if end == bytes.len() {
            return Err(RecordError::Torn);
        }
        return Err(RecordError::Corrupt("checksum mismatch".into()));
    }
    Ok((payload[0], &payload[1..], end))
}

fn apply_record(path: &Path, recovered: &mut Recovered, kind: u8, body: &[u8], offset: usize) -> Result<(), StorageError> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_string(),
        following: 0,
    };
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap());

    match kind {
        KIND_ENTRY if body.len() >= 16 => {
            let entry = Entry { index: u64_at(0), term: u64_at(8), data: Bytes::copy_from_slice(&body[16..]) };
            push_entry(path, &mut recovered.entries, entry)
        }
        KIND_HARD_STATE if body.len() >= 16 => {
            let vote = std::str::from_utf8(&body[16..]).map_err(|_| corrupt("vote is not UTF-8"))?;
            recovered.hard_state = HardState {
                term: u64_at(0),
                commit: u64_at(8),
                voted_for: if vote.is_empty() { None } else { Some(vote.to_string()) },
            };
            Ok(())
        }
        KIND_FIRST_INDEX if body.len() == 8 => {
            recovered.entries.clear();
            Ok(())
        }
        _ => Err(corrupt(&format!("unknown record kind {kind} or short body of {} bytes", body.len()))),
    }
}

/// Adds an entry read back from the log, replacing any stored entries at or after its index.
fn push_entry(path: &Path, entries: &mut Vec<Entry>, entry: Entry) -> Result<(), StorageError> {
    if let Some(first) = entries.first().map(|e| e.index) {
        if entry.index < first {
            entries.clear();
        } else {
            entries.truncate((entry.index - first) as usize);
        }
    }
    if let Some(last) = entries.last() {
        if entry.index != last.index + 1 {
            return Err(StorageError::Gap { path: path.to_path_buf(), index: entry.index, previous: last.index });
        }
    }
    entries.push(entry);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry { index, term, data: Bytes::copy_from_slice(data.as_bytes()) }
    }

    fn state(term: u64, vote: Option<&str>, commit: u64) -> HardState {
        HardState { term, voted_for: vote.map(str::to_string), commit }
    }

    #[test]
    fn append_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, recovered) = LogStore::open(dir.path(), true).unwrap();
        assert!(recovered.entries.is_empty());

        store.append(Some(&state(2, Some("Node_B"), 0)), &[entry(1, 1, "a"), entry(2, 2, "b")], true).unwrap();
        store.append(Some(&state(2, Some("Node_B"), 2)), &[], true).unwrap();
        drop(store);

        let (_, recovered) = LogStore::open(dir.path(), true).unwrap();
        assert_eq!(recovered.hard_state, state(2, Some("Node_B"), 2));
        assert_eq!(recovered.entries, vec![entry(1, 1, "a"), entry(2, 2, "b")]);
    }

    #[test]
    fn overwriting_entry_truncates_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path(), false).unwrap();
        store.append(None, &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")], true).unwrap();
        store.append(None, &[entry(2, 3, "x")], true).unwrap();
        drop(store);

        let (_, recovered) = LogStore::open(dir.path(), false).unwrap();
        assert_eq!(recovered.entries, vec![entry(1, 1, "a"), entry(2, 3, "x")]);
    }

    #[test]
    fn torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path(), true).unwrap();
        store.append(None, &[entry(1, 1, "a"), entry(2, 1, "bbbbbbbb")], true).unwrap();
        let path = store.path().to_path_buf();
        drop(store);

        let full = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(full - 3).unwrap();

        let (mut store, recovered) = LogStore::open(dir.path(), true).unwrap();
        assert_eq!(recovered.entries, vec![entry(1, 1, "a")]);
        assert!(recovered.truncated_bytes > 0);

        store.append(None, &[entry(2, 1, "c")], true).unwrap();
        drop(store);
        let (_, recovered) = LogStore::open(dir.path(), true).unwrap();
        assert_eq!(recovered.entries, vec![entry(1, 1, "a"), entry(2, 1, "c")]);
    }

    #[test]
    fn corrupt_middle_record_fails_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path(), true).unwrap();
        store.append(None, &[entry(1, 1, "aaaa"), entry(2, 1, "bbbb"), entry(3, 1, "cccc")], true).unwrap();
        let path = store.path().to_path_buf();
        drop(store);

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES + 20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();

        let error = LogStore::open(dir.path(), true).err().expect("open should fail");
        assert!(matches!(error, StorageError::Corrupt { offset: 0, .. }), "{error}");
    }

    #[test]
    fn snapshot_round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_snapshot(dir.path()).unwrap().is_none());

        let snapshot = Snapshot { meta: SnapshotMeta { index: 7, term: 2 }, data: Bytes::from_static(b"state") };
        save_snapshot(dir.path(), &snapshot).unwrap();
        assert_eq!(load_snapshot(dir.path()).unwrap(), Some(snapshot));

        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(load_snapshot(dir.path()), Err(StorageError::CorruptSnapshot { .. })));
    }

    #[test]
    fn compact_drops_covered_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path(), true).unwrap();
        store.append(Some(&state(1, None, 2)), &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")], true).unwrap();
        store.compact(2, &state(1, None, 2)).unwrap();
        drop(store);

        let (_, recovered) = LogStore::open(dir.path(), true).unwrap();
        assert_eq!(recovered.entries, vec![entry(3, 1, "c")]);
    }

    #[test]
    fn damaged_length_field_fails_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path(), true).unwrap();
        store.append(None, &[entry(1, 1, "aaaa"), entry(2, 1, "bbbb")], true).unwrap();
        let path = store.path().to_path_buf();
        drop(store);

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let error = LogStore::open(dir.path(), true).err().expect("open should fail");
        assert!(matches!(error, StorageError::Corrupt { offset: 0, .. }), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the damaged file was changed");
    }

    #[test]
    fn rewrite_keeps_only_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path(), true).unwrap();
        store.append(Some(&state(1, None, 3)), &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")], true).unwrap();
        store.rewrite(3, &state(1, None, 3), &[entry(3, 1, "c")]).unwrap();
        store.append(None, &[entry(4, 1, "d")], true).unwrap();
        drop(store);

        let (_, recovered) = LogStore::open(dir.path(), true).unwrap();
        assert_eq!(recovered.entries, vec![entry(3, 1, "c"), entry(4, 1, "d")]);
        assert_eq!(recovered.hard_state.commit, 3);
    }
}
