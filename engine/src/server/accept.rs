//! Serving connections: HTTP/1.1 over each accepted connection (plain TCP or TLS), with
//! graceful shutdown, and the request heads the HTTP library refuses on its own answered with the
//! API's JSON error like every other refusal.
//!
//! hyper refuses some heads before any handler runs, answering with an empty body: a request
//! target over its hard-coded 65,534 bytes (414), more headers than `max_headers` or a head over
//! its read buffer (431), and a head that is not HTTP (400). The connections are configured so
//! that the engine's own limits (`limits.max_header_bytes`, in [`super::limits`]) are reached
//! first for anything within them: hyper takes [`HeadBudget::max_headers`] headers and a read
//! buffer of [`HeadBudget::max_buf_bytes`], well above them. What hyper still refuses itself is
//! rewritten on the way out by [`Guarded`]:
//!
//! - hyper writes the refusal head (`HTTP/1.1 431 …`, `connection: close`, `content-length: 0`,
//!   `date`) as the last
//!   bytes of the connection and then shuts it down. A write that ends with exactly such a head
//!   goes out up to that head; the head is held back.
//! - When the connection then ends with a parse error, the held head was hyper's refusal: the
//!   JSON answer goes out in its place, and the rest of the refused request is read and
//!   discarded for a moment (so that closing with unread data does not reset the connection
//!   before the client reads the answer).
//! - Anything else (more bytes written, the connection going idle, ending without a parse
//!   error) means the held bytes were the end of an ordinary answer: they go out as they were.
//!
//! No HTTP is parsed here beyond recognising hyper's own three-line refusal head.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::ErrorBody;
use super::limits::HeadLimits;
use crate::error::Error;

/// hyper's hard-coded limit on the request target (`MAX_URI_LEN` in its h1 `role.rs`).
pub const LIBRARY_MAX_URI_BYTES: usize = u16::MAX as usize - 1;
/// hyper's default read buffer (`DEFAULT_MAX_BUFFER_SIZE` in its h1 `io.rs`): the least we set.
const LIBRARY_DEFAULT_BUF_BYTES: usize = 8192 + 4096 * 100;
/// hyper's default header count (`DEFAULT_MAX_HEADERS`): the least we set.
const LIBRARY_DEFAULT_MAX_HEADERS: usize = 100;
/// The most headers hyper is set to take: it sets aside room for this many on every request.
const MAX_HEADERS_CEILING: usize = 4096;
/// How long a refusal may take to write, and how long the rest of the refused request is read.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const REFUSAL_LINGER: Duration = Duration::from_secs(2);
/// Longest refusal head hyper writes (status line, `content-length: 0`, `date: …`, CRLFs).
const MAX_REFUSAL_HEAD: usize = 192;

/// How much of a request head hyper takes, derived from the engine's limits.
#[derive(Debug, Clone, Copy)]
pub struct HeadBudget {
    pub limits: HeadLimits,
    /// Headers hyper parses: room for headers of 32 bytes on average up to
    /// `limits.max_header_bytes`, between hyper's default (100) and [`MAX_HEADERS_CEILING`].
    pub max_headers: usize,
    /// hyper's read buffer: at least its default, and room for the longest target hyper takes
    /// plus headers just over `limits.max_header_bytes`, so the engine's limit answers first.
    pub max_buf_bytes: usize,
}

impl HeadBudget {
    pub fn new(limits: HeadLimits) -> HeadBudget {
        let max_headers =
            (limits.max_header_bytes / 32).clamp(LIBRARY_DEFAULT_MAX_HEADERS, MAX_HEADERS_CEILING);
        // Per header on the wire: ": " and CRLF besides the name and value the limit counts.
        let head = LIBRARY_MAX_URI_BYTES
            .saturating_add(limits.max_header_bytes)
            .saturating_add(4 * max_headers)
            .saturating_add(16 * 1024);
        HeadBudget {
            limits,
            max_headers,
            max_buf_bytes: head.max(LIBRARY_DEFAULT_BUF_BYTES),
        }
    }

