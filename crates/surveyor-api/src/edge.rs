//! The HTTP edge: what holds the server up against slow, many or greedy clients. A connection
//! must send its request head within the header timeout, at most so many connections are
//! served at once, a request's body and its time to a response are bounded, a client that
//! stops reading (a streamed export) is dropped, and shutdown drains for a bounded time. Every limit is a `surveyor serve` flag (`docs/output.md`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep, Sleep};

use crate::ApiError;

/// The edge's limits. The defaults are safe for a server on the Internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeConfig {
    /// How long a connection may take to send a whole request head, counted from when the
    /// server starts waiting for it (after accept, or after the previous response on a kept-
    /// alive connection). Past it the connection is closed: slow-header clients cannot hold
    /// connections, and neither can idle kept-alive ones.
    pub header_read_timeout: Duration,
    /// How long a request may take to its response head; past it the answer is a `503` with
    /// `Retry-After`. A streamed export's body is not counted: it goes at the client's pace.
    pub request_timeout: Duration,
    /// Connections served at once. While all are taken no connection is accepted: new ones
    /// wait in the kernel's listen backlog until one closes.
    pub max_connections: usize,
    /// The largest request body accepted, in bytes; a larger declared `Content-Length` is a
    /// `413`, and a body that turns out larger is cut off at the limit.
    pub max_body_bytes: usize,
    /// After shutdown begins: how long requests in flight may take to finish. Connections
    /// still open at the deadline are closed.
    pub drain_timeout: Duration,
    /// How long a connection's writes may make no progress: a client that stops reading (a
    /// streamed export it does not consume) is dropped after it, however long the body.
    pub write_timeout: Duration,
}

impl Default for EdgeConfig {
    fn default() -> EdgeConfig {
        EdgeConfig {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_body_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// The per-request limits around `app`: the body limit and the request timeout, both
/// answering with the API's error body.
pub(crate) fn layers(app: Router, edge: &EdgeConfig) -> Router {
    let timeout = edge.request_timeout;
    app.layer(
        tower::ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |_: axum::BoxError| async move {
                // The only error under this layer is the timeout's: the routes are infallible.
                ApiError::RequestTimeout(timeout)
            }))
            .layer(tower::timeout::TimeoutLayer::new(timeout)),
    )
    // Any extractor that reads a body stops at the limit; no route of ours reads one today,
    // so the early refusal below is what a client meets.
    .layer(DefaultBodyLimit::max(edge.max_body_bytes))
    .layer(axum::middleware::from_fn_with_state(
        edge.max_body_bytes,
        limit_body,
    ))
}

/// Serves `app` on `listener` until `shutdown` completes, then drains: requests in flight
/// may finish within the drain timeout, and whatever is still open then is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    edge: &EdgeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(edge.header_read_timeout);
    let slots = Arc::new(Semaphore::new(edge.max_connections));
    let graceful = GracefulShutdown::new();
    // Every connection's task, owned here so that the drain deadline can end them.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot before accept: at the cap the server stops accepting, and the backlog waits.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => unreachable!("the connection semaphore is never closed"),
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(app.clone());
        let io = TokioIo::new(WriteDeadline::new(stream, edge.write_timeout));
        let connection = graceful.watch(http.serve_connection(io, service));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                // Header timeouts and clients that go away end here; they are not our errors.
                tracing::debug!(%error, "an API connection ended with an error");
            }
            drop(slot);
        });
    }
    // Refuse new connections from now on.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(edge.drain_timeout) => {
            tracing::warn!(
                open = connections.len(),
                "the drain deadline passed; closing the connections still open"
            );
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Refuses a declared body over the limit before anything reads it, and bounds one that
/// declares no length.
async fn limit_body(
    State(max): State<usize>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::PayloadTooLarge(max));
    }
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, max)));
    Ok(next.run(request).await.into_response())
}

/// A connection whose writes fail with `TimedOut` once they have made no progress for
/// `limit`: hyper has no write timeout, and a streamed body is written at the client's pace.
struct WriteDeadline<IO> {
    io: IO,
    limit: Duration,
    /// Armed when a write first waits, disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> WriteDeadline<IO> {
    fn new(io: IO, limit: Duration) -> WriteDeadline<IO> {
        WriteDeadline {
            io,
            limit,
            stalled: None,
        }
    }

    /// What a write attempt gives, with waiting bounded by the deadline.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        attempt: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if attempt.is_ready() {
            self.stalled = None;
            return attempt;
        }
        let limit = self.limit;
        let deadline = self.stalled.get_or_insert_with(|| Box::pin(sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let attempt = Pin::new(&mut self.io).poll_write(cx, buf);
        self.bounded(cx, attempt)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let attempt = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.bounded(cx, attempt)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let attempt = Pin::new(&mut self.io).poll_flush(cx);
        self.bounded(cx, attempt)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let attempt = Pin::new(&mut self.io).poll_shutdown(cx);
        self.bounded(cx, attempt)
    }
}

/// A failed accept: a connection that went away before it was accepted is nothing, but
/// running out of file descriptors would spin, so that waits a moment.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting an API connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
        let (server, _client) = duplex(1024);
        let mut server = WriteDeadline::new(server, Duration::from_secs(60));
        let started = Instant::now();
        let error = loop {
            if let Err(error) = server.write_all(&[0u8; 4096]).await {
                break error;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_served_to_the_end() {
        let (server, mut client) = duplex(1024);
        let mut server = WriteDeadline::new(server, Duration::from_secs(60));
        // 64 KiB through a 1 KiB pipe, read a KiB every 30 s: slower than any export, but
        // never 60 s without progress.
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                match client.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got += n,
                }
            }
        });
        server.write_all(&[7u8; 64 * 1024]).await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        assert_eq!(reader.await.unwrap(), 64 * 1024);
    }
}
