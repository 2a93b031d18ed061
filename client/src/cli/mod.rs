//! The `client` binary: flags in `args`, one function per subcommand in `commands`, text
//! rendering in `output`, and the training spinner in `progress`.
//!
//! Exit codes: 0 success, 1 a request failed, 2 invalid usage or input, 3 no node reachable.

mod args;
mod commands;
mod output;
mod progress;

use std::io::Write;
use std::time::Duration;

use clap::Parser;

use crate::net::{ClientConfig, ClientError};
pub use args::Cli;

/// Process exit code of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    RequestFailed = 1,
    Usage = 2,
    Unreachable = 3,
}

/// A failure shown to the user as one `error: ...` line.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError { exit: Exit::Usage, message: message.into() }
    }

    pub fn failed(message: impl Into<String>) -> CliError {
        CliError { exit: Exit::RequestFailed, message: message.into() }
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> CliError {
        let (exit, hint) = match &error {
            ClientError::InvalidInput(_) => (Exit::Usage, ""),
            ClientError::Unreachable { .. } => {
                (Exit::Unreachable, "; start the cluster (make cluster) or pass its addresses with --nodes")
            }
            ClientError::NoLeader { .. } => (Exit::Unreachable, "; the cluster may be electing a leader, try again shortly"),
            ClientError::Timeout { .. } => (Exit::RequestFailed, "; raise --timeout or --train-timeout"),
            ClientError::Rejected { .. } | ClientError::InvalidResponse { .. } => (Exit::RequestFailed, ""),
        };
        CliError { exit, message: format!("{error}{hint}") }
    }
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Exit::RequestFailed as i32;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(exit) => exit as i32,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {}", error.message);
            error.exit as i32
        }
    }
}

/// Builds the client settings from the global flags, rejecting impossible values.
fn client_config(global: &args::GlobalArgs) -> Result<ClientConfig, CliError> {
    let nodes: Vec<String> = global.nodes.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
    if nodes.is_empty() {
        return Err(CliError::usage("--nodes is empty; pass host:port addresses such as 127.0.0.1:5000"));
    }
    if let Some(bad) = nodes.iter().find(|n| !n.contains(':')) {
        return Err(CliError::usage(format!("invalid node address {bad:?} in --nodes; expected host:port")));
    }
    Ok(ClientConfig {
        nodes,
        request_timeout: seconds("--timeout", global.timeout)?,
        train_timeout: seconds("--train-timeout", global.train_timeout)?,
        max_attempts: global.attempts.max(1),
        ..ClientConfig::default()
    })
}

fn seconds(flag: &str, value: f64) -> Result<Duration, CliError> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(CliError::usage(format!("{flag} must be a positive number of seconds, got {value}")))
    }
}
