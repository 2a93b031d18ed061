//! The process boundary to `ai-core`: training as one child process per job, CSV checks
//! and predictions through a small pool of long-lived `ai-core serve` workers.
//!
//! The node never links the training code; it reads the child's JSON on stdout and
//! maps the `code` field onto wire error codes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::wire::{ErrorCode, TrainOptions, WireError};
use log::{debug, info, warn};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

/// Time limit of one worker request (a prediction or a CSV check).
const PREDICT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `ai-core` child processes.
#[derive(Clone)]
pub struct Runner {
    ai_core: PathBuf,
    train_timeout: Duration,
}

/// A finished training job: the result object and the model file's bytes.
pub struct Trained {
    pub metrics: Value,
    pub model: Vec<u8>,
    pub duration: Duration,
}

impl Runner {
    pub fn new(ai_core: PathBuf, train_timeout: Duration) -> Runner {
        Runner { ai_core, train_timeout }
    }

    /// Trains `model_id` on `csv`, writing the model into `work_dir`, and reads the model back.
    pub async fn train(
        &self,
        csv: &Path,
        model_id: &str,
        options: &TrainOptions,
        work_dir: &Path,
    ) -> Result<Trained, WireError> {
        let started = std::time::Instant::now();
        let mut args = vec![
            "train".to_string(),
            csv.display().to_string(),
            model_id.to_string(),
            "--models-dir".to_string(),
            work_dir.display().to_string(),
            "--json".to_string(),
        ];
        args.extend(options.to_args());

        let metrics = self.run(&args, self.train_timeout, ErrorCode::TrainingFailed).await?;
        let path = work_dir.join(format!("{model_id}.{}", crate::state_machine::MODEL_EXTENSION));
        let model = tokio::fs::read(&path).await.map_err(|e| {
            WireError::new(ErrorCode::TrainingFailed, format!("ai-core reported success but {} is unreadable: {e}", path.display()))
        })?;
        Ok(Trained { metrics, model, duration: started.elapsed() })
    }

    /// Runs one `ai-core` command that prints a JSON object; maps failures to wire errors.
    async fn run(&self, args: &[String], limit: Duration, default_code: ErrorCode) -> Result<Value, WireError> {
        debug!("starting {} {}", self.ai_core.display(), args.join(" "));
        let mut command = Command::new(&self.ai_core);
        die_with_parent(&mut command);
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                WireError::new(
                    ErrorCode::Internal,
                    format!("cannot start {}: {e}; build it with `cargo build --release` or pass --ai-core", self.ai_core.display()),
                )
            })?;
        let pid = child.id().unwrap_or(0);
        info!("ai-core {} started (pid {pid})", args[0]);

        let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(WireError::new(ErrorCode::Internal, format!("waiting for ai-core (pid {pid}) failed: {e}"))),
            Err(_) => {
                warn!("ai-core {} (pid {pid}) exceeded {} s and was killed", args[0], limit.as_secs());
                return Err(WireError::new(ErrorCode::Timeout, format!("ai-core {} exceeded its {} s limit", args[0], limit.as_secs())));
            }
        };
        info!("ai-core {} (pid {pid}) exited with {}", args[0], output.status);

        let stdout = String::from_utf8_lossy(&output.stdout);
        let parsed: Option<Value> = stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok());
        match parsed {
            Some(value) if output.status.success() && value.get("success") != Some(&Value::Bool(false)) => Ok(value),
            Some(value) => Err(child_error(&value, default_code)),
            None => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
                Err(WireError::new(default_code, format!("ai-core {} failed ({}): {last}", args[0], output.status)))
            }
        }
    }
}

/// Makes the child receive SIGKILL when the node dies, even by SIGKILL, so that no
/// trainer outlives its node and keeps the cores busy or writes into a stale job
/// directory. Linux only (`PR_SET_PDEATHSIG`).
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The node may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn child_error(value: &Value, default_code: ErrorCode) -> WireError {
    let message = value.get("error").and_then(Value::as_str).unwrap_or("ai-core failed without a message");
    let code = value.get("code").and_then(Value::as_str).and_then(ErrorCode::parse).unwrap_or(default_code);
    WireError::new(code, message)
}

/// One request for a worker (without its `id`) and where to send the response.
struct WorkerJob {
    request: Value,
    reply: oneshot::Sender<Result<Value, WireError>>,
}

/// Long-lived `ai-core serve` workers shared by all connections.
// NOTE: a CSV check of a large file occupies one worker for the check's duration, and
// predictions routed to that worker wait behind it.
#[derive(Clone)]
pub struct WorkerPool {
    workers: Arc<Vec<mpsc::Sender<WorkerJob>>>,
    next: Arc<AtomicUsize>,
}

impl WorkerPool {
    /// Starts `size` worker tasks; each starts its child process on first use.
    pub fn start(ai_core: PathBuf, models_dir: PathBuf, size: usize) -> WorkerPool {
        let workers = (0..size.max(1))
            .map(|number| {
                let (sender, receiver) = mpsc::channel(256);
                let worker = Worker { number, ai_core: ai_core.clone(), models_dir: models_dir.clone(), process: None };
                tokio::spawn(worker.run(receiver));
                sender
            })
            .collect();
        WorkerPool { workers: Arc::new(workers), next: Arc::new(AtomicUsize::new(0)) }
    }

