//! The direct path: the HTTP/1.1 requests that [`api::answer_now`] answers at once (network
//! checks, operations, public lookups) read and answered without hyper.
//!
//! Why: a native check is kernel-bound, and of its user-space work hyper's handling of the
//! request was most, more than the check itself (callgrind; docs/performance-history.md).
//! Here a check costs one `httparse` parse of the head, the route and the check, and one
//! buffer written.
//!
//! What it answers, and why that is safe: a request it takes is one hyper would read the same
//! way, because it is a head `httparse` (hyper's own parser) reads whole, of an HTTP/1.1 `GET`
//! with no body, no `Content-Length`, `Transfer-Encoding`, `Expect` or `Upgrade`, no
//! `Connection` but `keep-alive`, at most [`MAX_HEADERS`] headers, and a target of plain path
//! characters. The first request that is anything else (a body, a route that waits, HTTP/1.0,
//! the HTTP/2 preface, a malformed or oversized head) is left unread: the connection goes to
//! hyper from that request's first byte on, for the rest of its life, so the two never
//! disagree about where a request ends. Responses are written in request order, so pipelined
//! requests are answered in order across the hand-over too.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Watch;
use crate::api::{self, AppState, Head, Reply};

/// Most headers a request answered here may have; a request with more goes to hyper.
pub const MAX_HEADERS: usize = 32;

/// Bytes asked of the socket per read, as hyper's first read.
const READ_SIZE: usize = 8192;

/// Bytes of responses a connection may have waiting to be written. Past them, the direct path
/// answers no more requests until they are written, and reads no more until then: a client
/// that pipelines requests and reads nothing fills the kernel's buffers, then waits, and the
/// server holds at most this much for it (with [`READ_SIZE`] beyond the largest head of
/// requests read and not answered yet), as hyper bounds its own write buffer. Without it, such
/// a client grew the server's memory by every answer it did not read (issue #18).
pub const MAX_QUEUED_OUT: usize = 16 << 10;

/// How the direct path left a connection.
pub enum Ended {
    /// The peer closed it between requests.
    Closed,
    /// A request the direct path does not answer: hyper serves the connection from here on,
    /// starting with these bytes (the first one is that request's first).
    HandOver(Bytes),
}

/// Answers requests on `io` until the peer closes or a request needs hyper. `writing` is set
/// while a response is being written, so that a close asked meanwhile waits for it.
///
/// # Errors
/// The socket's errors.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    state: &AppState,
    peer: IpAddr,
    watch: &Watch,
    max_head: usize,
    writing: &AtomicBool,
) -> io::Result<Ended> {
    let mut unread = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(1024);
    loop {
        let (used, next) = answer_all(&unread, &mut out, state, peer, max_head, &mut || {
            watch.note_started();
        });
        unread.advance(used);
        if !out.is_empty() {
            writing.store(true, Ordering::Relaxed);
            io.write_all(&out).await?;
            writing.store(false, Ordering::Relaxed);
            out.clear();
            if out.capacity() > 2 * MAX_QUEUED_OUT {
                out.shrink_to(MAX_QUEUED_OUT); // after one large response
            }
        }
        match next {
            Next::Answer => {
                // whole requests are waiting: no read before them, but let the worker's other
                // connections run between two writes, as hyper does every 16 requests, so a
                // client pipelining thousands cannot hold a worker while others wait
                tokio::task::yield_now().await;
                continue;
            }
            Next::HandOver => return Ok(Ended::HandOver(unread.freeze())),
            Next::Read if unread.len() >= max_head => {
                return Ok(Ended::HandOver(unread.freeze()));
            }
            Next::Read => {}
        }
        unread.reserve(READ_SIZE);
        if io.read_buf(&mut unread).await? == 0 {
            return Ok(if unread.is_empty() {
                Ended::Closed
            } else {
                // an unfinished head: hyper says what it says of one
                Ended::HandOver(unread.freeze())
            });
        }
    }
}

/// What the direct path does after answering what it could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read: the next request is not whole yet.
    Read,
    /// Write the responses, then answer the whole requests left ([`MAX_QUEUED_OUT`]).
    Answer,
    /// The next request is for hyper.
    HandOver,
}

