//! The Raft driver: one OS thread that owns the Raft core, the log file and the state
//! machine, and turns the core's `Ready` bundles into fsyncs, sends and applies.
//!
//! Everything reaches the thread as a [`DriverEvent`] on one channel; time enters as
//! ticks computed from the clock. Events that arrive together are handled before one
//! `Ready`, so concurrent proposals share one write and one fsync.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::{error, info, warn};
use tokio::sync::{oneshot, watch};

use crate::metrics::Metrics;
use crate::raft::{Entry, HardState, Message, NodeId, ProposeError, Raft, Ready, Role, Snapshot, Status};
use crate::state_machine::{Applied, StateMachine};
use crate::storage::{save_snapshot, LogStore, StorageError};
use crate::transport::Transport;

/// Log entries kept for the monitor's "last entries" table.
pub const RECENT_ENTRIES: usize = 50;

/// Maximum time between two status publications, so peers' ages stay current.
const STATUS_REFRESH: Duration = Duration::from_millis(100);

/// Most events handled before one `Ready` is processed.
const MAX_EVENTS_PER_READY: usize = 512;

/// Fatal error that stops the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("installing a snapshot failed: {0}")]
    Snapshot(crate::state_machine::ApplyError),
}

/// Reason a proposal did not apply.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProposalError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership changed before entry {index} committed; the entry was replaced")]
    Superseded { index: u64 },
    #[error("the entry at index {index} could not be applied: {reason}")]
    ApplyFailed { index: u64, reason: String },
    #[error("the node is shutting down")]
    Stopped,
}

pub type ProposalReply = oneshot::Sender<Result<(u64, Applied), ProposalError>>;

pub enum DriverEvent {
    Peer(NodeId, Message),
    Propose(Bytes, ProposalReply),
    Stop,
}

/// A copy of the Raft status, published after every `Ready`.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub raft: Status,
    /// Recent log entries as (index, term, kind, size), newest last.
    pub recent_entries: Vec<EntrySummary>,
    /// Milliseconds since each peer's last message, for peers heard from at least once.
    pub peers_last_heard: Vec<(NodeId, u64)>,
    pub log_bytes: u64,
    pub log_entries: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct EntrySummary {
    pub index: u64,
    pub term: u64,
    pub kind: String,
    pub name: String,
    pub bytes: usize,
}

/// Handles that the servers use to talk to the driver.
#[derive(Clone)]
pub struct DriverHandle {
    events: std_mpsc::Sender<DriverEvent>,
    pub status: watch::Receiver<NodeStatus>,
    pub state: Arc<RwLock<StateMachine>>,
}

impl DriverHandle {
    /// Proposes entry data and waits until it applies on this node.
    pub async fn propose(&self, data: Bytes) -> Result<(u64, Applied), ProposalError> {
        let (reply, result) = oneshot::channel();
        self.events.send(DriverEvent::Propose(data, reply)).map_err(|_| ProposalError::Stopped)?;
        result.await.map_err(|_| ProposalError::Stopped)?
    }

    pub fn peer_sender(&self) -> std_mpsc::Sender<DriverEvent> {
        self.events.clone()
    }

    pub fn stop(&self) {
        let _ = self.events.send(DriverEvent::Stop);
    }

    pub fn current(&self) -> NodeStatus {
        self.status.borrow().clone()
    }
}

/// Everything the driver thread takes ownership of.
pub struct DriverParts {
    pub raft: Raft,
    pub store: LogStore,
    pub state: StateMachine,
    pub transport: Transport,
    pub metrics: Arc<Metrics>,
    pub tick: Duration,
    /// Index of the last log entry on disk.
    pub log_entries: u64,
    /// Directory of `raft.log` and `snapshot`.
    pub logs_dir: PathBuf,
    /// Applied entries past the last snapshot that trigger a new one.
    pub snapshot_entries: u64,
    pub hard_state: HardState,
    pub snapshot_index: u64,
    /// Summaries of the last entries read back from disk.
    pub recent: Vec<EntrySummary>,
}

