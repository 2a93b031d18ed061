//! A three-node cluster of release binaries on free loopback ports, in a temporary
//! directory, with small blocking clients for its TCP and HTTP interfaces.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

pub const NODE_IDS: [&str; 3] = ["Node_A", "Node_B", "Node_C"];

pub struct Ports {
    pub client: u16,
    pub peer: u16,
    pub http: u16,
}

pub struct Cluster {
    /// The temporary directory, which is deleted on drop unless BENCH_KEEP_DATA is set.
    dir: Option<tempfile::TempDir>,
    pub ports: Vec<Ports>,
    processes: Vec<Option<Child>>,
    members: String,
    extra_args: Vec<String>,
}

/// Path of the `ai-core` binary that sits beside the `node` binary.
pub fn ai_core_path() -> Result<PathBuf> {
    let node = PathBuf::from(env!("CARGO_BIN_EXE_node"));
    let path = node.parent().context("node binary has no parent directory")?.join("ai-core");
    if !path.exists() {
        bail!("{} is missing; run `cargo build --release --workspace` first", path.display());
    }
    Ok(path)
}

/// Ports that were free a moment ago. The listeners stay open until all are chosen, so
/// no port is handed out twice.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<Vec<_>>>()?;
    Ok(listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<std::io::Result<Vec<_>>>()?)
}

/// Polls `condition` every `interval` until it returns `Some` or `timeout` passes.
pub fn poll<T>(what: &str, timeout: Duration, interval: Duration, mut condition: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(interval);
    }
}

impl Cluster {
    /// Starts three nodes with `extra_args` and waits until they agree on a leader. The
    /// data directories go under `parent`, or under the system's temporary directory.
    pub fn start(extra_args: &[&str], parent: Option<&Path>) -> Result<Cluster> {
        let numbers = free_ports(9)?;
        let ports: Vec<Ports> =
            (0..3).map(|i| Ports { client: numbers[i * 3], peer: numbers[i * 3 + 1], http: numbers[i * 3 + 2] }).collect();
        let members: Vec<String> = NODE_IDS
            .iter()
            .zip(&ports)
            .map(|(id, p)| format!("{id}=127.0.0.1:{}:{}:{}", p.client, p.peer, p.http))
            .collect();

        let mut cluster = Cluster {
            dir: Some(match parent {
                Some(parent) => tempfile::Builder::new().prefix("cluster-bench-").tempdir_in(parent)?,
                None => tempfile::Builder::new().prefix("cluster-bench-").tempdir()?,
            }),
            ports,
            processes: vec![None, None, None],
            members: members.join(","),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..3 {
            cluster.start_node(i)?;
        }
        cluster.wait_for_leader(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// Directory of the node logs (`<id>.log`) and of the data root (`disk/`).
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("the directory exists until drop").path()
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.path().join(format!("{}.log", NODE_IDS[i]))
    }

    pub fn start_node(&mut self, i: usize) -> Result<()> {
        if self.processes[i].is_some() {
            bail!("{} is already running", NODE_IDS[i]);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(i))?;
        let log_level = std::env::var("BENCH_NODE_LOG").unwrap_or_else(|_| "info".to_string());
        let child = Command::new(env!("CARGO_BIN_EXE_node"))
            .args(["--id", NODE_IDS[i], "--cluster", &self.members])
            .arg("--data-root")
            .arg(self.path().join("disk"))
            .arg("--ai-core")
            .arg(ai_core_path()?)
            .args(&self.extra_args)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", NODE_IDS[i]))?;
        self.processes[i] = Some(child);
        Ok(())
    }

    /// Sends SIGKILL to one node and returns the instant right after the signal was sent.
    pub fn kill_node(&mut self, i: usize) -> Result<Instant> {
        let mut child = self.processes[i].take().ok_or_else(|| anyhow!("{} is not running", NODE_IDS[i]))?;
        child.kill()?;
        let killed_at = Instant::now();
        child.wait()?;
        Ok(killed_at)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.processes[i].is_some()
    }

    pub fn running(&self) -> Vec<usize> {
        (0..3).filter(|&i| self.is_running(i)).collect()
    }

    /// Fetches the node's `/api/status` document; `None` when the node does not respond.
    pub fn status(&self, i: usize) -> Option<Value> {
        let (_, body) = http_get(self.ports[i].http, "/api/status", Duration::from_secs(2)).ok()?;
        serde_json::from_str(&body).ok()
    }

    pub fn metrics(&self, i: usize) -> Result<String> {
        let (status, body) = http_get(self.ports[i].http, "/metrics", Duration::from_secs(5))?;
        if status != 200 {
            bail!("GET /metrics on {} returned HTTP {status}", NODE_IDS[i]);
        }
        Ok(body)
    }

    /// Waits until every running node reports the same leader, and returns its position.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<usize> {
        poll("a leader that all running nodes agree on", timeout, Duration::from_millis(20), || {
            let mut leaders = Vec::new();
            for i in self.running() {
                leaders.push(self.status(i)?["raft"]["leader"].as_str()?.to_string());
            }
            let first = leaders.first()?.clone();
            let position = NODE_IDS.iter().position(|id| *id == first)?;
            (leaders.iter().all(|l| *l == first) && self.is_running(position)).then_some(position)
        })
    }

    /// Waits until every running node has applied everything the leader has committed.
    pub fn wait_for_caught_up(&self, leader: usize, timeout: Duration) -> Result<()> {
        poll("every running node to apply the leader's commit index", timeout, Duration::from_millis(20), || {
            let commit = self.status(leader)?["raft"]["commitIndex"].as_u64()?;
            let caught_up = self.running().iter().all(|&i| {
                let status = self.status(i);
                let applied = status.as_ref().and_then(|s| s["raft"]["appliedIndex"].as_u64());
                let leader_id = status.as_ref().and_then(|s| s["raft"]["leader"].as_str().map(str::to_string));
                applied >= Some(commit) && leader_id.as_deref() == Some(NODE_IDS[leader])
            });
            caught_up.then_some(())
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("BENCH_KEEP_DATA").is_some_and(|v| !v.is_empty()) {
            if let Some(dir) = self.dir.take() {
                eprintln!("kept the cluster's logs and data in {}", dir.keep().display());
            }
        }
    }
}

/// One client connection that sends a request line and reads one response line at a time.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub fn open(port: u16, connect_timeout: Duration, read_timeout: Duration) -> Result<Connection> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&address, connect_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        Ok(Connection { writer: stream.try_clone()?, reader: BufReader::new(stream) })
    }

    /// Sends `line` (one JSON object without its newline) and parses the response line.
    pub fn request(&mut self, line: &str) -> Result<Value> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")?;
        let mut response = String::new();
        if self.reader.read_line(&mut response)? == 0 {
            bail!("the node closed the connection without a response");
        }
        serde_json::from_str(&response).with_context(|| format!("response {response:?} is not JSON"))
    }
}

/// A minimal HTTP/1.0 GET that returns the status code and the body.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string());
    match (status, body) {
        (Some(status), Some(body)) => Ok((status, body)),
        _ => bail!("GET {path} on port {port} returned a malformed HTTP response"),
    }
}
