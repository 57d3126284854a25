//! Binds the fleet's listeners and serves connections: TLS then HTTP/1.1 keep-alive, plain
//! HTTP redirects, and SMTP.
//!
//! Runtime shape: one accept task per listener, one task per connection, all spawned on one
//! `TaskTracker` and stopped by one `CancellationToken`. A listener serves either one host
//! (per-host mode) or every host of the fleet on one port (shared mode, routed by the
//! connection's local address). A shared semaphore bounds open connections; when it runs
//! out, accept loops wait with the connection they hold, so the kernel backlog absorbs
//! bursts.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::http::{self, Response};
use crate::plan::{HostPlan, Hostile, Persona, Stall};
use crate::tls::{CertCache, Role};
use crate::{hostile, link, persona, smtp, TestbedError};

/// How long a connection may sit idle (TLS handshake, or waiting for a request head).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections across the whole fleet.
pub(crate) const MAX_CONNECTIONS: usize = 4096;
/// Fresh ports tried when port 0 was asked for and some address already has the port taken.
const BIND_ATTEMPTS: u32 = 8;
/// Upper bounds for draining a connection we close on an error.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// TLS, then the host's persona over HTTP/1.1.
    Https,
    /// Plain HTTP answering every request with a 301 to https.
    HttpRedirect,
    /// SMTP with STARTTLS.
    Smtp,
}

/// One live host: its plan and the fleet's certificate cache.
pub(crate) struct HostState {
    pub(crate) plan: HostPlan,
    pub(crate) certs: Arc<CertCache>,
    /// Counts connections, so each gets its own reproducible random stream.
    connections: AtomicU64,
}

impl HostState {
    pub(crate) fn new(plan: HostPlan, certs: Arc<CertCache>) -> HostState {
        HostState {
            plan,
            certs,
            connections: AtomicU64::new(0),
        }
    }
}

/// Binds every host on one common port. With `port == 0` the first host picks a free port
/// and the rest follow; if that port is taken on some other address, everything is released
/// and a new port is tried.
pub(crate) async fn bind_all(
    ips: &[IpAddr],
    port: u16,
) -> Result<(u16, Vec<TcpListener>), TestbedError> {
    if ips.is_empty() {
        return Ok((port, Vec::new()));
    }
    if port != 0 {
        let mut listeners = Vec::with_capacity(ips.len());
        for ip in ips {
            listeners.push(bind(SocketAddr::new(*ip, port)).await?);
        }
        return Ok((port, listeners));
    }

    'attempt: for attempt in 1..=BIND_ATTEMPTS {
        let first = bind(SocketAddr::new(ips[0], 0)).await?;
        let port = first
            .local_addr()
            .map_err(|source| TestbedError::Bind {
                addr: SocketAddr::new(ips[0], 0),
                source,
            })?
            .port();
        let mut listeners = Vec::with_capacity(ips.len());
        listeners.push(first);
        for ip in &ips[1..] {
            match bind(SocketAddr::new(*ip, port)).await {
                Ok(listener) => listeners.push(listener),
                Err(TestbedError::Bind { source, .. })
                    if source.kind() == io::ErrorKind::AddrInUse =>
                {
                    debug!(
                        port,
                        attempt, "port taken on another address, trying a new one"
                    );
                    continue 'attempt;
                }
                Err(error) => return Err(error),
            }
        }
        return Ok((port, listeners));
    }
    Err(TestbedError::NoCommonPort {
        attempts: BIND_ATTEMPTS,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, TestbedError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| TestbedError::Bind { addr, source })
}

/// Kernel backlog of a shared listener, which takes every host's connections on its port.
const SHARED_BACKLOG: u32 = 4096;

/// Binds one listener on `port` for every address of the loopback device. `SO_BINDTODEVICE`
/// keeps it off every other interface, so nothing outside this machine can reach it, and
/// [`Route::Shared`] resets connections to addresses outside the fleet.
pub(crate) fn bind_shared(port: u16) -> Result<TcpListener, TestbedError> {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let fail = |source| TestbedError::Bind { addr, source };
    let socket = TcpSocket::new_v4().map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    bind_loopback_device(&socket).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(SHARED_BACKLOG).map_err(fail)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_loopback_device(socket: &TcpSocket) -> io::Result<()> {
    socket.bind_device(Some(b"lo"))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_loopback_device(_socket: &TcpSocket) -> io::Result<()> {
    // Without a way to pin the wildcard to the loopback device it would face the network.
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "shared listeners need SO_BINDTODEVICE (Linux)",
    ))
}