    fn builder(&self) -> hyper::server::conn::http1::Builder {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.max_headers(self.max_headers)
            .max_buf_size(self.max_buf_bytes)
            // One contiguous buffer per write, so a refusal head is seen whole (see `Guarded`).
            .writev(false);
        b
    }

    /// The JSON answer for hyper's refusal `head` (status `status`), keeping its `date`.
    fn answer(&self, head: &[u8], status: u16, error: &hyper::Error) -> Vec<u8> {
        let l = self.limits;
        let e = match status {
            414 => Error::UriTooLong(format!(
                "the request target is over {LIBRARY_MAX_URI_BYTES} bytes, the most the HTTP \
                 server reads (limits.max_uri_bytes is {}); send long queries in a POST body",
                l.max_uri_bytes
            )),
            431 => Error::HeadersTooLarge(format!(
                "the request head is over what the HTTP server reads ({} headers, {} bytes in \
                 all; limits.max_header_bytes is {})",
                self.max_headers, self.max_buf_bytes, l.max_header_bytes
            )),
            _ => Error::InvalidInput(format!("the request head is not valid HTTP/1.1: {error}")),
        };
        let body = serde_json::to_vec(&ErrorBody::new(e.code(), e.to_string()))
            .unwrap_or_else(|_| b"{}".to_vec());
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let mut out = String::new();
        out.push_str(lines.next().unwrap_or_default());
        out.push_str("\r\ncontent-type: application/json\r\n");
        out.push_str(&format!("content-length: {}\r\n", body.len()));
        out.push_str("connection: close\r\n");
        for line in lines.filter(|l| l.starts_with("date: ")) {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// The status of `head` if it is exactly one of hyper's refusals: its status line for 400, 414
/// or 431, `content-length: 0`, and at most `connection: close` and a `date` line.
fn refusal_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let status = [
        StatusCode::BAD_REQUEST,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ]
    .into_iter()
    .find(|s| {
        status_line.strip_prefix("HTTP/1.1 ").is_some_and(|rest| {
            rest.strip_prefix(s.as_str())
                .and_then(|r| r.strip_prefix(' '))
                == s.canonical_reason()
        })
    })?;
    let (mut close, mut length, mut date) = (false, false, false);
    for line in lines {
        match line {
            "connection: close" if !close => close = true,
            "content-length: 0" if !length => length = true,
            l if l.starts_with("date: ") && !date => date = true,
            _ => return None,
        }
    }
    length.then_some(status.as_u16())
}

/// Where a refusal head starts at the end of `buf`, if `buf` ends with one.
fn refusal_at_end(buf: &[u8]) -> Option<usize> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(MAX_REFUSAL_HEAD);
    let start = from + buf[from..].windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    refusal_status(&buf[start..]).map(|_| start)
}

/// The connection's IO and what [`Guarded`] holds back, shared with the task serving it.
struct Shared<T> {
    io: Option<T>,
    /// A refusal head hyper wrote last, not sent yet.
    held: Vec<u8>,
    /// hyper asked to shut the connection down while holding: left to [`finish`].
    shutdown_deferred: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection already finished")
}

impl<T: AsyncWrite + Unpin> Shared<T> {
    /// Sends the held bytes as they are.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let io = self.io.as_mut().ok_or_else(gone)?;
            let n = ready!(Pin::new(io).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

/// The IO hyper serves: the connection's, with hyper's own refusal head held back (see the
/// module documentation).
struct Guarded<T>(Arc<Mutex<Shared<T>>>);

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        let io = s.io.as_mut().ok_or_else(gone)?;
        Pin::new(io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.0);
        // More bytes after held ones: those were the end of an ordinary answer.
        ready!(s.poll_release(cx))?;
        let to_send = match refusal_at_end(buf) {
            Some(0) => {
                s.held.extend_from_slice(buf);
                return Poll::Ready(Ok(buf.len()));
            }
            // What comes before it first; hyper writes the rest again.
            Some(start) => &buf[..start],
            None => buf,
        };
        let io = s.io.as_mut().ok_or_else(gone)?;
        Pin::new(io).poll_write(cx, to_send)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        let io = s.io.as_mut().ok_or_else(gone)?;
        Pin::new(io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        if !s.held.is_empty() {
            s.shutdown_deferred = true;
            return Poll::Ready(Ok(()));
        }
        let io = s.io.as_mut().ok_or_else(gone)?;
        Pin::new(io).poll_shutdown(cx)
    }
}

/// Writes what the connection ends with when a refusal head was held back: the JSON answer if
/// hyper ended it with a parse error, else the held bytes as they were.
async fn finish<T>(mut io: T, held: Vec<u8>, result: &Result<(), hyper::Error>, budget: &HeadBudget)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let refused = match result {
        Err(e) if e.is_parse() => refusal_status(&held).map(|status| (status, e)),
        _ => None,
    };
    let bytes = match refused {
        Some((status, e)) => {
            tracing::debug!(status, error = %e, "request head refused by the HTTP library");
            budget.answer(&held, status, e)
        }
        None => held,
    };
    let sent = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        io.write_all(&bytes).await?;
        io.shutdown().await
    })
    .await;
    if refused.is_some() && matches!(sent, Ok(Ok(()))) {
        // The rest of the refused head may still be arriving; closing with it unread would
        // reset the connection, and the client could lose the answer.
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            let mut sink = [0u8; 16 * 1024];
            while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// Serves one connection until it closes; `stop` turns true to close it once its in-flight
/// request is answered.
async fn serve_connection<T>(
    io: T,
    router: Router,
    budget: HeadBudget,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Shared {
        io: Some(io),
        held: Vec::new(),
        shutdown_deferred: false,
    }));
    let conn = budget.builder().serve_connection(
        TokioIo::new(Guarded(shared.clone())),
        TowerToHyperService::new(router),
    );
    let mut conn = pin!(conn);
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            r = std::future::poll_fn(|cx| {
                let r = conn.as_mut().poll(cx);
                if r.is_pending() {
                    let mut s = lock(&shared);
                    if !s.held.is_empty() && !s.shutdown_deferred {
                        // hyper wrote a head-like tail and went on waiting: not a refusal
                        // (hyper shuts down in the same poll as it writes one). An error here
                        // reaches hyper at its next use of the connection.
                        let _ = s.poll_release(cx);
                    }
                }
                r
            }) => break r,
            _ = stop.wait_for(|s| *s), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    };
    if let Err(e) = &result {
        tracing::trace!(error = %e, "connection ended with an error");
    }
    let (io, held) = {
        let mut s = lock(&shared);
        (s.io.take(), std::mem::take(&mut s.held))
    };
    if let Some(io) = io
        && !held.is_empty()
    {
        finish(io, held, &result, &budget).await;
    }
}

