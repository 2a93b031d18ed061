//! One TCP connection to a node: writes request lines and reads response lines.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A connection carrying one request at a time, so responses arrive in request order.
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    /// Opens a connection to `addr`, failing with `TimedOut` after `timeout`.
    pub(crate) async fn open(addr: &str, timeout: Duration) -> io::Result<Connection> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect timed out after {timeout:?}")))??;
        stream.set_nodelay(true)?;
        Ok(Connection { stream: BufReader::new(stream) })
    }

    /// Sends one request line; `line` must not contain a newline.
    pub(crate) async fn send(&mut self, line: &str) -> io::Result<()> {
        let socket = self.stream.get_mut();
        socket.write_all(line.as_bytes()).await?;
        socket.write_all(b"\n").await?;
        socket.flush().await
    }

    /// Reads one response line without its newline. A closed connection is `UnexpectedEof`
    /// and a line longer than `max_bytes` is `InvalidData`.
    pub(crate) async fn receive(&mut self, max_bytes: usize) -> io::Result<String> {
        let mut line = Vec::new();
        loop {
            let buffer = self.stream.fill_buf().await?;
            if buffer.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
            }

            let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
                Some(end) => (&buffer[..end], true),
                None => (buffer, false),
            };
            line.extend_from_slice(chunk);
            let used = chunk.len() + usize::from(done);
            self.stream.consume(used);

            if line.len() > max_bytes {
                let message = format!("response line is longer than the limit of {max_bytes} bytes");
                return Err(io::Error::new(io::ErrorKind::InvalidData, message));
            }
            if done {
                break;
            }
        }
        String::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response is not valid UTF-8"))
    }
}
