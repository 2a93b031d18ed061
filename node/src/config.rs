//! Cluster configuration: every member's id, host and three ports, plus this node's settings.
//!
//! The defaults describe three nodes on 127.0.0.1 (client 5000-5002, peer 6000-6002,
//! monitor 8080-8082). A JSON file with the same shape describes real hosts:
//!
//! ```json
//! {"nodes": [{"id": "Node_A", "host": "10.0.0.1", "client_port": 5000, "peer_port": 6000, "http_port": 8080}]}
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub host: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub http_port: u16,
}

impl Member {
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.host, self.client_port)
    }

    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }

    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.host, self.http_port)
    }
}

/// The members of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub nodes: Vec<Member>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read cluster config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cluster config {path} is not valid JSON: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("invalid cluster member {spec:?}: {reason}; expected ID=HOST:CLIENT_PORT:PEER_PORT:HTTP_PORT")]
    Member { spec: String, reason: String },
    #[error("node id {id:?} is not in the cluster config (members: {members})")]
    UnknownNode { id: String, members: String },
    #[error("cluster config lists node id {0:?} twice")]
    DuplicateNode(String),
    #[error("cluster config has no nodes")]
    Empty,
    #[error("invalid node id {0:?}: use letters, digits, '-' and '_' only")]
    InvalidId(String),
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        let member = |i: u16, id: &str| Member {
            id: id.to_string(),
            host: "127.0.0.1".to_string(),
            client_port: 5000 + i,
            peer_port: 6000 + i,
            http_port: 8080 + i,
        };
        ClusterConfig { nodes: vec![member(0, "Node_A"), member(1, "Node_B"), member(2, "Node_C")] }
    }
}

impl ClusterConfig {
    /// Reads a JSON cluster config file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: ClusterConfig =
            serde_json::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a comma-separated member list `ID=HOST:CLIENT:PEER:HTTP,...`.
    pub fn parse_members(spec: &str) -> Result<ClusterConfig, ConfigError> {
        let nodes = spec
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_member)
            .collect::<Result<Vec<Member>, ConfigError>>()?;
        let config = ClusterConfig { nodes };
        config.validate()?;
        Ok(config)
    }

    /// Formats the members in the form `parse_members` reads.
    pub fn to_members_spec(&self) -> String {
        let parts: Vec<String> = self
            .nodes
            .iter()
            .map(|m| format!("{}={}:{}:{}:{}", m.id, m.host, m.client_port, m.peer_port, m.http_port))
            .collect();
        parts.join(",")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::Empty);
        }
        for (i, member) in self.nodes.iter().enumerate() {
            let valid_id = !member.id.is_empty()
                && member.id.len() <= 64
                && member.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id {
                return Err(ConfigError::InvalidId(member.id.clone()));
            }
            if self.nodes[..i].iter().any(|other| other.id == member.id) {
                return Err(ConfigError::DuplicateNode(member.id.clone()));
            }
        }
        Ok(())
    }

    pub fn member(&self, id: &str) -> Result<&Member, ConfigError> {
        self.nodes.iter().find(|m| m.id == id).ok_or_else(|| ConfigError::UnknownNode {
            id: id.to_string(),
            members: self.ids().join(", "),
        })
    }

    pub fn ids(&self) -> Vec<String> {
        self.nodes.iter().map(|m| m.id.clone()).collect()
    }
}

fn parse_member(spec: &str) -> Result<Member, ConfigError> {
    let invalid = |reason: &str| ConfigError::Member { spec: spec.to_string(), reason: reason.to_string() };

    let (id, address) = spec.split_once('=').ok_or_else(|| invalid("missing '='"))?;
    let parts: Vec<&str> = address.rsplitn(4, ':').collect();
    if parts.len() != 4 {
        return Err(invalid("expected a host and three ports"));
    }
    let port = |text: &str, name: &str| text.parse::<u16>().map_err(|_| invalid(&format!("{name} port {text:?} is not a number")));
    Ok(Member {
        id: id.trim().to_string(),
        host: parts[3].to_string(),
        client_port: port(parts[2], "client")?,
        peer_port: port(parts[1], "peer")?,
        http_port: port(parts[0], "http")?,
    })
}