pub struct Driver {
    raft: Raft,
    store: LogStore,
    state: Arc<RwLock<StateMachine>>,
    transport: Transport,
    metrics: Arc<Metrics>,
    tick: Duration,
    logs_dir: PathBuf,
    snapshot_entries: u64,
    /// The last hard state written, needed when the log file is rewritten.
    hard_state: HardState,
    /// Index covered by the latest snapshot; the log file holds only later entries.
    snapshot_index: u64,
    /// Proposals waiting for their entry to apply, by index, with the term they were proposed in.
    pending: BTreeMap<u64, (u64, ProposalReply)>,
    /// Proposals resolved by this round's applies, replied to once the status is published.
    completed: Vec<(ProposalReply, Result<(u64, Applied), ProposalError>)>,
    status: watch::Sender<NodeStatus>,
    recent: Vec<EntrySummary>,
    /// When each peer's last message arrived.
    last_heard: BTreeMap<NodeId, Instant>,
    /// When the status was last published, to refresh the peers' ages now and then.
    last_published: Instant,
    log_entries: u64,
    last_leader: Option<NodeId>,
    last_role: Role,
    last_term: u64,
}

impl Driver {
    /// Starts the driver thread and returns its handle.
    pub fn spawn(parts: DriverParts) -> (DriverHandle, std::thread::JoinHandle<()>) {
        let (events, inbox) = std_mpsc::channel();
        let state = Arc::new(RwLock::new(parts.state));
        let initial = NodeStatus {
            raft: parts.raft.status(),
            recent_entries: parts.recent.clone(),
            peers_last_heard: Vec::new(),
            log_bytes: parts.store.size(),
            log_entries: parts.log_entries,
        };
        let (status_sender, status) = watch::channel(initial);

        let driver = Driver {
            last_role: parts.raft.role(),
            last_term: parts.raft.term(),
            last_leader: None,
            raft: parts.raft,
            store: parts.store,
            state: state.clone(),
            transport: parts.transport,
            metrics: parts.metrics,
            tick: parts.tick,
            logs_dir: parts.logs_dir,
            snapshot_entries: parts.snapshot_entries.max(1),
            hard_state: parts.hard_state,
            snapshot_index: parts.snapshot_index,
            pending: BTreeMap::new(),
            completed: Vec::new(),
            status: status_sender,
            recent: parts.recent,
            last_heard: BTreeMap::new(),
            last_published: Instant::now(),
            log_entries: parts.log_entries,
        };
        let thread = std::thread::Builder::new()
            .name("raft-driver".into())
            .spawn(move || driver.run(inbox))
            .expect("spawning the Raft driver thread");
        (DriverHandle { events, status, state }, thread)
    }

    fn run(mut self, inbox: std_mpsc::Receiver<DriverEvent>) {
        info!("{}: Raft driver started at term {}", self.raft.id(), self.raft.term());
        let mut next_tick = Instant::now() + self.tick;

        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.raft.tick();
                next_tick += self.tick;
                if next_tick < now {
                    next_tick = now + self.tick;
                }
            }