/// Which host a listener's connections belong to.
#[derive(Clone)]
pub(crate) enum Route {
    /// A listener bound to the host's own address.
    Host(Arc<HostState>),
    /// A listener shared by the fleet: the host is the connection's local address.
    Shared(Arc<HashMap<Ipv4Addr, Arc<HostState>>>),
}

impl Route {
    fn host(&self, stream: &TcpStream) -> Option<Arc<HostState>> {
        match self {
            Route::Host(host) => Some(host.clone()),
            Route::Shared(hosts) => match stream.local_addr().ok()?.ip() {
                IpAddr::V4(ip) => hosts.get(&ip).cloned(),
                IpAddr::V6(_) => None,
            },
        }
    }
}

/// Accepts connections until cancelled.
///
/// The connection is accepted before a permit is taken: taking the permit first would let
/// idle listeners hold permits while busy ones starve, which with thousands of per-host
/// listeners left a fifth of the fleet unanswered.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    route: Route,
    service: Service,
    limit: Arc<Semaphore>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    debug!(%error, "accept failed");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let Some(host) = route.host(&stream) else {
            // An empty address: the closest a completed handshake gets to a refusal.
            let _ = stream.set_zero_linger();
            continue;
        };
        let permit = tokio::select! {
            () = cancel.cancelled() => return,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return,
            },
        };
        tracker.spawn(serve_connection(
            stream,
            host,
            service,
            permit,
            cancel.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    host: Arc<HostState>,
    service: Service,
    _permit: OwnedSemaphorePermit,
    cancel: CancellationToken,
) {
    // Small responses on keep-alive connections must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let n = host.connections.fetch_add(1, Ordering::Relaxed);
    let mut rng = ChaCha8Rng::seed_from_u64(host.plan.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(host.plan.truth.ip);
    // Stalls are a property of the host's HTTPS service; distance applies to all of them.
    let stall = host.plan.stall.filter(|_| service == Service::Https);
    if host.plan.rtt.is_none() && stall.is_none() {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = serve(stream, &host, service, peer, &mut rng) => {}
        }
        return;
    }
    // The host serves the socket through the delay line. Its jitter has a stream of its
    // own, so answers stay what they were.
    let link = link::Link {
        rtt: host.plan.rtt.unwrap_or_default(),
        jitter: link::JITTER,
        stall,
        rng: ChaCha8Rng::seed_from_u64(
            host.plan.seed ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ 0x6c69_6e6b,
        ),
    };
    let (read, write) = stream.into_split();
    tokio::select! {
        () = cancel.cancelled() => {}
        () = link::carry(read, write, link, async |io: &mut link::HostIo<_>| {
            serve(io, &host, service, peer, &mut rng).await;
        }) => {}
    }
}

/// Serves one connection of `service` on `io`, as the host's persona does.
async fn serve<S>(mut io: S, host: &HostState, service: Service, peer: IpAddr, rng: &mut ChaCha8Rng)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let hostile = match host.plan.persona {
        Persona::Hostile(h) => Some(h),
        _ => None,
    };
    match service {
        Service::Https => {}
        Service::HttpRedirect => return exchange_loop(&mut io, host, rng, service).await,
        Service::Smtp => return smtp::serve(io, host, peer).await,
    }

    if hostile == Some(Hostile::Tarpit) {
        return hostile::tarpit(&mut io).await;
    }

    let acceptor = match host.certs.acceptor(&host.plan, Role::https(&host.plan)) {
        Ok(acceptor) => acceptor,
        Err(error) => {
            debug!(ip = %host.plan.truth.ip, %error, "no certificate");
            return;
        }
    };
    let mut tls = match timeout(IDLE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            debug!(ip = %host.plan.truth.ip, %error, "TLS handshake failed");
            return;
        }
        Err(_elapsed) => return,
    };
    if hostile == Some(Hostile::GarbageAfterTls) {
        hostile::garbage(&mut tls, rng).await;
    } else {
        exchange_loop(&mut tls, host, rng, service).await;
    }
}

