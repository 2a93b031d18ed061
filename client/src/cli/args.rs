//! Command-line flags, parsed by clap. Each flag's help states what it sets and in what unit.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Client for the Raft-replicated training cluster: train models on CSV files, predict,
/// list models, check node status, load-test, and serve a web page.
#[derive(Debug, Parser)]
#[command(name = "client", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Client addresses of the cluster nodes, comma-separated host:port.
    #[arg(
        long,
        global = true,
        env = "CLUSTER_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:5000,127.0.0.1:5001,127.0.0.1:5002"
    )]
    pub nodes: Vec<String>,

    /// Response timeout of predictions, model lists and status queries, in seconds.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,

    /// Response timeout of training and uploads, in seconds (they wait for replication
    /// and for the trainer).
    #[arg(long, global = true, default_value_t = 600.0, value_name = "SECONDS")]
    pub train_timeout: f64,

    /// Maximum attempts per request over all nodes before giving up.
    #[arg(long, global = true, default_value_t = 8, value_name = "N")]
    pub attempts: u32,

    /// Print results as JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model on a CSV file (last column is the label) and wait for the result.
    Train(TrainArgs),
    /// Run an input vector through a model.
    Predict(PredictArgs),
    /// List the models the cluster stores.
    Models,
    /// Show every node's role, term, leader and commit index.
    Status,
    /// Store a CSV file in the cluster without training.
    Upload(UploadArgs),
    /// Send a mix of TRAIN and PREDICT requests and report throughput and latency.
    Stress(StressArgs),
    /// Serve the web page for training and prediction.
    Web(WebArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// CSV file to train on.
    pub file: PathBuf,
    /// Model name: letters, digits, '-', '_' and '.', not starting with '.'.
    #[arg(long, short)]
    pub model: String,
    /// Passes over the training data.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Rows per mini-batch.
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Learning rate of the optimizer.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Optimizer: sgd or adam.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Hidden layer sizes, comma-separated (for example 64,32).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<u32>>,
    /// Seed of weight initialization and shuffling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Task: auto, classify or regress.
    #[arg(long)]
    pub task: Option<String>,
    /// Fraction of rows held out for validation, in [0, 0.9).
    #[arg(long)]
    pub validation: Option<f64>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model name.
    #[arg(long, short)]
    pub model: String,
    /// Input vector, one number per feature: "0.5,0.1" or "[0.5, 0.1]".
    #[arg(allow_hyphen_values = true)]
    pub vector: String,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// CSV file to store.
    pub file: PathBuf,
    /// Dataset name; defaults to the file name.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct StressArgs {
    /// Number of requests in the mix (the setup training is not counted).
    #[arg(short = 'n', long = "requests", default_value_t = 1000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, short, default_value_t = 1)]
    pub concurrency: usize,
    /// Fraction of TRAIN requests in the mix, from 0 to 1; the rest are PREDICT.
    #[arg(long, default_value_t = 0.05)]
    pub mix: f64,
    /// Seed of the request mix, the prediction inputs and the generated datasets.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Model trained first and used by every PREDICT; TRAIN requests train MODEL-tN.
    #[arg(long, default_value = "stress-circles")]
    pub model: String,
    /// Epochs of the setup model (500 rows of 2-feature circles).
    #[arg(long, default_value_t = 20)]
    pub setup_epochs: u32,
    /// Epochs of each TRAIN request in the mix (100 rows each).
    #[arg(long, default_value_t = 3)]
    pub mix_epochs: u32,
    /// Stop starting requests after this many seconds; requests in flight still finish.
    #[arg(long, default_value_t = 600.0, value_name = "SECONDS")]
    pub max_seconds: f64,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5005")]
    pub listen: SocketAddr,
    /// Largest accepted CSV upload, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub max_upload_mib: u64,
}
