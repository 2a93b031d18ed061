//! Request handling: one function per request type, behind a single `handle` entry point.
//!
//! Writes (TRAIN_REQUEST, UPLOAD_DATASET) run on the leader, and a follower forwards them
//! there itself. Reads run on any node. A node that has not applied a model yet forwards
//! its predictions to the leader. Every write carries a request id (the client's, or one
//! made here) that the replicated state machine stores, so a retry applies once and gets
//! the first response.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use client::wire::{
    validate_name, Envelope, ErrorCode, PredictRequest, Request, TrainRequest, UploadRequest, WireError,
};
use log::{info, warn};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::config::NodeConfig;
use crate::driver::{DriverHandle, ProposalError};
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::runner::{WorkerPool, Runner};
use crate::state_machine::{Applied, Command, FileRecord, ModelRecord};

/// How long a write waits for its entry to commit and apply.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request waits for a leader to be elected before it is refused.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// Attempts of one write across leader changes.
const WRITE_ATTEMPTS: u32 = 4;
/// Maximum wait for a new leader before a failed write is tried again, a little more
/// than the maximum election timeout.
const LEADER_CHANGE_WAIT: Duration = Duration::from_millis(400);

pub struct Service {
    pub config: NodeConfig,
    pub driver: DriverHandle,
    pub metrics: Arc<Metrics>,
    runner: Runner,
    workers: WorkerPool,
    forwarder: Forwarder,
    training_slots: Semaphore,
    /// Scratch space for CSV checks and training jobs; emptied at start.
    work_dir: PathBuf,
    next_job: AtomicU64,
    /// Writes running on this node by request id; a duplicate waits for the first's result.
    in_flight: std::sync::Mutex<HashMap<String, watch::Receiver<Option<Result<Value, WireError>>>>>,
}

impl Service {
    pub fn new(config: NodeConfig, driver: DriverHandle, metrics: Arc<Metrics>) -> std::io::Result<Service> {
        let work_dir = config.data_dir().join("tmp");
        if work_dir.exists() {
            std::fs::remove_dir_all(&work_dir)?;
        }
        std::fs::create_dir_all(&work_dir)?;

        let models_dir = driver.state.read().unwrap_or_else(|e| e.into_inner()).models_dir();
        Ok(Service {
            runner: Runner::new(config.ai_core.clone(), config.train_timeout),
            workers: WorkerPool::start(config.ai_core.clone(), models_dir, config.predict_workers),
            forwarder: Forwarder::new(config.cluster.clone(), config.train_timeout + Duration::from_secs(120)),
            training_slots: Semaphore::new(config.max_training_jobs.max(1)),
            work_dir,
            next_job: AtomicU64::new(0),
            in_flight: std::sync::Mutex::new(HashMap::new()),
            config,
            driver,
            metrics,
        })
    }

    /// Handles one request and returns its response object.
    /// `forwarded_by` is the node that forwarded this write here, if any.
    pub async fn handle(&self, envelope: Envelope, forwarded_by: Option<String>) -> Value {
        let started = Instant::now();
        let kind = envelope.request.type_name();
        let request_id = envelope.request_id.clone();

        let result = match envelope.request.clone() {
            Request::GetStatus => Ok(self.status()),
            Request::GetLeader => Ok(self.leader()),
            Request::ListModels => Ok(self.list_models()),
            Request::Predict(request) => self.predict(request).await,
            Request::Train(_) | Request::UploadDataset(_) => self.write(envelope, forwarded_by.is_some()).await,
        };

        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        self.metrics.observe_request(kind, outcome, started.elapsed());

        match result {
            Ok(mut response) => {
                if let Value::Object(object) = &mut response {
                    // A forwarded write carries an id this node made up; the client sees only its own.
                    match &request_id {
                        Some(id) => object.insert("request_id".into(), Value::String(id.clone())),
                        None => object.remove("request_id"),
                    };
                }
                response
            }
            Err(error) => {
                if !matches!(error.code, ErrorCode::ModelNotFound | ErrorCode::DimensionMismatch | ErrorCode::InvalidPayload) {
                    warn!("{}: {kind} request {:?} failed: {error}", self.config.id, request_id);
                }
                error.to_response(request_id.as_deref())
            }
        }
    }