/// Answers the whole requests at the front of `unread`, appending the responses to `out` and
/// calling `started` for each, until `out` holds [`MAX_QUEUED_OUT`] bytes. A head longer than
/// `max_head` is hyper's to refuse (431), however many reads it came in. Returns how many
/// bytes the answered requests took, and what comes next.
pub fn answer_all(
    unread: &[u8],
    out: &mut Vec<u8>,
    state: &AppState,
    peer: IpAddr,
    max_head: usize,
    started: &mut impl FnMut(),
) -> (usize, Next) {
    let mut used = 0;
    loop {
        if out.len() >= MAX_QUEUED_OUT {
            return (used, Next::Answer);
        }
        // left uninitialised: the parser writes those it returns (hyper does the same)
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        let length = match request.parse_with_uninit_headers(&unread[used..], &mut headers) {
            Ok(httparse::Status::Complete(length)) if length <= max_head => length,
            Ok(httparse::Status::Complete(_)) => return (used, Next::HandOver),
            Ok(httparse::Status::Partial) => return (used, Next::Read),
            // malformed, or too many headers: hyper answers as it always has
            Err(_) => return (used, Next::HandOver),
        };
        let Some(reply) =
            DirectHead::of(&request).and_then(|head| api::answer_now(state, peer, &head))
        else {
            return (used, Next::HandOver);
        };
        started();
        encode(&reply, out);
        used += length;
    }
}

/// The largest head [`check_answers`] lets the direct path answer (the default
/// `server.max_header_bytes`).
const CHECKED_MAX_HEAD: usize = 16 << 10;

/// Largest response the property test and the fuzz target expect of one request (a
/// `/metrics` page of an empty store is a few kilobytes).
const MAX_REPLY: usize = 64 << 10;

/// Runs [`answer_all`] on `bytes` as the connection loop does and checks what the direct path
/// promises (see the module doc): it consumed whole, bodiless HTTP/1.1 `GET` heads and nothing
/// else, wrote one whole response, with its `content-length`, for each, and never queued
/// much more than [`MAX_QUEUED_OUT`] bytes of them at once. For the property test and the fuzz
/// target (`server::check_direct_path`); `Err` says which promise was broken.
pub fn check_answers(state: &AppState, bytes: &[u8]) -> Result<(), String> {
    let mut out = Vec::new();
    let mut started = 0;
    let mut used = 0;
    loop {
        let mut written = Vec::new();
        let (n, next) = answer_all(
            &bytes[used..],
            &mut written,
            state,
            IpAddr::from([127, 0, 0, 1]),
            CHECKED_MAX_HEAD,
            &mut || {
                started += 1;
            },
        );
        if written.len() > MAX_QUEUED_OUT + MAX_REPLY {
            return Err(format!("{} bytes queued at once", written.len()));
        }
        out.extend_from_slice(&written);
        used += n;
        if next != Next::Answer {
            break;
        }
    }
    let mut rest = bytes
        .get(..used)
        .ok_or("consumed more bytes than were read")?;
    let mut requests = 0;
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(length)) = request.parse(rest) else {
            return Err("answered bytes that are not a whole request head".into());
        };
        if length > CHECKED_MAX_HEAD {
            return Err(format!("answered a head of {length} bytes"));
        }
        let bodiless = request.headers.iter().all(|h| {
            !h.name.eq_ignore_ascii_case("content-length")
                && !h.name.eq_ignore_ascii_case("transfer-encoding")
        });
        if request.method != Some("GET") || request.version != Some(1) || !bodiless {
            return Err(format!("answered a request it should leave: {request:?}"));
        }
        rest = &rest[length..];
        requests += 1;
    }
    if started != requests {
        return Err(format!("{requests} requests, {started} counted as started"));
    }
    let mut responses = 0;
    let mut written = &out[..];
    while !written.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = response.parse(written) else {
            return Err("a response head that does not parse".into());
        };
        let length: usize = (response.headers.iter())
            .find(|h| h.name == "content-length")
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .ok_or("a response without a content-length")?;
        written = written
            .get(head + length..)
            .ok_or("a response shorter than its content-length")?;
        responses += 1;
    }
    if responses != requests {
        return Err(format!("{requests} requests, {responses} responses"));
    }
    Ok(())
}

