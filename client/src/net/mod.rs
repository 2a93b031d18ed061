//! Reconnecting client for the cluster's JSON-lines protocol.
//!
//! A [`Client`] stores the client address of every node. Each logical request gets a
//! fresh `request_id` and starts at the next node in round-robin order (writes start
//! at the last known leader). Failures move the request along:
//!
//! - a refused or dropped connection tries the next node at once, with an exponential
//!   backoff after each full pass over the nodes;
//! - a retryable error (`NOT_LEADER`, `UNAVAILABLE`, `TIMEOUT`) goes to the leader the
//!   node named, or waits a backoff step and tries the next node;
//! - any other error, and a response that does not arrive within the request's
//!   timeout, end the request.
//!
//! Retries resend the same line with the same `request_id`, so the cluster applies a
//! retried write once. The number of attempts per request is bounded.

mod connection;
mod error;
mod pool;
mod responses;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value};

use crate::wire::{self, Envelope, PredictRequest, Request, TrainOptions, TrainRequest, UploadRequest, WireError};
use pool::{AttemptError, NodeSlot};

pub use error::ClientError;
pub use responses::{LeaderInfo, NodeStatus, PredictResult, TrainResult, UploadResult};

/// The client ports of the default three-node cluster on this machine.
pub const DEFAULT_NODES: [&str; 3] = ["127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"];

/// Connection, timeout and retry settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Client addresses (`host:port`) of the nodes, in round-robin order.
    pub nodes: Vec<String>,
    /// Time allowed to open one TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for the response to a read (PREDICT, LIST_MODELS, GET_STATUS, GET_LEADER).
    pub request_timeout: Duration,
    /// Time allowed for the response to a write (TRAIN_REQUEST, UPLOAD_DATASET), which
    /// includes replication and, for training, running the trainer.
    pub train_timeout: Duration,
    /// Maximum number of attempts of one request, over all nodes.
    pub max_attempts: u32,
    /// First backoff delay; each later one doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Maximum length of one response line, in bytes.
    pub max_response_bytes: usize,
    /// Idle connections kept open per node for reuse.
    pub max_idle_per_node: usize,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            nodes: DEFAULT_NODES.iter().map(|s| s.to_string()).collect(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            train_timeout: Duration::from_secs(600),
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_response_bytes: wire::DEFAULT_MAX_LINE_BYTES,
            max_idle_per_node: 8,
        }
    }
}

impl ClientConfig {
    /// Builds the default configuration for the given node addresses.
    pub fn with_nodes<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> ClientConfig {
        ClientConfig { nodes: nodes.into_iter().map(Into::into).collect(), ..ClientConfig::default() }
    }

    /// Returns the response timeout for `request`.
    pub fn timeout_for(&self, request: &Request) -> Duration {
        if request.is_write() {
            self.train_timeout
        } else {
            self.request_timeout
        }
    }
}

/// A success response and the node that sent it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub node: String,
    pub body: Map<String, Value>,
}

/// A cluster client. Clones share connections and leader knowledge, so one client can
/// serve many tasks; each connection carries one request at a time.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    config: ClientConfig,
    nodes: Vec<NodeSlot>,
    /// Start of the next request's round-robin pass.
    next_node: AtomicUsize,
    /// Index of the node last seen to be the leader; a hint, possibly stale.
    leader: Mutex<Option<usize>>,
}