    fn status(&self) -> Value {
        let status = self.driver.current().raft;
        json!({
            "success": true,
            "node": self.config.id,
            "isLeader": status.role == crate::raft::Role::Leader,
            "leader": status.leader,
            "state": status.role.to_string(),
            "term": status.term,
            "commitIndex": status.commit,
            "appliedIndex": status.applied,
        })
    }

    fn leader(&self) -> Value {
        let status = self.driver.current().raft;
        json!({
            "success": true,
            "leader": status.leader,
            "isLeader": status.role == crate::raft::Role::Leader,
        })
    }

    fn list_models(&self) -> Value {
        let state = self.driver.state.read().unwrap_or_else(|e| e.into_inner());
        let models: Vec<_> = state.models().map(ModelRecord::info).collect();
        json!({"success": true, "models": models, "node": self.config.id})
    }

    async fn predict(&self, request: PredictRequest) -> Result<Value, WireError> {
        validate_name("model id", &request.model_id)?;
        let model = self.driver.state.read().unwrap_or_else(|e| e.into_inner()).model(&request.model_id).cloned();

        let Some(model) = model else {
            return self.predict_elsewhere(request).await;
        };
        if let Some(features) = model.metrics.get("features").and_then(Value::as_u64) {
            if features as usize != request.input_vector.len() {
                return Err(WireError::new(
                    ErrorCode::DimensionMismatch,
                    format!(
                        "input_vector has {} values but model {} expects {features}",
                        request.input_vector.len(),
                        request.model_id
                    ),
                ));
            }
        }

        let started = Instant::now();
        let result = self.workers.predict(&request.model_id, request.input_vector).await;
        self.metrics.predictions.observe(started.elapsed());

        let mut response = result?;
        response["success"] = json!(true);
        response["model_id"] = json!(request.model_id);
        response["node"] = json!(self.config.id);
        Ok(response)
    }

    /// Forwards a prediction to the leader, which may have a model this node has not applied yet.
    async fn predict_elsewhere(&self, request: PredictRequest) -> Result<Value, WireError> {
        let not_found = || {
            WireError::new(
                ErrorCode::ModelNotFound,
                format!("model {:?} not found; list models with LIST_MODELS or train it first", request.model_id),
            )
        };
        let status = self.driver.current().raft;
        match status.leader {
            Some(leader) if leader != self.config.id => {
                let envelope = Envelope { request: Request::Predict(request.clone()), request_id: None };
                info!("{}: model {} not applied here; asking leader {leader}", self.config.id, request.model_id);
                self.forwarder.send(&self.config.id, &leader, &envelope).await
            }
            _ => Err(not_found()),
        }
    }

    /// Runs a write on the leader, forwarding it there when this node is a follower. A
    /// leader change in the middle (an unreachable leader, or this node losing its
    /// leadership) is retried with the same request id, at most `WRITE_ATTEMPTS` times.
    async fn write(&self, mut envelope: Envelope, forwarded: bool) -> Result<Value, WireError> {
        let request_id = envelope.request_id.get_or_insert_with(|| self.new_request_id()).clone();
        let mut attempt = 0;

        loop {
            attempt += 1;
            let leader = self.wait_for_leader(Instant::now() + LEADER_WAIT).await?;
            let result = if leader == self.config.id {
                self.run_once(&request_id, envelope.request.clone()).await
            } else if forwarded {
                // Forwarding once is enough; a second hop could bounce between two stale views.
                return Err(WireError::not_leader(Some(leader)));
            } else {
                self.forwarder.send(&self.config.id, &leader, &envelope).await
            };

            match result {
                Err(e) if is_leader_change(&e) && attempt < WRITE_ATTEMPTS => {
                    warn!(
                        "{}: request {request_id} on leader {leader} failed: {e}; retrying (attempt {attempt} of {WRITE_ATTEMPTS})",
                        self.config.id
                    );
                    self.wait_for_other_leader(&leader, Instant::now() + LEADER_CHANGE_WAIT).await;
                }
                result => return result,
            }
        }
    }

