//! Per-node state: the address, the node id once learned, and idle connections for reuse.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};

use super::connection::Connection;
use super::{lock, ClientConfig};
use crate::wire::{self, ErrorCode, WireError};

/// Failure of one attempt at one node.
pub(crate) enum AttemptError {
    /// The node returned `success: false`.
    Rejected(WireError),
    /// Connecting failed, or the connection broke before a response arrived.
    Io(io::Error),
    /// No response arrived within the request's timeout.
    TimedOut,
    /// The response was not a JSON object.
    BadResponse(String),
}

pub(crate) struct NodeSlot {
    pub(crate) addr: String,
    /// The node's id (e.g. `Node_A`), learned from a response's `node` field.
    id: Mutex<Option<String>>,
    /// Connections with no request in flight. A std mutex is enough because it is never
    /// held across an await.
    idle: Mutex<Vec<Connection>>,
}

impl NodeSlot {
    pub(crate) fn new(addr: String) -> NodeSlot {
        NodeSlot { addr, id: Mutex::new(None), idle: Mutex::new(Vec::new()) }
    }

    pub(crate) fn id(&self) -> Option<String> {
        lock(&self.id).clone()
    }

    pub(crate) fn set_id(&self, id: &str) {
        *lock(&self.id) = Some(id.to_string());
    }

    /// Sends one request line and reads its response. A pooled connection that the node
    /// closed while idle fails on first use, so that case gets one more try on a fresh one.
    pub(crate) async fn exchange(
        &self,
        line: &str,
        timeout: Duration,
        config: &ClientConfig,
    ) -> Result<Map<String, Value>, AttemptError> {
        let pooled = lock(&self.idle).pop();
        if let Some(connection) = pooled {
            match self.exchange_on(connection, line, timeout, config).await {
                Err(AttemptError::Io(error)) => log::debug!("idle connection to {} failed, reconnecting: {error}", self.addr),
                other => return other,
            }
        }

        let connection = Connection::open(&self.addr, config.connect_timeout).await.map_err(AttemptError::Io)?;
        self.exchange_on(connection, line, timeout, config).await
    }

    async fn exchange_on(
        &self,
        mut connection: Connection,
        line: &str,
        timeout: Duration,
        config: &ClientConfig,
    ) -> Result<Map<String, Value>, AttemptError> {
        let round_trip = async {
            connection.send(line).await?;
            connection.receive(config.max_response_bytes).await
        };
        let response = match tokio::time::timeout(timeout, round_trip).await {
            Err(_) => return Err(AttemptError::TimedOut),
            Ok(Err(error)) => return Err(AttemptError::Io(error)),
            Ok(Ok(response)) => response,
        };

        // The exchange finished, so the connection has nothing in flight and can be reused.
        self.release(connection, config.max_idle_per_node);
        match wire::parse_response(&response) {
            Ok(body) => Ok(body),
            Err(error) if error.code == ErrorCode::InvalidJson && !is_json_object(&response) => {
                Err(AttemptError::BadResponse(error.message))
            }
            Err(error) => Err(AttemptError::Rejected(error)),
        }
    }

    fn release(&self, connection: Connection, max_idle: usize) {
        let mut idle = lock(&self.idle);
        if idle.len() < max_idle {
            idle.push(connection);
        }
    }
}

/// Tells a response that is not JSON apart from a node's own `INVALID_JSON` error reply.
fn is_json_object(response: &str) -> bool {
    matches!(serde_json::from_str::<Value>(response), Ok(Value::Object(_)))
}