/// The head of a request the direct path may answer (see the module doc).
struct DirectHead<'a> {
    path: &'a str,
    query: Option<&'a str>,
    authorization: Option<&'a [u8]>,
}

impl<'a> DirectHead<'a> {
    fn of(request: &httparse::Request<'_, 'a>) -> Option<DirectHead<'a>> {
        if request.method != Some("GET") || request.version != Some(1) {
            return None;
        }
        let target = request.path?;
        if !target.starts_with('/') || !target.bytes().all(is_plain_target_byte) {
            return None;
        }
        let mut authorization = None;
        for header in request.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("authorization") {
                authorization.get_or_insert(header.value);
            } else if name.eq_ignore_ascii_case("connection") {
                if !header.value.eq_ignore_ascii_case(b"keep-alive") {
                    return None;
                }
            } else if ["content-length", "transfer-encoding", "expect", "upgrade"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                return None;
            }
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        Some(DirectHead {
            path,
            query,
            authorization,
        })
    }
}

/// Bytes of a request target the direct path takes: letters, digits and the path and query
/// punctuation a check uses. Anything else (`#`, `%`, quotes, brackets...) goes to hyper,
/// whose URI parser then decides. A table: the test runs on every byte of every target.
fn is_plain_target_byte(b: u8) -> bool {
    const PLAIN: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'/' | b'?' | b'=' | b'&' | b'-' | b'.' | b'_' | b'~' | b'+'
                );
            b += 1;
        }
        table
    };
    PLAIN[usize::from(b)]
}

impl Head for DirectHead<'_> {
    fn method(&self) -> hyper::Method {
        hyper::Method::GET // the only method the direct path reads
    }

    fn path(&self) -> &str {
        self.path
    }

    fn query(&self) -> Option<&str> {
        self.query
    }

    fn authorization(&self) -> Option<&[u8]> {
        self.authorization
    }
}

/// Appends `reply` as HTTP/1.1 bytes: the bytes hyper writes for the same response (its
/// headers in order, then the `content-length` and `date` hyper adds).
fn encode(reply: &Reply, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(reply.status.as_str().as_bytes());
    out.push(b' ');
    let reason = reply.status.canonical_reason().unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(reply.content_type.as_bytes());
    if let Some((name, value)) = &reply.header {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(b"\r\ncontent-length: ");
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(reply.body.len(), &mut digits));
    out.extend_from_slice(b"\r\ndate: ");
    with_date(|date| out.extend_from_slice(date));
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&reply.body);
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[start..];
        }
    }
}

