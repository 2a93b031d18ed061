//! Errors of the network client, by who can act on them.

use std::time::Duration;

use crate::wire::{ErrorCode, WireError};

/// Failure of a request, by who can act on it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The caller's input was rejected before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A node returned `success: false` with an error that retrying would not fix.
    #[error("{node} rejected the request: {} ({})", error.message, error.code)]
    Rejected { node: String, error: WireError },

    /// Every attempt failed to connect or lost the connection before a response.
    #[error("no node reachable after {attempts} attempts (tried {nodes}); last error: {last}")]
    Unreachable { nodes: String, attempts: u32, last: String },

    /// Nodes responded, but only with retryable errors such as NOT_LEADER, until the
    /// attempts ran out.
    #[error("the cluster could not serve the request after {attempts} attempts; last error: {} ({})", last.message, last.code)]
    NoLeader { attempts: u32, last: WireError },

    /// A node accepted the request but sent no response in time.
    #[error("{node} did not respond within {:.1} s", after.as_secs_f64())]
    Timeout { node: String, after: Duration },

    /// A node sent a response that is not valid JSON or lacks expected fields.
    #[error("invalid response from {node}: {detail}")]
    InvalidResponse { node: String, detail: String },
}

impl ClientError {
    /// Returns the wire error code when a node rejected the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Rejected { error, .. } => Some(error.code),
            ClientError::NoLeader { last, .. } => Some(last.code),
            _ => None,
        }
    }

    /// Returns whether no node of the cluster could be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}
