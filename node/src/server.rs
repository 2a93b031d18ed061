//! The client TCP server: an accept loop and one task per connection that reads
//! request lines, hands them to the [`Service`] and writes one response line each,
//! in order.

use std::sync::Arc;
use std::time::Duration;

use client::wire::{parse_request_with_origin, ErrorCode, WireError};
use log::{debug, info, warn};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::framing::{read_frame, Frame};
use crate::service::Service;

/// Accepts client connections until shutdown. A failing accept (for example, out of
/// file descriptors) is retried with doubling backoff.
pub async fn serve_clients(listener: TcpListener, service: Arc<Service>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, address)) => {
                backoff = Duration::from_millis(10);
                let service = service.clone();
                tokio::spawn(async move {
                    debug!("client {address} connected");
                    if let Err(e) = handle_connection(stream, &service).await {
                        debug!("client {address} connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("accepting a client connection failed: {e}; retrying in {} ms", backoff.as_millis());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn handle_connection(stream: TcpStream, service: &Service) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::new(writer);
    let mut line = Vec::new();
    let max = service.config.max_line_bytes;

    loop {
        match read_frame(&mut reader, &mut line, max).await? {
            Frame::Line => {}
            Frame::Closed => return Ok(()),
            Frame::TooLong => {
                let error = WireError::new(
                    ErrorCode::LineTooLong,
                    format!("request line exceeds the {max}-byte limit; the connection will be closed"),
                );
                info!("{}: closing a connection that sent a line over {max} bytes", service.config.id);
                write_response(&mut writer, &error.to_response(None)).await?;
                return Ok(());
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }

        let response = match parse_request_with_origin(&line) {
            Ok((envelope, origin)) => service.handle(envelope, origin).await,
            Err(failure) => failure.error.to_response(failure.request_id.as_deref()),
        };
        write_response(&mut writer, &response).await?;
    }
}

async fn write_response<W: AsyncWriteExt + Unpin>(writer: &mut W, response: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    writer.write_all(&bytes).await?;
    writer.flush().await
}