/// Everything one node process needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: String,
    pub cluster: ClusterConfig,
    /// Root of the data directories; this node uses `<data_root>/<id>/`.
    pub data_root: PathBuf,
    /// Path of the `ai-core` binary.
    pub ai_core: PathBuf,
    /// Address the listeners bind to; the member's host when `None`.
    pub bind_host: Option<String>,
    /// Length of one Raft tick.
    pub tick: Duration,
    pub election_ticks: (u32, u32),
    pub heartbeat_ticks: u32,
    /// Maximum length of one client request line, in bytes.
    pub max_line_bytes: usize,
    /// Time limit of one `ai-core train` child process.
    pub train_timeout: Duration,
    /// Maximum number of training jobs running at once on this node.
    pub max_training_jobs: usize,
    /// Number of `ai-core serve` workers, which run predictions and CSV checks.
    pub predict_workers: usize,
    /// Log size, in entries, past which the state machine is snapshotted and the log compacted.
    pub snapshot_entries: u64,
    /// Whether to fsync the log; disabling it is only for experiments.
    pub fsync: bool,
}

impl NodeConfig {
    pub fn new(id: &str, cluster: ClusterConfig) -> NodeConfig {
        NodeConfig {
            id: id.to_string(),
            cluster,
            data_root: PathBuf::from("disk"),
            ai_core: default_ai_core_path(),
            bind_host: None,
            tick: Duration::from_millis(10),
            election_ticks: (15, 30),
            heartbeat_ticks: 5,
            max_line_bytes: client::wire::DEFAULT_MAX_LINE_BYTES,
            train_timeout: Duration::from_secs(600),
            max_training_jobs: 2,
            predict_workers: 2,
            snapshot_entries: 1000,
            fsync: true,
        }
    }

    pub fn me(&self) -> &Member {
        self.cluster.member(&self.id).expect("node id was checked when the config was built")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_root.join(&self.id)
    }

    fn bind(&self, port: u16) -> Result<SocketAddr, std::io::Error> {
        use std::net::ToSocketAddrs;

        let host = self.bind_host.clone().unwrap_or_else(|| self.me().host.clone());
        (host.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("host {host:?} has no address")))
    }

    pub fn client_bind(&self) -> Result<SocketAddr, std::io::Error> {
        self.bind(self.me().client_port)
    }

    pub fn peer_bind(&self) -> Result<SocketAddr, std::io::Error> {
        self.bind(self.me().peer_port)
    }

    pub fn http_bind(&self) -> Result<SocketAddr, std::io::Error> {
        self.bind(self.me().http_port)
    }
}

/// `ai-core` next to the running binary when it is there (as after `cargo build`), else from `PATH`.
pub fn default_ai_core_path() -> PathBuf {
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("ai-core")));
    match sibling {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("ai-core"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cluster_matches_port_table() {
        let config = ClusterConfig::default();
        let b = config.member("Node_B").unwrap();
        assert_eq!((b.client_port, b.peer_port, b.http_port), (5001, 6001, 8081));
    }

    #[test]
    fn members_spec_round_trips() {
        let config = ClusterConfig::default();
        let parsed = ClusterConfig::parse_members(&config.to_members_spec()).unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn members_spec_rejects_bad_port() {
        let error = ClusterConfig::parse_members("A=127.0.0.1:5000:x:8080").unwrap_err();
        assert!(error.to_string().contains("peer port"), "{error}");
    }

    #[test]
    fn duplicate_ids_rejected() {
        let error = ClusterConfig::parse_members("A=h:1:2:3,A=h:4:5:6").unwrap_err();
        assert!(matches!(error, ConfigError::DuplicateNode(_)));
    }
}