/// Serves requests on one connection until the client or the persona closes it.
async fn exchange_loop<S>(io: &mut S, host: &HostState, rng: &mut ChaCha8Rng, service: Service)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    loop {
        let deadline = Instant::now() + IDLE_TIMEOUT;
        let head_len = match read_head(io, &mut buf, deadline).await {
            HeadRead::Complete(len) => len,
            HeadRead::Closed => return,
            HeadRead::TooLong => {
                if send(io, &persona::bad_request(&host.plan), false, true).await {
                    linger(io).await;
                }
                return;
            }
        };
        let parsed = http::parse_head(&buf[..head_len]);
        buf.drain(..head_len);
        let Ok(request) = parsed else {
            if send(io, &persona::bad_request(&host.plan), false, true).await {
                linger(io).await;
            }
            return;
        };

        // A body we can frame is read and dropped; anything else (chunked, huge, bogus
        // length) is answered once and then the connection is closed.
        let framed = match request.body_len() {
            Ok(len) if len <= http::MAX_BODY => {
                if !read_body(io, &mut buf, len, deadline).await {
                    return;
                }
                true
            }
            _ => false,
        };

        if service == Service::Https {
            if let Persona::Hostile(h) = host.plan.persona {
                if hostile::answer(h, io, &request, rng).await {
                    return;
                }
            }
        }
        let response = match service {
            Service::HttpRedirect => persona::http_redirect(&host.plan, &request),
            _ => persona::respond(&host.plan, &request, rng),
        };
        let keep_alive = framed && request.keep_alive() && !response.close;
        let head_only = request.method == "HEAD";
        if service == Service::Https && host.plan.stall == Some(Stall::HalfResponse) {
            // Half of the answer's head, then silence: the delay line keeps the connection
            // open and says nothing more until the client gives up. Never the whole head,
            // which a client could take for an answer.
            let bytes = response.to_bytes(head_only, &http::http_date_now(), false);
            let head = http::head_end(&bytes).unwrap_or(bytes.len());
            let _ = timeout(IDLE_TIMEOUT, async {
                io.write_all(&bytes[..head / 2]).await?;
                io.flush().await
            })
            .await;
            return;
        }
        let sent = send(io, &response, head_only, !keep_alive).await;
        if sent && !framed {
            linger(io).await;
        }
        if !sent || !keep_alive {
            return;
        }
    }
}

/// Reads and drops what the client is still sending after we decided to close. Closing a
/// socket with unread input makes the kernel send a reset, which can destroy the response
/// before the client reads it (the reason Apache has "lingering close").
pub(crate) async fn linger<S>(io: &mut S)
where
    S: AsyncRead + Unpin,
{
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

enum HeadRead {
    /// `buf[..len]` is a complete head.
    Complete(usize),
    /// EOF, I/O error or timeout: nothing to answer.
    Closed,
    TooLong,
}

async fn read_head<S>(io: &mut S, buf: &mut Vec<u8>, deadline: Instant) -> HeadRead
where
    S: AsyncRead + Unpin,
{
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = http::head_end(buf) {
            return if end > http::MAX_HEAD {
                HeadRead::TooLong
            } else {
                HeadRead::Complete(end)
            };
        }
        if buf.len() > http::MAX_HEAD {
            return HeadRead::TooLong;
        }
        match timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return HeadRead::Closed,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Consumes `len` body bytes from `buf` and the stream; `false` if the client went away.
async fn read_body<S>(io: &mut S, buf: &mut Vec<u8>, len: usize, deadline: Instant) -> bool
where
    S: AsyncRead + Unpin,
{
    let mut chunk = [0u8; 4096];
    while buf.len() < len {
        match timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..len);
    true
}

/// Writes one response; with `close`, also ends the TLS session. `false` on write failure.
async fn send<S>(io: &mut S, response: &Response, head_only: bool, close: bool) -> bool
where
    S: AsyncWrite + Unpin,
{
    let bytes = response.to_bytes(head_only, &http::http_date_now(), close);
    let written = timeout(IDLE_TIMEOUT, async {
        io.write_all(&bytes).await?;
        io.flush().await
    })
    .await;
    let ok = matches!(written, Ok(Ok(())));
    if close && ok {
        // Sends close_notify, as IIS does, so clients see a clean end rather than a reset.
        let _ = timeout(IDLE_TIMEOUT, io.shutdown()).await;
    }
    ok
}
