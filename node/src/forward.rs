//! Forwarding of requests to another node's client port, used by followers to send
//! writes to the leader and to ask the leader for models they have not applied yet.

use std::time::Duration;

use client::wire::{parse_response, Envelope, ErrorCode, WireError};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::ClusterConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Forwarder {
    cluster: ClusterConfig,
    /// Maximum wait for the leader's response, long because training can take minutes.
    response_timeout: Duration,
}

impl Forwarder {
    pub fn new(cluster: ClusterConfig, response_timeout: Duration) -> Forwarder {
        Forwarder { cluster, response_timeout }
    }

    /// Sends the request to `node` marked as forwarded by `me` and returns its response.
    /// A connection failure is `UNAVAILABLE`, so the caller may retry elsewhere.
    pub async fn send(&self, me: &str, node: &str, envelope: &Envelope) -> Result<Value, WireError> {
        let unavailable = |what: String| WireError::new(ErrorCode::Unavailable, format!("leader {node} unreachable: {what}"));
        let address = self.cluster.member(node).map_err(|e| unavailable(e.to_string()))?.client_addr();

        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address))
            .await
            .map_err(|_| unavailable(format!("connecting to {address} timed out")))?
            .map_err(|e| unavailable(format!("connecting to {address}: {e}")))?;
        stream.set_nodelay(true).map_err(|e| unavailable(e.to_string()))?;
        let (reader, mut writer) = stream.into_split();

        let mut line = envelope.to_forwarded_line(me);
        line.push('\n');
        writer.write_all(line.as_bytes()).await.map_err(|e| unavailable(format!("sending to {address}: {e}")))?;

        let mut response = String::new();
        let mut reader = BufReader::new(reader);
        let read = tokio::time::timeout(self.response_timeout, reader.read_line(&mut response))
            .await
            .map_err(|_| WireError::new(ErrorCode::Timeout, format!("{node} did not respond within {} s", self.response_timeout.as_secs())))?
            .map_err(|e| unavailable(format!("reading from {address}: {e}")))?;
        if read == 0 {
            return Err(unavailable(format!("{address} closed the connection before answering")));
        }
        parse_response(&response).map(Value::Object)
    }
}
