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
    pub addrs: Vec<String>,
    pub ids: Vec<String>,
    children: Vec<Child>,
    pub log_dir: PathBuf,
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
        let log_dir = data_root.join("logs");
        std::fs::create_dir_all(&log_dir).unwrap();

        let mut cluster = RealCluster { addrs, ids: ids.clone(), children: Vec::new(), log_dir };
        for id in &ids {
            let log = std::fs::File::create(cluster.log_dir.join(format!("{id}.log"))).unwrap();
            let child = Command::new(node_bin)
                .args(["--id", id, "--cluster", &spec])
                .arg("--data-root")
                .arg(data_root)
                .arg("--ai-core")
                .arg(ai_core_bin)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", node_bin.display()));
            cluster.children.push(child);
        }
        cluster.wait_for_leader(deadline);
        cluster
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
            for child in &mut self.children {
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
        for child in &mut self.children {
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
