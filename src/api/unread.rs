//! Request bodies a route answered without reading, read to their end before the answer goes.
//!
//! A route may answer before it reads the body: 413 for a declared length over the limit, 411
//! for none, 401 or 429 before anything else. If the server then closes the connection, a
//! client still sending (Python's `http.client` and `requests` send the whole body before they
//! read a byte) gets a broken pipe instead of the answer. So the body is kept aside, and what
//! the route left unread is read and thrown away, up to [`DRAIN_LIMIT`] and [`DRAIN_TIME`],
//! before the answer is written. A client that sent `Expect: 100-continue` is waiting for
//! the answer before it sends, so its body is left alone.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Most a client may send past an early answer and still read it.
pub const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
/// How long reading the rest may take.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The body the routes read; it shares the connection's body with a [`Leftover`].
pub struct Shared(Arc<Mutex<Incoming>>);

/// The same body, kept for after the routes are done with it.
pub struct Leftover {
    body: Arc<Mutex<Incoming>>,
    /// The client waits for an answer before it sends (`Expect: 100-continue`).
    waits: bool,
}

/// Splits a request's body into the part the routes read and the part kept for draining.
pub fn keep(request: hyper::Request<Incoming>) -> (hyper::Request<Shared>, Leftover) {
    let waits = request
        .headers()
        .get(hyper::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let body = Arc::new(Mutex::new(body));
    let leftover = Leftover {
        body: body.clone(),
        waits,
    };
    (hyper::Request::from_parts(parts, Shared(body)), leftover)
}

impl Leftover {
    /// Reads what is left of the body and throws it away; false when it did not end within
    /// the limits (the connection is then closed with the answer, as before).
    pub async fn drain(self) -> bool {
        if self.waits {
            return true;
        }
        let reading = async {
            let mut read = 0u64;
            loop {
                let frame = std::future::poll_fn(|cx| {
                    let mut body = self.body.lock().expect("body lock");
                    if body.is_end_stream() {
                        return Poll::Ready(None);
                    }
                    Pin::new(&mut *body).poll_frame(cx)
                })
                .await;
                match frame {
                    None => return true,
                    Some(Err(_)) => return false,
                    Some(Ok(frame)) => {
                        read += frame.data_ref().map_or(0, |d| d.len() as u64);
                        if read > DRAIN_LIMIT {
                            return false;
                        }
                    }
                }
            }
        };
        tokio::time::timeout(DRAIN_TIME, reading)
            .await
            .unwrap_or(false)
    }
}

impl Body for Shared {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut body = self.0.lock().expect("body lock");
        Pin::new(&mut *body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().expect("body lock").is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().expect("body lock").size_hint()
    }
}
