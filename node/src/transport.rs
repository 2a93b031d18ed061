//! Peer transport: JSON lines over TCP between cluster members.
//!
//! Each node keeps one outgoing connection per peer and only writes to it; the peer's
//! replies come back over the peer's own outgoing connection. A connection starts with
//! `{"type": "IDENTIFY", "nodeId": ...}` and then carries Raft messages. Raft tolerates
//! loss, so a full queue or a broken connection drops messages instead of blocking
//! the Raft loop. The outgoing task reconnects with doubling backoff.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::driver::DriverEvent;

use crate::framing::{read_frame, Frame};
use crate::metrics::Metrics;
use crate::raft::{Message, NodeId};

/// Largest peer message accepted, in bytes. Entries carry whole datasets in Base64.
pub const MAX_PEER_LINE_BYTES: usize = 512 * 1024 * 1024;

/// Messages queued per peer before new ones are dropped.
const QUEUE_DEPTH: usize = 4096;

/// Maximum wait for a peer connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Time that sent data may stay unacknowledged before the kernel drops the connection
/// (TCP_USER_TIMEOUT). Without it, a connection through a partition that silently
/// drops packets stays open and recovers only at the kernel's next, ever later,
/// retransmission after the partition heals.
const UNACKNOWLEDGED_LIMIT_MS: libc::c_uint = 1500;

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
enum Hello {
    #[serde(rename_all = "camelCase")]
    Identify { node_id: NodeId },
}

/// Sends Raft messages to peers.
#[derive(Clone)]
pub struct Transport {
    queues: Arc<HashMap<NodeId, mpsc::Sender<Message>>>,
    metrics: Arc<Metrics>,
}

impl Transport {
    /// Starts one outgoing task per peer.
    pub fn start(
        me: &str,
        peers: Vec<(NodeId, String)>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Transport {
        let mut queues = HashMap::new();
        for (id, address) in peers {
            let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
            queues.insert(id.clone(), sender);
            let link = Link { me: me.to_string(), peer: id, address, metrics: metrics.clone() };
            tokio::spawn(link.run(receiver, shutdown.clone()));
        }
        Transport { queues: Arc::new(queues), metrics }
    }

    /// Queues a message for a peer; drops it when the peer is unknown or its queue is full.
    pub fn send(&self, to: &str, message: Message) {
        self.metrics.count_peer_message_sent(&message);
        match self.queues.get(to) {
            Some(queue) => {
                if queue.try_send(message).is_err() {
                    self.metrics.peer_messages_dropped.inc();
                    debug!("queue to {to} is full or closed; message dropped");
                }
            }
            None => warn!("no peer {to:?} in the cluster config; message dropped"),
        }
    }
}

/// The outgoing connection to one peer.
struct Link {
    me: NodeId,
    peer: NodeId,
    address: String,
    metrics: Arc<Metrics>,
}

impl Link {
    async fn run(self, mut queue: mpsc::Receiver<Message>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(20);
        // Logged once per change, so a peer that stays down does not flood the log.
        let mut reported_down = false;
        loop {
            let stream = tokio::select! {
                _ = shutdown.changed() => return,
                result = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address)) => match result {
                    Ok(result) => result,
                    Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
                },
            };
            match stream {
                Ok(stream) => {
                    backoff = Duration::from_millis(20);
                    reported_down = false;
                    info!("{}: connected to peer {} at {}", self.me, self.peer, self.address);
                    match self.pump(stream, &mut queue, &mut shutdown).await {
                        Ok(()) => return,
                        Err(e) => warn!("{}: connection to peer {} failed: {e}; reconnecting", self.me, self.peer),
                    }
                }
                Err(e) if !reported_down => {
                    warn!("{}: peer {} at {} is unreachable: {e}; retrying in the background", self.me, self.peer, self.address);
                    reported_down = true;
                }
                Err(e) => debug!("{}: cannot connect to peer {} at {}: {e}", self.me, self.peer, self.address),
            }

            drain(&mut queue);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Writes queued messages until the connection fails (error) or shutdown (Ok).
    async fn pump(
        &self,
        stream: TcpStream,
        queue: &mut mpsc::Receiver<Message>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        set_user_timeout(&stream)?;
        let mut writer = BufWriter::new(stream);
        let hello = Hello::Identify { node_id: self.me.clone() };
        write_json_line(&mut writer, &hello).await?;
        writer.flush().await?;

        loop {
            let message = tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                message = queue.recv() => match message {
                    Some(message) => message,
                    None => return Ok(()),
                },
            };
            write_json_line(&mut writer, &message).await?;

            while let Ok(next) = queue.try_recv() {
                write_json_line(&mut writer, &next).await?;
            }
            writer.flush().await?;
            self.metrics.peer_flushes.inc();
        }
    }
}

fn set_user_timeout(stream: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;

    let value = UNACKNOWLEDGED_LIMIT_MS;
    // SAFETY: the descriptor belongs to `stream`, which outlives the call, and the
    // option value is a valid c_uint of the size passed.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            &value as *const libc::c_uint as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Discards messages queued while the peer was unreachable: they are stale by now and
/// the Raft core re-sends what is still needed.
fn drain(queue: &mut mpsc::Receiver<Message>) {
    while queue.try_recv().is_ok() {}
}

async fn write_json_line<W: AsyncWriteExt + Unpin, T: Serialize>(writer: &mut W, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line).await
}

/// Accepts peer connections and forwards their messages, tagged with the sender, to `inbox`.
pub async fn serve_peers(
    listener: TcpListener,
    known: Vec<NodeId>,
    inbox: std::sync::mpsc::Sender<DriverEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let known = Arc::new(known);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, address)) => {
                let inbox = inbox.clone();
                let known = known.clone();
                tokio::spawn(async move {
                    if let Err(e) = read_peer(stream, address, &known, inbox).await {
                        debug!("peer connection from {address} ended: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("accepting a peer connection failed: {e}; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn read_peer(
    stream: TcpStream,
    address: SocketAddr,
    known: &[NodeId],
    inbox: std::sync::mpsc::Sender<DriverEvent>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut line = Vec::new();

    if read_frame(&mut reader, &mut line, 4096).await? != Frame::Line {
        return Ok(());
    }
    let from = match serde_json::from_slice::<Hello>(&line) {
        Ok(Hello::Identify { node_id }) if known.contains(&node_id) => node_id,
        Ok(Hello::Identify { node_id }) => {
            warn!("peer {address} identified as unknown node {node_id:?}; closing");
            return Ok(());
        }
        Err(e) => {
            warn!("peer {address} did not start with IDENTIFY: {e}; closing");
            return Ok(());
        }
    };
    debug!("peer {from} connected from {address}");

    loop {
        match read_frame(&mut reader, &mut line, MAX_PEER_LINE_BYTES).await? {
            Frame::Line => {}
            Frame::Closed => return Ok(()),
            Frame::TooLong => {
                warn!("peer {from} sent a message over {MAX_PEER_LINE_BYTES} bytes; closing");
                return Ok(());
            }
        }
        match serde_json::from_slice::<Message>(&line) {
            Ok(message) => {
                if inbox.send(DriverEvent::Peer(from.clone(), message)).is_err() {
                    return Ok(());
                }
            }
            Err(e) => warn!("peer {from} sent an invalid message: {e}; skipped"),
        }
    }
}
