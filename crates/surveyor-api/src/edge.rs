//! The HTTP edge: what holds the server up against slow, many or greedy clients. A connection
//! must send its request head within the header timeout, at most so many connections are
//! served at once, a request's body and its time to a response are bounded, and shutdown
//! drains for a bounded time. Every limit is a `surveyor serve` flag (`docs/output.md`).

use std::future::Future;
use std::io;
use std::sync::Arc;
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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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
}

impl Default for EdgeConfig {
    fn default() -> EdgeConfig {
        EdgeConfig {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_body_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(10),
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
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
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
