//! A real three-node cluster for end-to-end tests: `node` processes on free 127.0.0.1
//! ports, each with its own data directory, using the `ai-core` binary to train.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::net::{Client, ClientConfig};

/// Locates a workspace binary: the `env_var` override, else the target directory that
/// contains this test executable (where `cargo build --workspace` puts it).
pub fn find_binary(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    // The test executable is <target>/<profile>/deps/<test>-<hash>.
    let profile_dir = exe.parent()?.parent()?;
    let candidate = profile_dir.join(name);
    candidate.is_file().then_some(candidate)
}

/// Running node processes; they are killed by PID when this value drops.
pub struct RealCluster {
    /// Client addresses (`127.0.0.1:port`), in the order of `ids`.
    pub addrs: Vec<String>,
    pub ids: Vec<String>,
    /// Monitor (HTTP) ports, in the order of `ids`.
    pub http_ports: Vec<u16>,
    /// One slot per node, `None` while the node is killed.
    children: Vec<Option<Child>>,
    pub log_dir: PathBuf,
    node_bin: PathBuf,
    ai_core_bin: PathBuf,
    data_root: PathBuf,
    /// The `--cluster` argument every node gets.
    spec: String,
}

impl RealCluster {
    /// Starts three nodes and waits (up to `deadline`) until one of them leads.
    pub fn start(node_bin: &Path, ai_core_bin: &Path, data_root: &Path, deadline: Duration) -> RealCluster {
        let ids: Vec<String> = ["Node_A", "Node_B", "Node_C"].iter().map(|s| s.to_string()).collect();
        let ports = free_ports(ids.len() * 3);
        let members: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("{id}=127.0.0.1:{}:{}:{}", ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]))
            .collect();
        let spec = members.join(",");
        let addrs = (0..ids.len()).map(|i| format!("127.0.0.1:{}", ports[3 * i])).collect();
        let http_ports = (0..ids.len()).map(|i| ports[3 * i + 2]).collect();
        let log_dir = data_root.join("logs");
        std::fs::create_dir_all(&log_dir).unwrap();

        let mut cluster = RealCluster {
            addrs,
            ids: ids.clone(),
            http_ports,
            children: ids.iter().map(|_| None).collect(),
            log_dir,
            node_bin: node_bin.to_path_buf(),
            ai_core_bin: ai_core_bin.to_path_buf(),
            data_root: data_root.to_path_buf(),
            spec,
        };
        for index in 0..ids.len() {
            cluster.spawn_node(index);
        }
        cluster.wait_for_leader(deadline);
        cluster
    }

    /// Starts the process of node `index` with the same arguments and data directory as
    /// before. Its output is appended to `<log_dir>/<id>.log`.
    fn spawn_node(&mut self, index: usize) {
        let id = &self.ids[index];
        let log_path = self.log_dir.join(format!("{id}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let child = Command::new(&self.node_bin)
            .args(["--id", id, "--cluster", &self.spec])
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--ai-core")
            .arg(&self.ai_core_bin)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.node_bin.display()));
        self.children[index] = Some(child);
    }

    /// Sends SIGKILL to the process of node `index` by its PID, as a crash would, and
    /// reaps it. Panics when the node is not running.
    pub fn kill(&mut self, index: usize) {
        let id = &self.ids[index];
        let mut child = self.children[index].take().unwrap_or_else(|| panic!("{id} is not running"));
        child.kill().unwrap_or_else(|e| panic!("sending SIGKILL to {id} (PID {}) failed: {e}", child.id()));
        child.wait().unwrap_or_else(|e| panic!("waiting for {id} (PID {}) failed: {e}", child.id()));
    }

    /// Starts node `index` again after `kill`, on the same ports and data directory.
    /// Panics when the node is running.
    pub fn restart(&mut self, index: usize) {
        assert!(self.children[index].is_none(), "{} is already running", self.ids[index]);
        self.spawn_node(index);
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.children[index].is_some()
    }

    /// Returns the PID of node `index`, or `None` while it is killed.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.children[index].as_ref().map(Child::id)
    }

    /// Returns the monitor page URL of node `index`.
    pub fn monitor_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}/", self.http_ports[index])
    }

    /// Panics when a node that should be running has exited, pointing to its log.
    fn assert_running(&mut self) {
        for (id, child) in self.ids.iter().zip(&mut self.children) {
            if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                panic!("{id} exited with {status}; see {}", self.log_dir.join(format!("{id}.log")).display());
            }
        }
    }

    /// Prints the last `lines` lines of every node's log to stderr, for a failing test
    /// whose temporary log directory is deleted when it ends.
    pub fn print_log_tails(&self, lines: usize) {
        for id in &self.ids {
            let log = std::fs::read_to_string(self.log_dir.join(format!("{id}.log"))).unwrap_or_default();
            let all: Vec<&str> = log.lines().collect();
            eprintln!("----- {id} log (last {lines} lines) -----\n{}", all[all.len().saturating_sub(lines)..].join("\n"));
        }
    }

    /// Waits until every running node names the same running leader over GET_STATUS, and
    /// returns its index. Panics after `deadline` with the last statuses, or as soon as a
    /// running node exits.
    pub async fn wait_for_agreed_leader(&mut self, deadline: Duration) -> usize {
        let running: Vec<usize> = (0..self.ids.len()).filter(|&i| self.is_running(i)).collect();
        let addrs: Vec<String> = running.iter().map(|&i| self.addrs[i].clone()).collect();
        let config = ClientConfig { request_timeout: Duration::from_secs(1), max_attempts: 1, ..ClientConfig::with_nodes(addrs) };
        let client = Client::new(config).unwrap();

        let started = Instant::now();
        let mut last = Vec::new();
        while started.elapsed() < deadline {
            self.assert_running();
            let statuses = client.status_all().await;
            last = statuses
                .iter()
                .map(|(addr, status)| match status {
                    Ok(status) => format!("{addr}: {} leader={:?}", status.state, status.leader),
                    Err(e) => format!("{addr}: {e}"),
                })
                .collect();
            let leaders: Vec<Option<String>> =
                statuses.into_iter().map(|(_, status)| status.ok().and_then(|s| s.leader)).collect();
            if let Some(Some(first)) = leaders.first() {
                let position = self.ids.iter().position(|id| id == first);
                let agreed = leaders.iter().all(|l| l.as_ref() == Some(first));
                if let Some(position) = position.filter(|&p| agreed && self.is_running(p)) {
                    return position;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the running nodes did not agree on a running leader within {deadline:?}; last statuses: {last:?}; logs in {}",
            self.log_dir.display()
        );
    }

    pub fn client(&self) -> Client {
        Client::new(ClientConfig::with_nodes(self.addrs.clone())).unwrap()
    }

    fn wait_for_leader(&mut self, deadline: Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = Client::new(ClientConfig { request_timeout: Duration::from_secs(1), ..ClientConfig::with_nodes(self.addrs.clone()) })
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < deadline {
            for child in self.children.iter_mut().flatten() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("a node exited early with {status}; see the logs in {}", self.log_dir.display());
                }
            }
            let statuses = runtime.block_on(client.status_all());
            if statuses.iter().any(|(_, s)| s.as_ref().is_ok_and(|s| s.is_leader)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no leader elected within {deadline:?}; see the logs in {}", self.log_dir.display());
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Ports the OS hands out for 127.0.0.1, released again for the nodes to bind. Another
/// process could take one in between; that is unlikely and makes a node fail loudly.
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}