/// Calls `f` with the current time as an HTTP date, formatted once per second per thread.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = httpdate::fmt_http_date(now);
        }
        f(text.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::*;
    use crate::config::Config;

    /// A server state over a store in a temporary directory, shared by the cases.
    fn state() -> &'static AppState {
        static STATE: OnceLock<(AppState, tempfile::TempDir)> = OnceLock::new();
        &STATE
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let mut config = Config::default_config();
                config.data_dir = dir.path().to_owned();
                config.store.sync_writes = false;
                config.store.block_cache_bytes = 8 << 20;
                (AppState::open(&config).unwrap(), dir)
            })
            .0
    }

    /// Pieces of what clients send: requests the direct path answers, requests it leaves,
    /// and bytes that are no request.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"GET /v1/imeis/490154203237518/status HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
            Just(b"GET /healthz HTTP/1.1\r\n\r\n".to_vec()),
            Just(b"GET /n5g-eir-eic/v1/equipment-status?pei=imei-35 HTTP/1.1\r\n\r\n".to_vec()),
            Just(b"GET /v1/imeis/1/status HTTP/1.1\r\ncontent-length: 27\r\n\r\n".to_vec()),
            Just(b"POST /v1/checks HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()),
            Just(b"GET /healthz HTTP/1.0\r\n\r\n".to_vec()),
            Just(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
            Just(b"GET /metrics HTTP/1.1\r\n\r\n".repeat(40)),
            Just(
                format!(
                    "GET /healthz HTTP/1.1\r\nx: {}\r\n\r\n",
                    "a".repeat(17 << 10)
                )
                .into_bytes()
            ),
            proptest::collection::vec(any::<u8>(), 0..24),
            "[ -~]{0,40}\r\n".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        /// Whatever arrives, the direct path answers only whole, bodiless HTTP/1.1 `GET`
        /// heads, one response each, and consumes exactly those requests' bytes.
        #[test]
        fn answers_only_whole_bodiless_gets(pieces in proptest::collection::vec(piece(), 0..6)) {
            prop_assert_eq!(check_answers(state(), &pieces.concat()), Ok(()));
        }
    }

    fn head(raw: &[u8]) -> Option<(String, Option<String>, Option<Vec<u8>>)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        assert!(request.parse(raw).unwrap().is_complete());
        DirectHead::of(&request).map(|h| {
            (
                h.path.to_owned(),
                h.query.map(str::to_owned),
                h.authorization.map(<[u8]>::to_vec),
            )
        })
    }

    #[test]
    fn takes_plain_gets_and_leaves_everything_else_to_hyper() {
        let taken = head(b"GET /v1/imeis/490154203237518/status?imsi=732101 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t1\r\nauthorization: Bearer t2\r\nConnection: Keep-Alive\r\n\r\n");
        assert_eq!(
            taken,
            Some((
                "/v1/imeis/490154203237518/status".to_owned(),
                Some("imsi=732101".to_owned()),
                Some(b"Bearer t1".to_vec())
            ))
        );
        for raw in [
            &b"POST /v1/checks HTTP/1.1\r\n\r\n"[..],
            b"HEAD /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.0\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
            b"GET http://host/healthz HTTP/1.1\r\n\r\n",
            b"GET * HTTP/1.1\r\n\r\n",
            b"GET /v1/imeis/1%32/status HTTP/1.1\r\n\r\n",
            b"GET /healthz#x HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(head(raw), None, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn pipelined_requests_are_answered_a_bounded_amount_at_a_time() {
        let metrics = b"GET /metrics HTTP/1.1\r\n\r\n";
        let answer = |bytes: &[u8]| {
            let mut out = Vec::new();
            let (used, next) = answer_all(
                bytes,
                &mut out,
                state(),
                IpAddr::from([127, 0, 0, 1]),
                CHECKED_MAX_HEAD,
                &mut || {},
            );
            (used, next, out.len())
        };
        let (_, next, one) = answer(metrics);
        assert_eq!(next, Next::Read);
        let pipelined = metrics.repeat(2_000);
        let (used, next, queued) = answer(&pipelined);
        assert_eq!(
            next,
            Next::Answer,
            "stops to write before answering the rest"
        );
        assert!(used < pipelined.len() / 10, "{used}");
        assert!(queued < MAX_QUEUED_OUT + one, "{queued}");
        assert_eq!(check_answers(state(), &pipelined), Ok(()));
    }

    #[test]
    fn plain_target_bytes_are_letters_digits_and_path_and_query_punctuation() {
        let plain: Vec<u8> = (0..=255u8).filter(|&b| is_plain_target_byte(b)).collect();
        let mut expected: Vec<u8> = (b'0'..=b'9')
            .chain(b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .collect();
        expected.extend_from_slice(b"/?=&-._~+");
        expected.sort_unstable();
        assert_eq!(plain, expected);
    }

    #[test]
    fn decimal_writes_every_magnitude() {
        let mut digits = [0u8; 20];
        for n in [0usize, 7, 10, 160, 65_535, usize::MAX] {
            assert_eq!(decimal(n, &mut digits), n.to_string().as_bytes());
        }
    }

    #[test]
    fn dates_are_http_dates() {
        let date = with_date(|d| String::from_utf8(d.to_vec()).unwrap());
        assert!(httpdate::parse_http_date(&date).is_ok(), "{date}");
        assert!(date.ends_with(" GMT"));
    }
}
