//! `node`: one member of the Raft cluster.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use node::config::{ClusterConfig, NodeConfig};

/// Runs one cluster node: Raft consensus with its peers, the client TCP server and the
/// HTTP monitor. Without --config or --cluster, the cluster is Node_A, Node_B and Node_C on
/// 127.0.0.1 with client ports 5000-5002, peer ports 6000-6002 and monitor ports 8080-8082.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Id of this node in the cluster config, e.g. Node_A.
    #[arg(long)]
    id: String,

    /// JSON cluster config file listing every node's id, host and ports.
    #[arg(long, env = "CLUSTER_CONFIG", conflicts_with = "cluster")]
    config: Option<PathBuf>,

    /// Cluster members as ID=HOST:CLIENT_PORT:PEER_PORT:HTTP_PORT, comma-separated.
    #[arg(long, env = "CLUSTER_MEMBERS")]
    cluster: Option<String>,

    /// Root of the data directories; this node writes under DATA_ROOT/<id>/.
    #[arg(long, default_value = "disk")]
    data_root: PathBuf,

    /// Path of the ai-core binary [default: next to this binary, else from PATH].
    #[arg(long, env = "AI_CORE")]
    ai_core: Option<PathBuf>,

    /// Address to bind the listeners to [default: this node's host from the config].
    #[arg(long)]
    bind: Option<String>,

    /// Length of one Raft tick, in milliseconds.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,

    /// Election timeout range in ticks, randomized per election, as MIN-MAX (MAX exclusive).
    #[arg(long, default_value = "15-30")]
    election_ticks: String,

    /// Ticks between leader heartbeats.
    #[arg(long, default_value_t = 5)]
    heartbeat_ticks: u32,

    /// Maximum length of one client request line, in bytes.
    #[arg(long, default_value_t = client::wire::DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,

    /// Time limit of one training job, in seconds.
    #[arg(long, default_value_t = 600)]
    train_timeout_secs: u64,

    /// Training jobs that may run at once on this node.
    #[arg(long, default_value_t = 2)]
    training_jobs: usize,

    /// Number of long-lived `ai-core serve` workers, which run predictions and CSV checks.
    #[arg(long, default_value_t = 2)]
    predict_workers: usize,

    /// Applied log entries after which the state machine is snapshotted and the log compacted.
    #[arg(long, default_value_t = 1000)]
    snapshot_entries: u64,

    /// Skip fsync of the Raft log (unsafe: acknowledged writes may be lost on power failure).
    #[arg(long)]
    no_fsync: bool,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp_millis().init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let cluster = match (&args.config, &args.cluster) {
        (Some(path), _) => ClusterConfig::load(path)?,
        (None, Some(members)) => ClusterConfig::parse_members(members)?,
        (None, None) => ClusterConfig::default(),
    };
    cluster.member(&args.id)?;

    let mut config = NodeConfig::new(&args.id, cluster);
    config.data_root = args.data_root;
    if let Some(path) = args.ai_core {
        config.ai_core = path;
    }
    config.bind_host = args.bind;
    config.tick = Duration::from_millis(args.tick_ms.max(1));
    config.election_ticks = parse_range(&args.election_ticks)?;
    config.heartbeat_ticks = args.heartbeat_ticks;
    config.max_line_bytes = args.max_line_bytes;
    config.train_timeout = Duration::from_secs(args.train_timeout_secs);
    config.max_training_jobs = args.training_jobs;
    config.predict_workers = args.predict_workers;
    config.snapshot_entries = args.snapshot_entries;
    config.fsync = !args.no_fsync;

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(node::node::run(config))
}

fn parse_range(text: &str) -> anyhow::Result<(u32, u32)> {
    let (low, high) = text.split_once('-').with_context(|| format!("--election-ticks {text:?} must look like 15-30"))?;
    let low: u32 = low.trim().parse().with_context(|| format!("--election-ticks minimum {low:?} is not a number"))?;
    let high: u32 = high.trim().parse().with_context(|| format!("--election-ticks maximum {high:?} is not a number"))?;
    anyhow::ensure!(low < high, "--election-ticks minimum {low} must be below maximum {high}");
    Ok((low, high))
}
