//! A real three-node cluster for integration tests: node processes on free ports in a
//! temporary directory, killed by PID when the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

pub const NODE_IDS: [&str; 3] = ["Node_A", "Node_B", "Node_C"];

pub struct Ports {
    pub client: u16,
    pub peer: u16,
    pub http: u16,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ports: Vec<Ports>,
    processes: Vec<Option<Child>>,
    members: String,
    extra_args: Vec<String>,
}

/// Directory holding the workspace's binaries (`node`, `ai-core`).
pub fn bin_dir() -> PathBuf {
    let node = PathBuf::from(env!("CARGO_BIN_EXE_node"));
    node.parent().expect("node binary has a parent directory").to_path_buf()
}

pub fn ai_core() -> PathBuf {
    let path = bin_dir().join("ai-core");
    assert!(path.exists(), "{} is missing; run `cargo build --workspace` before the node tests", path.display());
    path
}

/// Ports that were free a moment ago. Listeners are held until all are chosen so that
/// no port is handed out twice.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Polls `condition` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Cluster {
    /// Starts three nodes and waits until they agree on a leader.
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Cluster {
        let numbers = free_ports(9);
        let ports: Vec<Ports> =
            (0..3).map(|i| Ports { client: numbers[i * 3], peer: numbers[i * 3 + 1], http: numbers[i * 3 + 2] }).collect();
        let members: Vec<String> = NODE_IDS
            .iter()
            .zip(&ports)
            .map(|(id, p)| format!("{id}=127.0.0.1:{}:{}:{}", p.client, p.peer, p.http))
            .collect();

        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            ports,
            processes: vec![None, None, None],
            members: members.join(","),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster.wait_for_leader(None);
        cluster
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("disk")
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.data_root().join(NODE_IDS[i])
    }

    pub fn start_node(&mut self, i: usize) {
        assert!(self.processes[i].is_none(), "{} is already running", NODE_IDS[i]);
        let log_path = self.dir.path().join(format!("{}.log", NODE_IDS[i]));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_node"))
            .args(["--id", NODE_IDS[i], "--cluster", &self.members])
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--ai-core")
            .arg(ai_core())
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting a node process");
        self.processes[i] = Some(child);
    }

    /// Sends SIGKILL to one node, as a crash would.
    pub fn kill_node(&mut self, i: usize) {
        let mut child = self.processes[i].take().unwrap_or_else(|| panic!("{} is not running", NODE_IDS[i]));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.processes[i].is_some()
    }

    pub fn status(&self, i: usize) -> Option<Value> {
        http_get_json(self.ports[i].http, "/api/status")
    }

    /// Waits until every running node reports the same leader (other than `not`), and returns its position.
    pub fn wait_for_leader(&self, not: Option<usize>) -> usize {
        wait_for("a leader that all running nodes agree on", Duration::from_secs(20), || {
            let mut leaders = Vec::new();
            for i in (0..3).filter(|&i| self.is_running(i)) {
                let status = self.status(i)?;
                leaders.push(status["raft"]["leader"].as_str()?.to_string());
            }
            let first = leaders.first()?.clone();
            let position = NODE_IDS.iter().position(|id| *id == first)?;
            let agreed = leaders.iter().all(|l| *l == first) && Some(position) != not && self.is_running(position);
            agreed.then_some(position)
        })
    }

    pub fn request(&self, i: usize, request: &Value) -> Value {
        request_json(self.ports[i].client, request)
    }

    pub fn train(&self, i: usize, model: &str, csv: &[u8]) -> Value {
        let data = base64::engine::general_purpose::STANDARD.encode(csv);
        self.request(i, &json!({"type": "TRAIN_REQUEST", "payload": {"model_name": model, "data_content": data}}))
    }

    pub fn predict(&self, i: usize, model: &str, vector: Value) -> Value {
        self.request(i, &json!({"type": "PREDICT_REQUEST", "payload": {"model_id": model, "input_vector": vector}}))
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", NODE_IDS[i]))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for i in 0..3 {
                eprintln!("----- {} log -----\n{}", NODE_IDS[i], tail(&self.log(i), 60));
            }
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends one request line and reads one response line.
pub fn request_json(port: u16, request: &Value) -> Value {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to a node's client port");
    stream.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("reading a response line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("response {line:?} is not JSON: {e}"))
}

/// Sends a minimal HTTP/1.0 GET and returns the JSON body, or `None` when the node does not respond.
pub fn http_get_json(port: u16, path: &str) -> Option<Value> {
    let (status, body) = http_get(port, path)?;
    (status == 200 || status == 503).then(|| serde_json::from_str(&body).ok()).flatten()
}

/// Sends a minimal HTTP/1.0 GET and returns the status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Read;

    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Generates a dataset with `ai-core generate` into `dir` and returns its bytes.
pub fn generate(dir: &Path, kind: &str) -> Vec<u8> {
    let output = Command::new(ai_core()).args(["generate", kind, "--out"]).arg(dir).output().unwrap();
    assert!(output.status.success(), "ai-core generate {kind} failed: {}", String::from_utf8_lossy(&output.stderr));
    let path = String::from_utf8(output.stdout).unwrap().trim().to_string();
    std::fs::read(path).unwrap()
}

/// Returns every file under `dir` with its contents, for byte-for-byte comparison between nodes.
pub fn directory_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
