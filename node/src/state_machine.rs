//! The replicated state machine: committed `STORE_FILE` and `STORE_MODEL` entries
//! become files under `datasets/` and `models/`, plus in-memory tables of what is stored
//! and which client request ids have already been applied.
//!
//! Everything written here is derived from the entry alone (never from local time or
//! local paths), so every node's directories end byte-identical.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use log::{debug, info};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::raft::Entry;
use crate::storage::StorageError;

pub const DATASETS_DIR: &str = "datasets";
pub const MODELS_DIR: &str = "models";
pub const MODEL_EXTENSION: &str = "model";

/// The header of a log entry's data; the file content follows it after one `\n`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Command {
    /// Store a dataset file under `datasets/<name>`.
    StoreFile {
        name: String,
        /// Milliseconds since the Unix epoch on the leader when it proposed the entry.
        timestamp: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Store a trained model under `models/<model_id>.model`, with its metadata beside it.
    StoreModel {
        model_id: String,
        dataset: String,
        timestamp: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// Wall time of the training child process, in milliseconds.
        duration_ms: u64,
        /// The `ai-core train --json` result.
        metrics: Value,
    },
}

impl Command {
    pub fn kind(&self) -> &'static str {
        match self {
            Command::StoreFile { .. } => "STORE_FILE",
            Command::StoreModel { .. } => "STORE_MODEL",
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            Command::StoreFile { request_id, .. } | Command::StoreModel { request_id, .. } => request_id.as_deref(),
        }
    }

    /// Encodes the command and its file content as log entry data.
    pub fn encode(&self, content: &[u8]) -> Bytes {
        let header = serde_json::to_vec(self).expect("commands always serialize");
        let mut data = BytesMut::with_capacity(header.len() + 1 + content.len());
        data.put_slice(&header);
        data.put_u8(b'\n');
        data.put_slice(content);
        data.freeze()
    }

    /// Splits entry data into the command and its content.
    pub fn decode(data: &Bytes) -> Result<(Command, Bytes), String> {
        let split = data.iter().position(|&b| b == b'\n').ok_or("entry data has no header line")?;
        let command = serde_json::from_slice(&data[..split]).map_err(|e| format!("invalid entry header: {e}"))?;
        Ok((command, data.slice(split + 1..)))
    }
}

/// A stored file as the monitor and LIST_MODELS see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub index: u64,
    pub timestamp: i64,
}

/// A stored model and the metrics it was trained with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub file: FileRecord,
    pub dataset: String,
    pub duration_ms: u64,
    pub metrics: Value,
}

impl ModelRecord {
    /// Returns the LIST_MODELS view of this model.
    pub fn info(&self) -> client::wire::ModelInfo {
        client::wire::ModelInfo {
            id: self.file.name.clone(),
            dataset: self.dataset.clone(),
            date: format_timestamp(self.file.timestamp),
            status: "ready".into(),
            accuracy: self.metrics.get("accuracy").and_then(Value::as_f64),
            task: self.metrics.get("task").and_then(Value::as_str).map(str::to_string),
            features: self.metrics.get("features").and_then(Value::as_u64).map(|n| n as usize),
            log_index: Some(self.file.index),
        }
    }