/// Serves `router` on every connection `listener` accepts until `signal` resolves, then stops
/// accepting, lets each connection finish the request it is answering, and returns once all are
/// closed.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    budget: HeadBudget,
    signal: impl Future<Output = ()> + Send,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver: all are gone when `closed` resolves.
    let (close_tx, close_rx) = watch::channel(());
    let mut signal = pin!(signal);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut signal => break,
        };
        tracing::trace!(peer = ?peer, "connection accepted");
        let router = router.clone();
        let stop = stop_rx.clone();
        let close = close_rx.clone();
        tokio::spawn(async move {
            serve_connection(io, router, budget, stop).await;
            drop(close);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(close_rx);
    close_tx.closed().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const DATE: &str = "date: Wed, 03 Dec 2026 10:00:00 GMT\r\n";

    fn hyper_refusal(status_line: &str) -> Vec<u8> {
        format!("{status_line}\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n")
            .into_bytes()
    }

    fn budget() -> HeadBudget {
        HeadBudget::new(HeadLimits {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
        })
    }

    #[test]
    fn hyper_s_three_refusal_heads_are_recognised_and_nothing_else() {
        for (line, status) in [
            ("HTTP/1.1 400 Bad Request", 400),
            ("HTTP/1.1 414 URI Too Long", 414),
            ("HTTP/1.1 431 Request Header Fields Too Large", 431),
        ] {
            assert_eq!(refusal_status(&hyper_refusal(line)), Some(status), "{line}");
        }
        assert_eq!(
            refusal_status(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            ),
            Some(431)
        );
        // Other statuses, a body, other headers: an ordinary answer.
        assert_eq!(
            refusal_status(&hyper_refusal("HTTP/1.1 404 Not Found")),
            None
        );
        assert_eq!(refusal_status(&hyper_refusal("HTTP/1.1 431 Nope")), None);
        assert_eq!(
            refusal_status(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 12\r\n\r\n"),
            None
        );
        assert_eq!(
            refusal_status(
                b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"
            ),
            None
        );
    }

    #[test]
    fn a_refusal_is_found_only_at_the_very_end_of_a_write() {
        let head = hyper_refusal("HTTP/1.1 414 URI Too Long");
        assert_eq!(refusal_at_end(&head), Some(0));
        let mut after_an_answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
        let start = after_an_answer.len();
        after_an_answer.extend_from_slice(&head);
        assert_eq!(refusal_at_end(&after_an_answer), Some(start));
        let mut then_more = head.clone();
        then_more.extend_from_slice(b"x\r\n\r\n");
        assert_eq!(refusal_at_end(&then_more), None);
        assert_eq!(
            refusal_at_end(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
    }

    #[test]
    fn the_budget_is_above_hyper_s_defaults_and_the_engine_s_limits() {
        let b = budget();
        assert_eq!(b.max_headers, 1024);
        assert_eq!(b.max_buf_bytes, LIBRARY_DEFAULT_BUF_BYTES);
        let big = HeadBudget::new(HeadLimits {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 1024 * 1024,
        });
        assert_eq!(big.max_headers, MAX_HEADERS_CEILING);
        assert!(big.max_buf_bytes > LIBRARY_MAX_URI_BYTES + 1024 * 1024);
        let small = HeadBudget::new(HeadLimits {
            max_uri_bytes: 100,
            max_header_bytes: 100,
        });
        assert_eq!(small.max_headers, LIBRARY_DEFAULT_MAX_HEADERS);
    }

    /// What hyper itself writes for `request`, and the error its connection ends with.
    async fn hyper_refuses(request: Vec<u8>) -> (Vec<u8>, hyper::Error) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let svc = hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
        });
        let conn = tokio::spawn(
            budget()
                .builder()
                .serve_connection(TokioIo::new(server), svc),
        );
        let (mut rd, mut wr) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&request).await;
            wr
        });
        let mut written = Vec::new();
        let _ = rd.read_to_end(&mut written).await;
        writer.abort();
        (written, conn.await.unwrap().unwrap_err())
    }

    #[tokio::test]
    async fn what_hyper_writes_for_the_heads_it_refuses_is_recognised() {
        let long = format!("GET /?{} HTTP/1.1\r\n\r\n", "a".repeat(70 * 1024));
        let many: String = (0..5000).map(|i| format!("h{i}:\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "b".repeat(500 * 1024));
        for (request, status) in [
            (long, 414),
            (many, 431),
            (huge, 431),
            ("GET / HTTP/1.1\r\nno colon\r\n\r\n".to_string(), 400),
        ] {
            let (written, e) = hyper_refuses(request.into_bytes()).await;
            assert!(e.is_parse(), "{e}");
            assert_eq!(refusal_at_end(&written), Some(0), "{written:?}");
            assert_eq!(refusal_status(&written), Some(status), "{written:?}");
        }
    }

    #[tokio::test]
    async fn the_json_answer_keeps_the_status_and_date_and_names_the_limit() {
        let (_, e) = hyper_refuses(b"GET / HTTP/1.1\r\nno colon\r\n\r\n".to_vec()).await;
        let head = hyper_refusal("HTTP/1.1 431 Request Header Fields Too Large");
        let out = String::from_utf8(budget().answer(&head, 431, &e)).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("connection: close"), "{head}");
        assert!(head.contains(DATE.trim_end()), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "headers_too_large");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limits.max_header_bytes"),
            "{v}"
        );
        let out = budget().answer(&hyper_refusal("HTTP/1.1 400 Bad Request"), 400, &e);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#""code":"invalid_input""#), "{out}");
    }
}