impl Client {
    /// Builds a client; no connection is opened until the first request.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        if config.nodes.is_empty() {
            return Err(ClientError::InvalidInput("no node addresses configured; pass at least one host:port".into()));
        }
        if config.max_attempts == 0 {
            return Err(ClientError::InvalidInput("max_attempts must be at least 1".into()));
        }
        let nodes = config.nodes.iter().map(|addr| NodeSlot::new(addr.clone())).collect();
        let shared = Shared { config, nodes, next_node: AtomicUsize::new(0), leader: Mutex::new(None) };
        Ok(Client { shared: Arc::new(shared) })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Sends `request` under a fresh request id, retrying as the module docs describe.
    pub async fn call(&self, request: Request) -> Result<Reply, ClientError> {
        let envelope = Envelope { request, request_id: Some(new_request_id()) };
        self.send(&envelope).await
    }

    /// Sends a prepared envelope; every retry reuses its request id.
    pub async fn send(&self, envelope: &Envelope) -> Result<Reply, ClientError> {
        let line = envelope.to_line();
        let timeout = self.shared.config.timeout_for(&envelope.request);
        let mut run = Retry::new(self.first_node(envelope.request.is_write()), &self.shared.config);

        while run.attempts < self.shared.config.max_attempts {
            run.attempts += 1;
            let slot = &self.shared.nodes[run.node];
            match slot.exchange(&line, timeout, &self.shared.config).await {
                Ok(body) => return Ok(self.accept(run.node, body)),
                Err(AttemptError::Rejected(error)) if !error.code.is_retryable() => {
                    return Err(ClientError::Rejected { node: slot.addr.clone(), error });
                }
                Err(AttemptError::Rejected(error)) => self.after_retryable(&mut run, error).await,
                Err(AttemptError::Io(error)) => self.after_io_error(&mut run, error).await,
                Err(AttemptError::TimedOut) => {
                    return Err(ClientError::Timeout { node: slot.addr.clone(), after: timeout });
                }
                Err(AttemptError::BadResponse(detail)) => {
                    return Err(ClientError::InvalidResponse { node: slot.addr.clone(), detail });
                }
            }
        }
        Err(run.into_error(&self.shared.config))
    }

    /// Sends `request` to one node only, with no retry elsewhere.
    pub async fn call_node(&self, index: usize, request: Request) -> Result<Reply, ClientError> {
        let slot = self.slot(index)?;
        let envelope = Envelope { request, request_id: Some(new_request_id()) };
        let timeout = self.shared.config.timeout_for(&envelope.request);
        match slot.exchange(&envelope.to_line(), timeout, &self.shared.config).await {
            Ok(body) => Ok(self.accept(index, body)),
            Err(AttemptError::Rejected(error)) => Err(ClientError::Rejected { node: slot.addr.clone(), error }),
            Err(AttemptError::Io(error)) => {
                let last = error.to_string();
                Err(ClientError::Unreachable { nodes: slot.addr.clone(), attempts: 1, last })
            }
            Err(AttemptError::TimedOut) => Err(ClientError::Timeout { node: slot.addr.clone(), after: timeout }),
            Err(AttemptError::BadResponse(detail)) => Err(ClientError::InvalidResponse { node: slot.addr.clone(), detail }),
        }
    }

    /// Trains `model` on a CSV file's bytes; the cluster replicates the dataset and the model.
    pub async fn train(&self, model: &str, csv: &[u8], options: &TrainOptions) -> Result<TrainResult, ClientError> {
        check_name("model name", model)?;
        options.validate().map_err(|e| ClientError::InvalidInput(e.message))?;
        let request = TrainRequest {
            model_name: model.to_string(),
            data_content: Some(base64::engine::general_purpose::STANDARD.encode(csv)),
            dataset: None,
            options: options.clone(),
        };
        let reply = self.call(Request::Train(request)).await?;
        responses::decode(&reply.node, reply.body)
    }

    /// Stores a CSV file in the cluster under `name` without training.
    pub async fn upload_dataset(&self, name: &str, csv: &[u8]) -> Result<UploadResult, ClientError> {
        check_name("dataset name", name)?;
        let data_content = base64::engine::general_purpose::STANDARD.encode(csv);
        let reply = self.call(Request::UploadDataset(UploadRequest { name: name.to_string(), data_content })).await?;
        responses::decode(&reply.node, reply.body)
    }

    /// Runs `input` through `model` on any node that has it.
    pub async fn predict(&self, model: &str, input: &[f64]) -> Result<PredictResult, ClientError> {
        check_name("model name", model)?;
        if input.is_empty() || input.iter().any(|x| !x.is_finite()) {
            return Err(ClientError::InvalidInput("the input vector must hold one finite number per feature".into()));
        }
        let request = PredictRequest { model_id: model.to_string(), input_vector: input.to_vec() };
        let reply = self.call(Request::Predict(request)).await?;
        responses::decode(&reply.node, reply.body)
    }

    /// Lists the models the cluster has committed.
    pub async fn list_models(&self) -> Result<Vec<wire::ModelInfo>, ClientError> {
        let mut reply = self.call(Request::ListModels).await?;
        let models = reply.body.remove("models").unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(models).map_err(|e| ClientError::InvalidResponse { node: reply.node, detail: e.to_string() })
    }

    /// Asks node number `index` (in configuration order) for its own status.
    pub async fn status(&self, index: usize) -> Result<NodeStatus, ClientError> {
        let reply = self.call_node(index, Request::GetStatus).await?;
        responses::decode(&reply.node, reply.body)
    }

    /// Asks every node for its status at once; results are in configuration order.
    pub async fn status_all(&self) -> Vec<(String, Result<NodeStatus, ClientError>)> {
        let handles: Vec<_> = (0..self.shared.nodes.len())
            .map(|index| {
                let client = self.clone();
                tokio::spawn(async move { client.status(index).await })
            })
            .collect();

        let mut results = Vec::with_capacity(handles.len());
        for (slot, handle) in self.shared.nodes.iter().zip(handles) {
            let result = handle.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            results.push((slot.addr.clone(), result));
        }
        results
    }

    /// Asks any node which node leads.
    pub async fn leader(&self) -> Result<LeaderInfo, ClientError> {
        let reply = self.call(Request::GetLeader).await?;
        responses::decode(&reply.node, reply.body)
    }

    fn slot(&self, index: usize) -> Result<&NodeSlot, ClientError> {
        self.shared.nodes.get(index).ok_or_else(|| {
            ClientError::InvalidInput(format!("node index {index} is out of range; {} nodes are configured", self.shared.nodes.len()))
        })
    }

    /// Picks where a request starts: the known leader for writes, else the next node in turn.
    fn first_node(&self, is_write: bool) -> usize {
        let turn = self.shared.next_node.fetch_add(1, Ordering::Relaxed) % self.shared.nodes.len();
        if is_write {
            if let Some(leader) = *lock(&self.shared.leader) {
                return leader;
            }
        }
        turn
    }

    /// Records the node id and leadership that a success response reports, and wraps it.
    fn accept(&self, index: usize, body: Map<String, Value>) -> Reply {
        let slot = &self.shared.nodes[index];
        if let Some(id) = body.get("node").and_then(Value::as_str) {
            slot.set_id(id);
        }
        if body.get("isLeader").and_then(Value::as_bool) == Some(true) {
            *lock(&self.shared.leader) = Some(index);
        }
        Reply { node: slot.addr.clone(), body }
    }

    async fn after_retryable(&self, run: &mut Retry, error: WireError) {
        log::debug!("node {} returned retryable error {}: {}", self.shared.nodes[run.node].addr, error.code, error.message);
        let hinted = match error.leader.as_deref() {
            Some(hint) => self.resolve_leader(hint).await,
            None => None,
        };
        run.last_reply = Some(error);

        match hinted {
            Some(leader) if leader != run.node => {
                *lock(&self.shared.leader) = Some(leader);
                run.node = leader;
            }
            _ => {
                *lock(&self.shared.leader) = None;
                tokio::time::sleep(run.backoff.next_delay()).await;
                run.node = (run.node + 1) % self.shared.nodes.len();
            }
        }
    }

    async fn after_io_error(&self, run: &mut Retry, error: std::io::Error) {
        let addr = &self.shared.nodes[run.node].addr;
        log::debug!("node {addr} failed: {error}");
        run.last_io = Some(format!("{addr}: {error}"));

        {
            let mut leader = lock(&self.shared.leader);
            if *leader == Some(run.node) {
                *leader = None;
            }
        }

        run.node = (run.node + 1) % self.shared.nodes.len();
        run.failed_in_pass += 1;
        if run.failed_in_pass >= self.shared.nodes.len() {
            run.failed_in_pass = 0;
            tokio::time::sleep(run.backoff.next_delay()).await;
        }
    }

    /// Finds the index of the node a leader hint names, by address or by node id. Ids not
    /// seen yet are learned by asking the nodes with unknown ids for their status.
    async fn resolve_leader(&self, hint: &str) -> Option<usize> {
        if let Some(index) = self.find_node(hint) {
            return Some(index);
        }
        let config = &self.shared.config;
        let line = Envelope { request: Request::GetStatus, request_id: None }.to_line();
        for (index, slot) in self.shared.nodes.iter().enumerate() {
            if slot.id().is_some() {
                continue;
            }
            if let Ok(body) = slot.exchange(&line, config.connect_timeout, config).await {
                self.accept(index, body);
            }
        }
        self.find_node(hint)
    }

    fn find_node(&self, hint: &str) -> Option<usize> {
        self.shared.nodes.iter().position(|slot| slot.addr == hint || slot.id().as_deref() == Some(hint))
    }
}

