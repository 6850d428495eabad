//! A minimal HTTP/1.1 keep-alive client for the load generator: requests are prepared as
//! bytes before the clock starts, and an answer is read by its `Content-Length`. On one core,
//! a general-purpose client (hyper's) costs about as much per request as the server it
//! measures, so it would measure itself; this one costs a write, a read and a header scan
//! (what `wrk` does).

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
}

/// The request bytes of a `GET` (with an optional bearer token).
pub fn get(path: &str, token: Option<&str>) -> Vec<u8> {
    let mut out = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(token) = token {
        out.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The request bytes of a JSON `POST` (with an optional bearer token).
pub fn post_json(path: &str, body: &[u8], token: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        out.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Where a response's head ends (after the blank line), its status and its body's length.
///
/// # Errors
/// A description of what is wrong with a complete head; `Ok(None)` while it is incomplete.
pub fn parse_head(bytes: &[u8]) -> Result<Option<(usize, u16, usize)>, String> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| "a head that is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .ok_or("a response without Content-Length")?
        .1
        .trim()
        .parse()
        .map_err(|_| "a Content-Length that is not a number")?;
    Ok(Some((end + 4, status, length)))
}

impl Connection {
    /// Connects (with `TCP_NODELAY`, as any latency-minded client would).
    ///
    /// # Errors
    /// The connection's.
    pub async fn open(addr: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: BytesMut::with_capacity(1 << 16),
        })
    }

    /// Sends `request` and reads its whole answer; returns the status.
    ///
    /// # Errors
    /// I/O errors, a closed connection, or a response this client does not read.
    pub async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        loop {
            if let Some((head, status, length)) = parse_head(&self.buffer).map_err(invalid)? {
                let total = head + length;
                while self.buffer.len() < total {
                    self.buffer.reserve(total - self.buffer.len());
                    self.read().await?;
                }
                if self.buffer.len() > total {
                    return Err(invalid("more bytes than one answer".into()));
                }
                return Ok(status);
            }
            self.buffer.reserve(1 << 14);
            self.read().await?;
        }
    }

    async fn read(&mut self) -> std::io::Result<()> {
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_by_content_length_and_incomplete_ones_wait() {
        let answer = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"a\":\"b\"}xyz";
        let (head, status, length) = parse_head(answer).unwrap().unwrap();
        assert_eq!((status, length), (404, 12));
        assert_eq!(&answer[head..], b"{\"a\":\"b\"}xyz");
        assert_eq!(parse_head(&answer[..30]), Ok(None));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn requests_carry_host_length_and_token() {
        let get = String::from_utf8(get("/v1/imeis/1/status", Some("t0k"))).unwrap();
        assert_eq!(
            get,
            "GET /v1/imeis/1/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t0k\r\n\r\n"
        );
        let post = post_json("/v1/checks", b"{}", None);
        assert!(post.ends_with(b"Content-Length: 2\r\n\r\n{}"));
    }
}