    /// Builds the TRAIN_REQUEST success response from the entry, so a retried request
    /// gets the same response on any node.
    pub fn train_response(&self) -> Value {
        let mut response = json!({
            "success": true,
            "message": format!("model {} trained on {} and replicated", self.file.name, self.dataset),
            "modelId": self.file.name,
            "dataset": self.dataset,
            "logIndex": self.file.index,
            "duration": self.duration_ms,
        });
        if let (Value::Object(out), Value::Object(metrics)) = (&mut response, &self.metrics) {
            for (key, value) in metrics {
                if !matches!(key.as_str(), "success" | "file" | "modelId") {
                    out.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        response
    }
}

/// Result of applying one entry, sent to the request that proposed it.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Noop,
    Dataset(FileRecord),
    Model(ModelRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("entry {index} cannot be decoded: {reason}")]
    Decode { index: u64, reason: String },
    #[error("entry {index} names an invalid file {name:?}: {reason}")]
    InvalidName { index: u64, name: String, reason: String },
    #[error("snapshot cannot be decoded: {0}")]
    Snapshot(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The tables of a snapshot; the files' bytes follow it in the snapshot data, datasets
/// first and then models, each in the order listed here.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    applied: u64,
    datasets: Vec<FileRecord>,
    models: Vec<ModelRecord>,
    requests: Vec<(String, RequestRecord)>,
}

/// Files already stored for one client request id, as they were when it applied, so
/// a retry gets the first result even after the same name was stored again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub dataset: Option<FileRecord>,
    pub model: Option<ModelRecord>,
}

pub struct StateMachine {
    dir: PathBuf,
    datasets: BTreeMap<String, FileRecord>,
    models: BTreeMap<String, ModelRecord>,
    requests: HashMap<String, RequestRecord>,
    applied: u64,
}

impl StateMachine {
    /// Creates the `datasets/` and `models/` directories under the node's data directory.
    pub fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        for sub in [DATASETS_DIR, MODELS_DIR] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| StorageError::Io { path, source })?;
        }
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            datasets: BTreeMap::new(),
            models: BTreeMap::new(),
            requests: HashMap::new(),
            applied: 0,
        })
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn datasets(&self) -> impl Iterator<Item = &FileRecord> {
        self.datasets.values()
    }

    pub fn dataset(&self, name: &str) -> Option<&FileRecord> {
        self.datasets.get(name)
    }

    pub fn models(&self) -> impl Iterator<Item = &ModelRecord> {
        self.models.values()
    }

    pub fn model(&self, id: &str) -> Option<&ModelRecord> {
        self.models.get(id)
    }

    pub fn request(&self, request_id: &str) -> Option<&RequestRecord> {
        self.requests.get(request_id)
    }

    pub fn dataset_path(&self, name: &str) -> PathBuf {
        self.dir.join(DATASETS_DIR).join(name)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.dir.join(MODELS_DIR)
    }

    /// Applies one committed entry. Entries must arrive in index order.
    pub fn apply(&mut self, entry: &Entry) -> Result<Applied, ApplyError> {
        debug_assert!(entry.index > self.applied, "entry {} applied after {}", entry.index, self.applied);
        self.applied = entry.index;
        if entry.data.is_empty() {
            return Ok(Applied::Noop);
        }

        let (command, content) =
            Command::decode(&entry.data).map_err(|reason| ApplyError::Decode { index: entry.index, reason })?;
        if let Some(applied) = self.already_applied(&command) {
            info!("entry {} repeats request {:?}; kept the first result", entry.index, command.request_id());
            return Ok(applied);
        }
        match command {
            Command::StoreFile { name, timestamp, request_id } => {
                self.apply_store_file(entry.index, name, timestamp, request_id, &content)
            }
            Command::StoreModel { model_id, dataset, timestamp, request_id, duration_ms, metrics } => {
                let file = self.write_file(entry.index, MODELS_DIR, &model_id, MODEL_EXTENSION, timestamp, &content)?;
                let record = ModelRecord { file, dataset, duration_ms, metrics };
                self.write_model_metadata(&record)?;
                info!("applied STORE_MODEL {} at index {}", model_id, entry.index);

                if let Some(id) = request_id {
                    self.requests.entry(id).or_default().model = Some(record.clone());
                }
                self.models.insert(model_id, record.clone());
                Ok(Applied::Model(record))
            }
        }
    }

    /// Returns the result of an earlier entry with the same request id and kind, so that
    /// a request proposed twice (for example by two successive leaders) applies once.
    fn already_applied(&self, command: &Command) -> Option<Applied> {
        let record = self.requests.get(command.request_id()?)?;
        match command {
            Command::StoreFile { .. } => record.dataset.clone().map(Applied::Dataset),
            Command::StoreModel { .. } => record.model.clone().map(Applied::Model),
        }
    }

    fn apply_store_file(
        &mut self,
        index: u64,
        name: String,
        timestamp: i64,
        request_id: Option<String>,
        content: &[u8],
    ) -> Result<Applied, ApplyError> {
        let record = self.write_file(index, DATASETS_DIR, &name, "", timestamp, content)?;
        info!("applied STORE_FILE {} ({} bytes) at index {}", name, record.size, index);

        if let Some(id) = request_id {
            self.requests.entry(id).or_default().dataset = Some(record.clone());
        }
        self.datasets.insert(name, record.clone());
        Ok(Applied::Dataset(record))
    }

    /// Writes `dir/<name>[.extension]` atomically unless it already contains these bytes.
    fn write_file(
        &self,
        index: u64,
        sub: &str,
        name: &str,
        extension: &str,
        timestamp: i64,
        content: &[u8],
    ) -> Result<FileRecord, ApplyError> {
        client::wire::validate_name("file name", name).map_err(|e| ApplyError::InvalidName {
            index,
            name: name.to_string(),
            reason: e.message,
        })?;

        let file_name = if extension.is_empty() { name.to_string() } else { format!("{name}.{extension}") };
        let dir = self.dir.join(sub);
        let path = dir.join(&file_name);
        let sha256 = hex_sha256(content);

        if file_sha256(&path).as_deref() == Some(sha256.as_str()) {
            debug!("{} already contains the bytes of entry {index}; not rewritten", path.display());
        } else {
            write_atomically(&dir, &file_name, content)?;
        }
        Ok(FileRecord { name: name.to_string(), size: content.len() as u64, sha256, index, timestamp })
    }

    /// Encodes the whole state, including every file's bytes, as snapshot data.
    // NOTE: the snapshot contains every dataset and model in memory; fine for tens of
    // files of a few MiB, not for a data lake.
    pub fn snapshot(&self) -> Result<Bytes, StorageError> {
        let header = SnapshotHeader {
            applied: self.applied,
            datasets: self.datasets.values().cloned().collect(),
            models: self.models.values().cloned().collect(),
            requests: self.requests.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let mut data = serde_json::to_vec(&header).expect("snapshot header always serializes");
        data.push(b'\n');

        let files = header.datasets.iter().map(|d| self.dataset_path(&d.name)).chain(
            header.models.iter().map(|m| self.models_dir().join(format!("{}.{MODEL_EXTENSION}", m.file.name))),
        );
        for path in files {
            let bytes = std::fs::read(&path).map_err(|source| StorageError::Io { path: path.clone(), source })?;
            data.extend_from_slice(&bytes);
        }
        Ok(Bytes::from(data))
    }

    /// Replaces the state with a snapshot's, rewriting only files whose bytes differ.
    pub fn restore(&mut self, data: &Bytes) -> Result<(), ApplyError> {
        let split = data.iter().position(|&b| b == b'\n').ok_or_else(|| ApplyError::Snapshot("no header line".into()))?;
        let header: SnapshotHeader =
            serde_json::from_slice(&data[..split]).map_err(|e| ApplyError::Snapshot(format!("invalid header: {e}")))?;
        let mut offset = split + 1;
        let mut take = |size: u64, name: &str| -> Result<Bytes, ApplyError> {
            let end = offset.checked_add(size as usize).filter(|&end| end <= data.len());
            let end = end.ok_or_else(|| ApplyError::Snapshot(format!("file {name} runs past the end of the snapshot")))?;
            let bytes = data.slice(offset..end);
            offset = end;
            Ok(bytes)
        };

        let mut datasets = BTreeMap::new();
        for record in header.datasets {
            let content = take(record.size, &record.name)?;
            let written = self.write_file(record.index, DATASETS_DIR, &record.name, "", record.timestamp, &content)?;
            check_hash(&written, &record)?;
            datasets.insert(record.name.clone(), record);
        }
        let mut models = BTreeMap::new();
        for record in header.models {
            let file = &record.file;
            let content = take(file.size, &file.name)?;
            let written = self.write_file(file.index, MODELS_DIR, &file.name, MODEL_EXTENSION, file.timestamp, &content)?;
            check_hash(&written, file)?;
            self.write_model_metadata(&record)?;
            models.insert(file.name.clone(), record);
        }

        self.datasets = datasets;
        self.models = models;
        self.requests = header.requests.into_iter().collect();
        self.applied = header.applied;
        info!("restored a snapshot through index {} ({} datasets, {} models)", self.applied, self.datasets.len(), self.models.len());
        Ok(())
    }

    fn write_model_metadata(&self, record: &ModelRecord) -> Result<(), StorageError> {
        let mut metadata = serde_json::to_value(record.info()).expect("model info always serializes");
        metadata["sha256"] = Value::String(record.file.sha256.clone());
        metadata["durationMs"] = json!(record.duration_ms);
        metadata["metrics"] = record.metrics.clone();
        let bytes = serde_json::to_vec_pretty(&metadata).expect("JSON values always serialize");
        write_atomically(&self.dir.join(MODELS_DIR), &format!("{}.json", record.file.name), &bytes)
    }
}