/// Progress of one request through its attempts.
struct Retry {
    node: usize,
    attempts: u32,
    /// Connection failures since the last backoff, to back off once per pass over the nodes.
    failed_in_pass: usize,
    backoff: Backoff,
    last_reply: Option<WireError>,
    last_io: Option<String>,
}

impl Retry {
    fn new(node: usize, config: &ClientConfig) -> Retry {
        let backoff = Backoff::new(config.initial_backoff, config.max_backoff);
        Retry { node, attempts: 0, failed_in_pass: 0, backoff, last_reply: None, last_io: None }
    }

    /// Builds the error once attempts run out: `NoLeader` if some node responded, else `Unreachable`.
    fn into_error(self, config: &ClientConfig) -> ClientError {
        match self.last_reply {
            Some(last) => ClientError::NoLeader { attempts: self.attempts, last },
            None => ClientError::Unreachable {
                nodes: config.nodes.join(", "),
                attempts: self.attempts,
                last: self.last_io.unwrap_or_else(|| "no attempt made".into()),
            },
        }
    }
}

/// Exponential backoff: `initial`, then doubling up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { next: initial.min(max), max }
    }

    /// Returns the current delay and doubles the next one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

/// Generates a random request id of 32 hexadecimal digits.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn check_name(kind: &str, name: &str) -> Result<(), ClientError> {
    wire::validate_name(kind, name).map_err(|e| ClientError::InvalidInput(e.message))
}

/// Locks a std mutex, recovering the data if a panicking holder poisoned it. That is safe
/// because every value behind these mutexes is replaced whole, never left half-updated.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
    }

    #[test]
    fn request_ids_are_distinct_hex() {
        let first = new_request_id();
        let second = new_request_id();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first, second);
    }

    #[test]
    fn writes_get_the_long_timeout() {
        let config = ClientConfig::default();
        let train = Request::Train(TrainRequest {
            model_name: "m".into(),
            data_content: Some(String::new()),
            dataset: None,
            options: TrainOptions::default(),
        });
        assert_eq!(config.timeout_for(&train), Duration::from_secs(600));
        assert_eq!(config.timeout_for(&Request::ListModels), Duration::from_secs(10));
    }
}