    /// Runs one input vector through `model_id`; returns `{prediction, label}`.
    pub async fn predict(&self, model_id: &str, input: Vec<f64>) -> Result<Value, WireError> {
        let response = self.call(json!({"model_id": model_id, "inputs": [input]})).await?;
        let prediction = response.pointer("/predictions/0").cloned().unwrap_or(Value::Null);
        let label = response.pointer("/labels/0").cloned().unwrap_or(Value::Null);
        Ok(json!({"prediction": prediction, "label": label}))
    }

    /// Validates a CSV file as `ai-core check` does, without starting a process.
    pub async fn check_csv(&self, csv: &Path) -> Result<Value, WireError> {
        let mut summary = self.call(json!({"check_csv": csv.display().to_string()})).await?;
        if let Value::Object(fields) = &mut summary {
            fields.remove("id");
        }
        Ok(summary)
    }

    /// Sends one request to the next worker and waits for its successful response.
    async fn call(&self, request: Value) -> Result<Value, WireError> {
        let number = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        let (reply, result) = oneshot::channel();
        let unavailable = || WireError::new(ErrorCode::Unavailable, "ai-core workers are shutting down");

        self.workers[number].send(WorkerJob { request, reply }).await.map_err(|_| unavailable())?;
        match tokio::time::timeout(PREDICT_TIMEOUT, result).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(unavailable()),
            Err(_) => Err(WireError::new(ErrorCode::Timeout, format!("ai-core worker did not respond within {} s", PREDICT_TIMEOUT.as_secs()))),
        }
    }
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

struct Worker {
    number: usize,
    ai_core: PathBuf,
    models_dir: PathBuf,
    process: Option<Process>,
}

impl Worker {
    async fn run(mut self, mut jobs: mpsc::Receiver<WorkerJob>) {
        while let Some(job) = jobs.recv().await {
            let result = self.call_with_retry(job.request).await;
            let _ = job.reply.send(result);
        }
        if let Some(mut process) = self.process.take() {
            let _ = process.child.kill().await;
        }
    }

    /// Sends a request; a worker that died is restarted and the request sent once more.
    async fn call_with_retry(&mut self, request: Value) -> Result<Value, WireError> {
        match self.call_once(request.clone()).await {
            Ok(result) => result,
            Err(first) => {
                warn!("ai-core worker {} failed: {first}; restarting it and retrying once", self.number);
                self.kill().await;
                match self.call_once(request).await {
                    Ok(result) => result,
                    Err(second) => {
                        self.kill().await;
                        Err(WireError::new(ErrorCode::PredictionFailed, format!("ai-core worker failed twice: {second}")))
                    }
                }
            }
        }
    }

    /// Outer error: the worker process broke. Inner: ai-core rejected the request.
    async fn call_once(&mut self, mut request: Value) -> Result<Result<Value, WireError>, String> {
        if self.process.is_none() {
            self.process = Some(self.spawn()?);
        }
        let process = self.process.as_mut().expect("worker process was just started");
        process.next_id += 1;
        let id = process.next_id;

        request["id"] = json!(id);
        let mut line = request.to_string();
        line.push('\n');
        process.stdin.write_all(line.as_bytes()).await.map_err(|e| format!("writing to ai-core serve: {e}"))?;
        process.stdin.flush().await.map_err(|e| format!("writing to ai-core serve: {e}"))?;

        let mut response = String::new();
        let read = process.stdout.read_line(&mut response).await.map_err(|e| format!("reading from ai-core serve: {e}"))?;
        if read == 0 {
            return Err("ai-core serve closed its output".into());
        }
        let value: Value = serde_json::from_str(&response).map_err(|e| format!("ai-core serve sent invalid JSON: {e}"))?;
        if value.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(format!("ai-core serve answered request {:?}, expected {id}", value.get("id")));
        }

        if value.get("success").and_then(Value::as_bool) != Some(true) {
            return Ok(Err(child_error(&value, ErrorCode::PredictionFailed)));
        }
        Ok(Ok(value))
    }

    fn spawn(&self) -> Result<Process, String> {
        let mut command = Command::new(&self.ai_core);
        die_with_parent(&mut command);
        let mut child = command
            .arg("serve")
            .arg("--models-dir")
            .arg(&self.models_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {} serve: {e}", self.ai_core.display()))?;
        info!("ai-core worker {} started ai-core serve (pid {})", self.number, child.id().unwrap_or(0));
        let stdin = child.stdin.take().ok_or("ai-core serve has no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("ai-core serve has no stdout")?);
        Ok(Process { child, stdin, stdout, next_id: 0 })
    }

    async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let pid = process.child.id().unwrap_or(0);
            let _ = process.child.kill().await;
            info!("ai-core worker {} stopped ai-core serve (pid {pid})", self.number);
        }
    }
}