            let mut stop = false;
            match inbox.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                Ok(event) => stop |= self.handle(event),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => stop = true,
            }
            for _ in 0..MAX_EVENTS_PER_READY {
                match inbox.try_recv() {
                    Ok(event) => stop |= self.handle(event),
                    Err(_) => break,
                }
            }

            if let Err(e) = self.process_ready() {
                // A failed write or fsync leaves the on-disk state unknown; continuing
                // could acknowledge data that is not durable, so the process exits.
                error!("{}: fatal storage error, exiting: {e}", self.raft.id());
                std::process::exit(1);
            }
            self.observe_changes();
            // Replies leave after the status is published, so a client that reads the
            // status after its response gets at least the index its write applied at.
            for (reply, result) in self.completed.drain(..) {
                let _ = reply.send(result);
            }
            if stop {
                break;
            }
        }
        self.fail_pending(ProposalError::Stopped);
        info!("{}: Raft driver stopped", self.raft.id());
    }

    /// Handles one event; returns true when the driver must stop.
    fn handle(&mut self, event: DriverEvent) -> bool {
        match event {
            DriverEvent::Peer(from, message) => {
                self.metrics.count_peer_message_received(&message);
                self.last_heard.insert(from.clone(), Instant::now());
                self.raft.step(&from, message);
            }
            DriverEvent::Propose(data, reply) => match self.raft.propose(data) {
                Ok((index, term)) => {
                    self.pending.insert(index, (term, reply));
                }
                Err(ProposeError::NotLeader { leader }) => {
                    let _ = reply.send(Err(ProposalError::NotLeader { leader }));
                }
                Err(e) => {
                    let _ = reply.send(Err(ProposalError::ApplyFailed { index: 0, reason: e.to_string() }));
                }
            },
            DriverEvent::Stop => return true,
        }
        false
    }

    /// Persists, sends and applies one `Ready`, in that order.
    fn process_ready(&mut self) -> Result<(), DriverError> {
        if !self.raft.has_ready() {
            return Ok(());
        }
        let Ready { hard_state, entries, snapshot, messages, committed_entries } = self.raft.ready();
        let must_sync = !entries.is_empty()
            || hard_state
                .as_ref()
                .is_some_and(|h| h.term != self.hard_state.term || h.voted_for != self.hard_state.voted_for);
        if let Some(state) = &hard_state {
            self.hard_state = state.clone();
        }

        if let Some(snapshot) = snapshot {
            self.install_snapshot(snapshot)?;
        }

        if hard_state.is_some() || !entries.is_empty() {
            let started = Instant::now();
            self.store.append(hard_state.as_ref(), &entries, must_sync)?;
            if must_sync {
                self.metrics.fsync.observe(started.elapsed());
            }
            self.record_appended(&entries);
        }

        for (to, message) in messages {
            self.transport.send(&to, message);
        }

        for entry in &committed_entries {
            self.apply(entry);
        }
        self.maybe_snapshot()?;
        Ok(())
    }

    /// Replaces the log and the state machine with a snapshot sent by the leader.
    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), DriverError> {
        let index = snapshot.meta.index;
        info!("{}: installing a snapshot through index {index} (term {}, {} bytes)", self.raft.id(), snapshot.meta.term, snapshot.data.len());

        save_snapshot(&self.logs_dir, &snapshot)?;
        self.store.rewrite(index + 1, &self.hard_state, &[])?;
        self.state.write().unwrap_or_else(|e| e.into_inner()).restore(&snapshot.data).map_err(DriverError::Snapshot)?;

        self.snapshot_index = index;
        self.log_entries = index;
        self.recent.clear();
        self.metrics.snapshots_installed.inc();
        while let Some((&pending, _)) = self.pending.first_key_value() {
            if pending > index {
                break;
            }
            let (_, reply) = self.pending.pop_first().expect("first key exists").1;
            let _ = reply.send(Err(ProposalError::Superseded { index: pending }));
        }
        Ok(())
    }

    /// Snapshots the state machine and compacts the log once enough entries applied.
    fn maybe_snapshot(&mut self) -> Result<(), DriverError> {
        let applied = self.state.read().unwrap_or_else(|e| e.into_inner()).applied();
        if applied < self.snapshot_index + self.snapshot_entries {
            return Ok(());
        }
        let started = Instant::now();
        let data = self.state.read().unwrap_or_else(|e| e.into_inner()).snapshot()?;
        let size = data.len();
        if let Err(e) = self.raft.compact(applied, data.clone()) {
            warn!("{}: compaction through {applied} was rejected by the Raft core: {e}", self.raft.id());
            return Ok(());
        }
        let term = self.raft.status().snapshot.map(|s| s.term).unwrap_or(0);
        save_snapshot(&self.logs_dir, &Snapshot { meta: crate::raft::SnapshotMeta { index: applied, term }, data })?;
        self.store.compact(applied, &self.hard_state)?;

        self.snapshot_index = applied;
        self.metrics.snapshots_taken.inc();
        info!(
            "{}: snapshot through index {applied} (term {term}, {size} bytes) took {} ms; log compacted",
            self.raft.id(),
            started.elapsed().as_millis()
        );
        Ok(())
    }

    fn record_appended(&mut self, entries: &[Entry]) {
        if let Some(first) = entries.first() {
            self.recent.retain(|e| e.index < first.index);
            self.log_entries = self.log_entries.min(first.index.saturating_sub(1));
        }
        for entry in entries {
            self.recent.push(summarize(entry));
            self.log_entries = self.log_entries.max(entry.index);
        }
        let excess = self.recent.len().saturating_sub(RECENT_ENTRIES);
        self.recent.drain(..excess);
    }

    fn apply(&mut self, entry: &Entry) {
        let result = self.state.write().unwrap_or_else(|e| e.into_inner()).apply(entry);
        let outcome = match result {
            Ok(applied) => Ok((entry.index, applied)),
            Err(crate::state_machine::ApplyError::Storage(e)) => {
                // The entry is committed but its file could not be written; restarting
                // applies it again from the log.
                error!("{}: writing entry {} failed, exiting: {e}", self.raft.id(), entry.index);
                std::process::exit(1);
            }
            Err(e) => {
                error!("{}: applying entry {} (term {}) failed: {e}", self.raft.id(), entry.index, entry.term);
                Err(ProposalError::ApplyFailed { index: entry.index, reason: e.to_string() })
            }
        };

        while let Some((&index, _)) = self.pending.first_key_value() {
            if index > entry.index {
                break;
            }
            let (term, reply) = self.pending.pop_first().expect("first key exists").1;
            let result = if index == entry.index && term == entry.term {
                outcome.clone()
            } else {
                Err(ProposalError::Superseded { index })
            };
            self.completed.push((reply, result));
        }
    }

    /// Logs role, term and leader changes and publishes the status.
    fn observe_changes(&mut self) {
        let status = self.raft.status();
        if status.term != self.last_term {
            info!("{}: term changed {} -> {}", status.id, self.last_term, status.term);
            self.last_term = status.term;
        }
        if status.role != self.last_role {
            info!("{}: role changed {} -> {} at term {}", status.id, self.last_role, status.role, status.term);
            if status.role == Role::Candidate {
                self.metrics.elections_started.inc();
            }
            if self.last_role == Role::Leader {
                self.fail_pending_on_step_down();
            }
            self.last_role = status.role;
        }
        if status.leader != self.last_leader {
            info!("{}: leader is now {:?} at term {}", status.id, status.leader, status.term);
            if status.leader.is_some() {
                self.metrics.leader_changes.inc();
            }
            self.last_leader = status.leader.clone();
        }

        let changed = {
            let current = self.status.borrow();
            current.raft.commit != status.commit
                || current.raft.applied != status.applied
                || current.raft.role != status.role
                || current.raft.term != status.term
                || current.raft.leader != status.leader
                || current.raft.last_index != status.last_index
                || progress_changed(&current.raft, &status)
        };
        if changed || self.last_published.elapsed() >= STATUS_REFRESH {
            self.last_published = Instant::now();
            let peers_last_heard =
                self.last_heard.iter().map(|(id, at)| (id.clone(), at.elapsed().as_millis() as u64)).collect();
            let published = NodeStatus {
                raft: status,
                recent_entries: self.recent.clone(),
                peers_last_heard,
                log_bytes: self.store.size(),
                log_entries: self.log_entries,
            };
            self.status.send_replace(published);
        }
    }

    /// Logs how many proposals a deposed leader still has open. They stay pending
    /// because the new leader may still commit them, and the entry applied at their
    /// index resolves them either way.
    fn fail_pending_on_step_down(&mut self) {
        if !self.pending.is_empty() {
            warn!(
                "{}: stepped down with {} proposals not yet applied; they resolve when their index applies",
                self.raft.id(),
                self.pending.len()
            );
        }
    }

    fn fail_pending(&mut self, error: ProposalError) {
        for (_, (_, reply)) in std::mem::take(&mut self.pending) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

fn progress_changed(old: &Status, new: &Status) -> bool {
    old.progress.len() != new.progress.len()
        || old.progress.iter().zip(&new.progress).any(|(a, b)| a.match_index != b.match_index || a.recent_active != b.recent_active)
}

/// Summarizes a log entry for the monitor.
pub fn summarize(entry: &Entry) -> EntrySummary {
    use crate::state_machine::Command;

    let (kind, name) = if entry.data.is_empty() {
        ("NOOP".to_string(), String::new())
    } else {
        match Command::decode(&entry.data) {
            Ok((Command::StoreFile { name, .. }, _)) => ("STORE_FILE".to_string(), name),
            Ok((Command::StoreModel { model_id, .. }, _)) => ("STORE_MODEL".to_string(), model_id),
            Err(_) => ("UNKNOWN".to_string(), String::new()),
        }
    };
    EntrySummary { index: entry.index, term: entry.term, kind, name, bytes: entry.data.len() }
}
