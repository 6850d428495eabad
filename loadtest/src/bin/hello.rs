//! The ceiling of HTTP on this machine: a hyper server (same builder, runtime and socket
//! options as imeidb) that answers every request with a fixed N5g-eir-sized JSON body and
//! does nothing else. With a second address, also the ceiling of Diameter: a listener that
//! answers every message (the capabilities exchange included) at once with an ECA-sized
//! answer saying 2001 and WHITELISTED, read and written as imeidb's Diameter connections read
//! and write (every whole message of a read answered, the answers in one write), with no peer
//! table, no decision and no metrics. Usage: `hello [ADDR [DIAMETER_ADDR]]` (default
//! 127.0.0.1:8081, no Diameter).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    if let Some(diameter) = std::env::args().nth(2) {
        let listener = tokio::net::TcpListener::bind(&diameter).await?;
        eprintln!("hello listening for Diameter on {}", listener.local_addr()?);
        tokio::spawn(diameter::serve(listener));
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("hello listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                let mut response = Response::new(Full::new(Bytes::from_static(
                    br#"{"status":"WHITELISTED"}"#,
                )));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok::<_, Infallible>(response)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

mod diameter {
    use bytes::{Buf, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use imeidb::diameter::codec::{self, Message};
    use imeidb::diameter::dict::{self, avp};

    pub async fn serve(listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(stream));
        }
    }

    async fn connection(mut stream: TcpStream) -> std::io::Result<()> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut out = Vec::with_capacity(64 * 1024);
        let body = body();
        loop {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
            while let Ok(Some(length)) = codec::frame(&buf, 1 << 20) {
                if buf.len() < length {
                    break;
                }
                if let Some(message) = Message::new(&buf[..length]) {
                    answer(&mut out, &message, &body);
                }
                buf.advance(length);
            }
            stream.write_all(&out).await?;
            out.clear();
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(64 * 1024);
            }
        }
    }

    /// What every answer carries after the Session-Id, built once (as imeidb builds its ECA
    /// bodies): the S13 application, 2001, the origin and WHITELISTED.
    fn body() -> Vec<u8> {
        let mut out = Vec::new();
        let group = codec::begin_group(&mut out, avp::VENDOR_SPECIFIC_APPLICATION_ID);
        codec::put_u32(&mut out, avp::VENDOR_ID, dict::VENDOR_3GPP);
        codec::put_u32(&mut out, avp::AUTH_APPLICATION_ID, dict::S13_APPLICATION);
        codec::finish_group(&mut out, group);
        codec::put_u32(&mut out, avp::RESULT_CODE, 2001);
        codec::put_u32(&mut out, avp::AUTH_SESSION_STATE, dict::NO_STATE_MAINTAINED);
        codec::put(&mut out, avp::ORIGIN_HOST, b"hello.imeidb.test");
        codec::put(&mut out, avp::ORIGIN_REALM, b"imeidb.localdomain");
        codec::put_u32(&mut out, avp::EQUIPMENT_STATUS, 0);
        out
    }

    /// An answer of the size and shape of imeidb's ECA: the request's Session-Id (its first
    /// AVP, when it has one) echoed, then `body`.
    fn answer(out: &mut Vec<u8>, request: &Message<'_>, body: &[u8]) {
        let header = request.header;
        let start = codec::begin(
            out,
            0,
            header.command,
            header.application,
            header.hop_by_hop,
            header.end_to_end,
        );
        if let Some(Ok(first)) = request.avps().next()
            && first.is(avp::SESSION_ID)
        {
            codec::put_raw(out, first.raw);
        }
        out.extend_from_slice(body);
        codec::finish(out, start);
    }
}
