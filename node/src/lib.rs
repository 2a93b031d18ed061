//! A Raft cluster node that stores CSV datasets and trained models.
//!
//! Layout:
//! - `raft`: the Raft consensus core, a deterministic state machine with no I/O.
//! - `driver`: the thread that owns the core, the log file and the state machine, and
//!   turns the core's output into fsyncs, peer messages and applied entries.
//! - `storage`: the checksummed, append-only log file and its recovery.
//! - `state_machine`: committed entries as files under `datasets/` and `models/`.
//! - `transport`: peer connections (JSON lines over TCP).
//! - `framing`: length-limited line reading shared by both TCP servers.
//! - `server`: the client TCP server; `service`: request handling; `forward`: sending
//!   requests to the leader.
//! - `runner`: the process boundary to `ai-core` (training children and the `ai-core serve` worker pool).
//! - `monitor`: the HTTP monitor; `metrics`: counters and histograms.
//! - `config`: cluster and node settings; `node`: start-up and shutdown.

pub mod config;
pub mod driver;
pub mod forward;
pub mod framing;
pub mod metrics;
pub mod monitor;
pub mod node;
pub mod raft;
pub mod runner;
pub mod server;
pub mod service;
pub mod state_machine;
pub mod storage;
pub mod transport;
