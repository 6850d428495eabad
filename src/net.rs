//! What the HTTP and the Diameter listeners share below their protocols: the listening
//! socket, accepting with a backoff, and who a remote address is for the bounds that count
//! clients (the public rate limit, the Diameter listener's silent connections): an IPv4
//! address, or an IPv6 /64 (one subscriber's prefix: a client that owns a /64 holds 2^64
//! addresses and would otherwise be 2^64 clients; an IPv4-mapped IPv6 address is its IPv4
//! address). And their TLS ([`tls`]).

pub mod tls;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::net::TcpListener;

/// Connections the kernel queues for a listener before the server accepts them (the kernel
/// caps it at `net.core.somaxconn`, 4,096 by default). tokio's `TcpListener::bind` asks for
/// 128: past `server.max_connections`, the clients beyond 128 had their SYNs dropped and
/// retried a second later.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` (address reuse on, as `TcpListener::bind` sets it) with a
/// [`LISTEN_BACKLOG`] queue.
///
/// # Errors
/// The socket's errors (the address is in use, not ours, malformed).
pub fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The next connection on `listener`, with `TCP_NODELAY` (every answer is small and wanted at
/// once). A failed accept (out of file descriptors, say) is logged and retried after a pause
/// that doubles from 5 ms to 1 s, so that a full descriptor table does not spin the loop.
/// Cancel-safe: a shutdown may drop it while it waits.
pub async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The client `peer` belongs to, as a number: the IPv4 address (high 96 bits zero), or the
/// IPv6 /64 with bit 32 set (so that no IPv4 address looks like it), low 32 bits zero.
pub fn client(peer: IpAddr) -> u128 {
    match peer {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) & !((1u128 << 64) - 1)) | (1 << 32),
        },
    }
}
