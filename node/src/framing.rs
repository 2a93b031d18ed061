//! Newline-delimited framing with a length limit, shared by the client server and the
//! peer transport. Only this module reads lines from sockets.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The outcome of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole line is in the buffer, without its `\n` (and without a trailing `\r`).
    Line,
    /// The peer closed the connection; a partial line without `\n` is discarded.
    Closed,
    /// The line exceeded the limit. The rest of it has not been read, so the
    /// connection must be closed.
    TooLong,
}

/// Reads one line into `line` (cleared first), never buffering more than `max_bytes`.
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max_bytes: usize,
) -> std::io::Result<Frame> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Frame::Closed);
        }

        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > max_bytes {
            return Ok(Frame::TooLong);
        }
        line.extend_from_slice(chunk);
        let consumed = chunk.len() + usize::from(found_newline);
        reader.consume(consumed);

        if found_newline {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Frame::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn frames(input: &[u8], max: usize) -> Vec<(Frame, Vec<u8>)> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let frame = read_frame(&mut reader, &mut line, max).await.unwrap();
            let done = frame != Frame::Line;
            out.push((frame, line));
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_across_buffer_refills() {
        let out = frames(b"hello world\r\nsecond\n", 100).await;
        assert_eq!(out[0], (Frame::Line, b"hello world".to_vec()));
        assert_eq!(out[1], (Frame::Line, b"second".to_vec()));
        assert_eq!(out[2].0, Frame::Closed);
    }

    #[tokio::test]
    async fn long_line_is_reported() {
        let out = frames(b"0123456789\n", 5).await;
        assert_eq!(out[0].0, Frame::TooLong);
    }

    #[tokio::test]
    async fn partial_line_at_close_is_dropped() {
        let out = frames(b"abc", 100).await;
        assert_eq!(out[0].0, Frame::Closed);
    }
}
