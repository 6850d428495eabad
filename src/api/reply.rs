//! What handlers answer: a [`Reply`] of one buffer (every route that answers from memory,
//! and every error), or a hyper response whose body is one buffer or chunks streamed through
//! a channel (the exports).

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};
use serde_json::Value;

/// A response body: a whole buffer (every route but the exports), or chunks streamed from a
/// producer through a bounded channel (the negative list's exports).
pub type Body = Either<Full<Bytes>, ChannelBody>;

/// The response type of every handler.
pub type HttpResponse = Response<Body>;

/// A body whose chunks arrive through a channel; it ends when the sender is dropped.
pub struct ChannelBody {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it (`capacity` chunks in flight).
    pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, chunks) = tokio::sync::mpsc::channel(capacity);
        (tx, ChannelBody { chunks })
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

/// A whole-buffer body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// A response whose body is one buffer and whose headers are its content type and at most
/// one more: what the routes that never wait answer, and what every error renders as. Lighter
/// than an [`HttpResponse`], whose header map costs two allocations and its body's `Bytes` a
/// third, on every check. The direct path writes it out as it is (`server/direct.rs`); hyper
/// gets [`Reply::into_response`].
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The `content-type` header's value.
    pub content_type: &'static str,
    /// One more header (`allow`, `www-authenticate`, `retry-after`), if any.
    pub header: Option<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Cow<'static, [u8]>,
}

impl Reply {
    /// A `200` JSON reply.
    pub fn json(body: impl Into<Cow<'static, [u8]>>) -> Reply {
        Reply::new(StatusCode::OK, "application/json", body)
    }

    /// A reply with `status`, a `content-type` and a body, and no other header.
    pub fn new(
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Reply {
        Reply {
            status,
            content_type,
            header: None,
            body: body.into(),
        }
    }

    /// The same response for hyper.
    pub fn into_response(self) -> HttpResponse {
        let body = match self.body {
            Cow::Borrowed(bytes) => Bytes::from_static(bytes),
            Cow::Owned(bytes) => Bytes::from(bytes),
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if let Some((name, value)) = self.header {
            headers.insert(name, value);
        }
        response
    }
}

/// A `200` JSON response.
pub fn json_response(body: impl Into<Cow<'static, [u8]>>) -> HttpResponse {
    Reply::json(body).into_response()
}

/// A `200` JSON response of `value`.
pub fn json_value(value: &Value) -> HttpResponse {
    json_reply(value).into_response()
}

/// A `200` JSON reply of `value`.
pub fn json_reply(value: &Value) -> Reply {
    Reply::json(serde_json::to_vec(value).unwrap_or_default())
}

/// A `201 Created` JSON response of `value`, with `Location: location`.
pub fn created(location: &str, value: &Value) -> HttpResponse {
    let mut response = json_value(value);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}