    /// Runs a write on this leader, or waits for the same request id already running here.
    async fn run_once(&self, request_id: &str, request: Request) -> Result<Value, WireError> {
        let (sender, mut running) = {
            let mut table = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match table.get(request_id) {
                Some(receiver) => (None, receiver.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    table.insert(request_id.to_string(), receiver.clone());
                    (Some(sender), receiver)
                }
            }
        };

        let Some(sender) = sender else {
            info!("{}: request {request_id} is already running; waiting for its result", self.config.id);
            let result = running.wait_for(Option::is_some).await;
            return match result {
                Ok(value) => value.clone().expect("wait_for returns a filled value"),
                Err(_) => {
                    self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(request_id);
                    Err(WireError::new(ErrorCode::Unavailable, "the first attempt of this request was dropped; retry"))
                }
            };
        };

        let result = match request {
            Request::Train(request) => self.train(request, request_id).await,
            Request::UploadDataset(request) => self.upload(request, request_id).await,
            _ => unreachable!("only writes reach Service::run_once"),
        };
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(request_id);
        let _ = sender.send(Some(result.clone()));
        result
    }

    /// Waits until a leader other than `old` is known, or until `deadline`, whichever
    /// comes first. The same leader may still be right (a superseded entry), so
    /// reaching the deadline is not an error.
    async fn wait_for_other_leader(&self, old: &str, deadline: Instant) {
        let mut status = self.driver.status.clone();
        loop {
            let leader = status.borrow_and_update().raft.leader.clone();
            if leader.is_some_and(|l| l != old) {
                return;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || tokio::time::timeout(remaining, status.changed()).await.is_err() {
                return;
            }
        }
    }

    /// Waits until a leader is known; refuses with the original's error after `deadline`.
    async fn wait_for_leader(&self, deadline: Instant) -> Result<String, WireError> {
        let mut status = self.driver.status.clone();
        loop {
            if let Some(leader) = status.borrow_and_update().raft.leader.clone() {
                return Ok(leader);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || tokio::time::timeout(remaining, status.changed()).await.is_err() {
                return Err(WireError::not_leader(None));
            }
        }
    }

    fn new_request_id(&self) -> String {
        let job = self.next_job.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        format!("{}-{nanos:x}-{job}", self.config.id)
    }

    async fn upload(&self, request: UploadRequest, request_id: &str) -> Result<Value, WireError> {
        validate_name("dataset name", &request.name)?;
        let content = decode_base64(&request.data_content)?;
        let (record, summary) = self.store_dataset(&request.name, content, request_id).await?;
        Ok(json!({
            "success": true,
            "message": format!("dataset {} stored on a majority", record.name),
            "dataset": record.name,
            "logIndex": record.index,
            "size": record.size,
            "sha256": record.sha256,
            "summary": summary,
        }))
    }

    async fn train(&self, request: TrainRequest, request_id: &str) -> Result<Value, WireError> {
        validate_name("model name", &request.model_name)?;
        if let Some(response) = self.finished_training(request_id) {
            info!("{}: request {request_id} already trained; returning its first response", self.config.id);
            return Ok(response);
        }

        let dataset = match (&request.data_content, &request.dataset) {
            (Some(data), _) => {
                let content = decode_base64(data)?;
                let name = format!("{}.csv", request.model_name);
                validate_name("dataset name", &name)?;
                self.store_dataset(&name, content, request_id).await?.0.name
            }
            (None, Some(name)) => {
                validate_name("dataset name", name)?;
                let state = self.driver.state.read().unwrap_or_else(|e| e.into_inner());
                state.dataset(name).map(|d| d.name.clone()).ok_or_else(|| {
                    WireError::new(ErrorCode::DatasetNotFound, format!("dataset {name:?} not found; upload it with UPLOAD_DATASET"))
                })?
            }
            (None, None) => return Err(WireError::new(ErrorCode::InvalidPayload, "TRAIN_REQUEST needs data_content or dataset")),
        };

        let trained = self.run_training(&dataset, &request).await?;
        let command = Command::StoreModel {
            model_id: request.model_name.clone(),
            dataset,
            timestamp: now_millis(),
            request_id: Some(request_id.to_string()),
            duration_ms: trained.duration.as_millis() as u64,
            metrics: trained.metrics,
        };
        match self.propose(command.encode(&trained.model)).await? {
            Applied::Model(record) => Ok(record.train_response()),
            other => Err(WireError::new(ErrorCode::Internal, format!("STORE_MODEL applied as {other:?}"))),
        }
    }

    fn finished_training(&self, request_id: &str) -> Option<Value> {
        let state = self.driver.state.read().unwrap_or_else(|e| e.into_inner());
        state.request(request_id)?.model.as_ref().map(ModelRecord::train_response)
    }

    async fn run_training(&self, dataset: &str, request: &TrainRequest) -> Result<crate::runner::Trained, WireError> {
        let _slot = self.training_slots.acquire().await.map_err(|_| WireError::new(ErrorCode::Unavailable, "node is shutting down"))?;
        let csv = self.driver.state.read().unwrap_or_else(|e| e.into_inner()).dataset_path(dataset);
        let job_dir = self.job_dir("train")?;

        info!("{}: training model {} on {dataset}", self.config.id, request.model_name);
        let result = self.runner.train(&csv, &request.model_name, &request.options, &job_dir).await;
        let _ = std::fs::remove_dir_all(&job_dir);

        match &result {
            Ok(trained) => self.metrics.training.observe(trained.duration),
            Err(e) => {
                self.metrics.training_failures.inc();
                warn!("{}: training model {} failed: {e}", self.config.id, request.model_name);
            }
        }
        result
    }

    /// Validates a CSV with ai-core, then replicates it, unless this request id already stored it.
    async fn store_dataset(&self, name: &str, content: Vec<u8>, request_id: &str) -> Result<(FileRecord, Value), WireError> {
        let stored = {
            let state = self.driver.state.read().unwrap_or_else(|e| e.into_inner());
            state.request(request_id).and_then(|r| r.dataset.clone())
        };
        if let Some(record) = stored {
            return Ok((record, Value::Null));
        }

        let job_dir = self.job_dir("check")?;
        let csv = job_dir.join("data.csv");
        std::fs::write(&csv, &content).map_err(|e| internal(format!("writing {}: {e}", csv.display())))?;
        let summary = self.workers.check_csv(&csv).await;
        let _ = std::fs::remove_dir_all(&job_dir);
        // The client knows its file by name, not by this node's scratch path.
        let summary = summary.map_err(|mut e| {
            e.message = e.message.replace(&csv.display().to_string(), name);
            e
        })?;

        let command = Command::StoreFile { name: name.to_string(), timestamp: now_millis(), request_id: Some(request_id.to_string()) };
        match self.propose(command.encode(&content)).await? {
            Applied::Dataset(record) => Ok((record, summary)),
            other => Err(internal(format!("STORE_FILE applied as {other:?}"))),
        }
    }

    async fn propose(&self, data: bytes::Bytes) -> Result<Applied, WireError> {
        match tokio::time::timeout(COMMIT_TIMEOUT, self.driver.propose(data)).await {
            Ok(Ok((_, applied))) => Ok(applied),
            Ok(Err(ProposalError::NotLeader { leader })) => Err(WireError::not_leader(leader)),
            Ok(Err(e @ ProposalError::Superseded { .. })) => Err(WireError::new(
                ErrorCode::Unavailable,
                format!("{e}; retry with the same request_id"),
            )),
            Ok(Err(e)) => Err(internal(e.to_string())),
            Err(_) => Err(WireError::new(
                ErrorCode::Timeout,
                format!("entry did not commit within {} s; is a majority of nodes up?", COMMIT_TIMEOUT.as_secs()),
            )),
        }
    }

    fn job_dir(&self, kind: &str) -> Result<PathBuf, WireError> {
        let number = self.next_job.fetch_add(1, Ordering::Relaxed);
        let dir = self.work_dir.join(format!("{kind}-{number}"));
        std::fs::create_dir_all(&dir).map_err(|e| internal(format!("creating {}: {e}", dir.display())))?;
        Ok(dir)
    }
}

/// Errors after which the same request may succeed on the next leader.
fn is_leader_change(error: &WireError) -> bool {
    matches!(error.code, ErrorCode::NotLeader | ErrorCode::Unavailable)
}

fn internal(message: String) -> WireError {
    WireError::new(ErrorCode::Internal, message)
}

fn decode_base64(data: &str) -> Result<Vec<u8>, WireError> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| WireError::new(ErrorCode::InvalidPayload, format!("data_content is not valid Base64: {e}")))
}

pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