fn check_hash(written: &FileRecord, expected: &FileRecord) -> Result<(), ApplyError> {
    if written.sha256 == expected.sha256 {
        return Ok(());
    }
    Err(ApplyError::Snapshot(format!(
        "file {} has SHA-256 {} but the snapshot lists {}",
        expected.name, written.sha256, expected.sha256
    )))
}

/// Writes a file through a temporary name in the same directory and a rename, so that
/// readers see either the old file or the whole new one.
///
/// There is no fsync: every file here is derived from the log and the snapshot, which
/// are durable, and a restart rebuilds any file whose bytes do not match its entry.
/// Flushing each applied file on the Raft thread cost more than the log's own fsync.
pub fn write_atomically(dir: &Path, file_name: &str, content: &[u8]) -> Result<(), StorageError> {
    let temp = dir.join(format!(".{file_name}.tmp"));
    std::fs::write(&temp, content).map_err(|source| StorageError::Io { path: temp.clone(), source })?;
    let path = dir.join(file_name);
    std::fs::rename(&temp, &path).map_err(|source| StorageError::Io { path, source })
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_sha256(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| hex_sha256(&bytes))
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC.
pub fn format_timestamp(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, command: &Command, content: &[u8]) -> Entry {
        Entry { index, term: 1, data: command.encode(content) }
    }

    fn store_file(name: &str, request_id: Option<&str>) -> Command {
        Command::StoreFile { name: name.into(), timestamp: 1_700_000_000_000, request_id: request_id.map(Into::into) }
    }

    #[test]
    fn command_round_trips() {
        let command = store_file("a.csv", Some("r1"));
        let data = command.encode(b"x,y\n1,2\n");
        let (decoded, content) = Command::decode(&data).unwrap();
        assert_eq!(decoded, command);
        assert_eq!(&content[..], b"x,y\n1,2\n");
    }

    #[test]
    fn store_file_writes_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path()).unwrap();
        let applied = machine.apply(&entry(1, &store_file("a.csv", Some("r1")), b"x,y\n")).unwrap();

        assert!(matches!(applied, Applied::Dataset(ref r) if r.size == 4));
        assert_eq!(std::fs::read(dir.path().join("datasets/a.csv")).unwrap(), b"x,y\n");
        assert_eq!(machine.request("r1").unwrap().dataset.as_ref().unwrap().index, 1);
        assert_eq!(machine.applied(), 1);
    }

    #[test]
    fn store_model_writes_model_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path()).unwrap();
        let command = Command::StoreModel {
            model_id: "m1".into(),
            dataset: "a.csv".into(),
            timestamp: 0,
            request_id: Some("r2".into()),
            duration_ms: 12,
            metrics: json!({"accuracy": 0.97, "features": 2}),
        };
        machine.apply(&entry(1, &command, b"MODEL")).unwrap();

        assert_eq!(std::fs::read(dir.path().join("models/m1.model")).unwrap(), b"MODEL");
        assert!(dir.path().join("models/m1.json").exists());
        let model = machine.model("m1").unwrap();
        assert_eq!(model.info().accuracy, Some(0.97));
        assert_eq!(model.train_response()["modelId"], "m1");
        assert_eq!(machine.request("r2").unwrap().model.as_ref().map(|m| m.file.name.as_str()), Some("m1"));
    }

    #[test]
    fn repeated_request_id_applies_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path()).unwrap();
        let first = machine.apply(&entry(1, &store_file("a.csv", Some("r1")), b"first")).unwrap();
        let second = machine.apply(&entry(2, &store_file("a.csv", Some("r1")), b"second")).unwrap();

        assert_eq!(first, second);
        assert_eq!(std::fs::read(dir.path().join("datasets/a.csv")).unwrap(), b"first");
        assert_eq!(machine.applied(), 2);
    }

    #[test]
    fn hostile_name_in_entry_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path()).unwrap();
        let error = machine.apply(&entry(1, &store_file("../escape", None), b"x")).unwrap_err();
        assert!(matches!(error, ApplyError::InvalidName { .. }));
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn snapshot_restores_files_and_tables() {
        let source_dir = tempfile::tempdir().unwrap();
        let mut source = StateMachine::open(source_dir.path()).unwrap();
        source.apply(&entry(1, &store_file("a.csv", Some("r1")), b"x,y\n1,2\n")).unwrap();
        let model = Command::StoreModel {
            model_id: "m1".into(),
            dataset: "a.csv".into(),
            timestamp: 5,
            request_id: Some("r2".into()),
            duration_ms: 3,
            metrics: json!({"features": 1}),
        };
        source.apply(&entry(2, &model, b"WEIGHTS")).unwrap();
        let data = source.snapshot().unwrap();

        let target_dir = tempfile::tempdir().unwrap();
        let mut target = StateMachine::open(target_dir.path()).unwrap();
        target.restore(&data).unwrap();

        assert_eq!(target.applied(), 2);
        assert_eq!(std::fs::read(target_dir.path().join("datasets/a.csv")).unwrap(), b"x,y\n1,2\n");
        assert_eq!(std::fs::read(target_dir.path().join("models/m1.model")).unwrap(), b"WEIGHTS");
        assert_eq!(
            std::fs::read(target_dir.path().join("models/m1.json")).unwrap(),
            std::fs::read(source_dir.path().join("models/m1.json")).unwrap()
        );
        assert_eq!(target.request("r2").unwrap().model.as_ref().map(|m| m.file.index), Some(2));
        assert_eq!(target.model("m1"), source.model("m1"));
    }

    #[test]
    fn truncated_snapshot_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path()).unwrap();
        machine.apply(&entry(1, &store_file("a.csv", None), b"0123456789")).unwrap();
        let data = machine.snapshot().unwrap();

        let other = tempfile::tempdir().unwrap();
        let error = StateMachine::open(other.path()).unwrap().restore(&data.slice(..data.len() - 3)).unwrap_err();
        assert!(matches!(error, ApplyError::Snapshot(_)), "{error}");
    }

    #[test]
    fn noop_entry_only_advances_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachine::open(dir.path()).unwrap();
        let applied = machine.apply(&Entry { index: 1, term: 1, data: Bytes::new() }).unwrap();
        assert_eq!(applied, Applied::Noop);
        assert_eq!(machine.applied(), 1);
    }
}
