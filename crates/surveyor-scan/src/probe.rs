//! One target, end to end: TCP connect, TLS, then the Exchange probe plan over one
//! keep-alive HTTP/1.1 connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use surveyor_model::{Fingerprint, Observation, Scheme, Signal, Status};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsConnector;

use crate::fingerprint;
use crate::targets::Target;
use crate::{ProbeConfig, ProbePlan};

/// What happened to a target that never answered, for the scan's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silent {
    Refused,
    Timeout,
    /// ICMP said the host or network cannot be reached.
    Unreachable,
    /// Accepted the connection, then closed or reset it without sending a byte: a port
    /// that is open to TCP and nothing else (a SYN proxy, a dead service, a firewall).
    Closed,
}

const OWA: &str = "/owa/";
const LOGON: &str = "/owa/auth/logon.aspx";
const AUTODISCOVER: &str = "/autodiscover/autodiscover.xml";
const EXPORTTOOL: &str =
    "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application";

/// Probes one target. `Err` means nothing answered (refused or timed out before a
/// connection); every other outcome is an observation, including TLS and HTTP failures.
pub async fn probe(
    target: Target,
    config: &ProbeConfig,
    tls: &TlsConnector,
) -> Result<Observation, Silent> {
    let deadline = Instant::now() + config.target_timeout;
    let connect_by = deadline.min(Instant::now() + config.connect_timeout);
    let addr = std::net::SocketAddr::new(target.ip, target.port);
    let tcp = match timeout_at(connect_by, TcpStream::connect(addr)).await {
        Err(_) => return Err(Silent::Timeout),
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => return Err(Silent::Timeout),
        Ok(Err(e))
            if matches!(
                e.kind(),
                io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable
            ) =>
        {
            return Err(Silent::Unreachable)
        }
        // Accepted and reset before connect() returned (common on loopback).
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Silent::Closed),
        Ok(Err(_)) => return Err(Silent::Refused),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let heard = Arc::new(AtomicBool::new(false));
    let tcp = Heard {
        inner: tcp,
        heard: heard.clone(),
    };
    let mut obs = Observation {
        ip: target.ip,
        port: target.port,
        scheme: target.scheme,
        observed_at: OffsetDateTime::now_utc(),
        status: Status::Success,
        error: None,
        tls: None,
        http_server: None,
        fingerprint: Fingerprint::default(),
        exchange: None,
        attribution: None,
        asn: None,
        country: None,
    };
    match target.scheme {
        Scheme::Smtp => crate::smtp::smtp_plan(tcp, &target, tls, deadline, &mut obs).await,
        Scheme::Http => http_plan(tcp, target.clone(), config, tls, deadline, &mut obs).await,
        Scheme::Https => {
            match timeout_at(deadline, tls.connect(crate::tls::server_name(&target), tcp)).await {
                Err(_) => fail(
                    &mut obs,
                    Status::IoTimeout,
                    "timed out during the TLS handshake",
                ),
                Ok(Err(e)) => fail(&mut obs, Status::TlsError, tls_failure(&e)),
                Ok(Ok(stream)) => {
                    obs.tls = Some(crate::tls::record(stream.get_ref().1));
                    http_plan(stream, target.clone(), config, tls, deadline, &mut obs).await;
                }
            }
        }
    }
    // Nothing was said; a timeout is still reported, as a tarpit is worth knowing.
    let silent = !heard.load(Ordering::Relaxed);
    if silent && !matches!(obs.status, Status::Success | Status::IoTimeout) {
        return Err(Silent::Closed);
    }
    Ok(obs)
}

/// A TCP stream that notes whether the peer ever sent a byte.
pub(crate) struct Heard {
    inner: TcpStream,
    heard: Arc<AtomicBool>,
}

impl Heard {
    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Heard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.heard.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Heard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The TLS client connector every probe shares.
pub fn tls_connector() -> TlsConnector {
    TlsConnector::from(Arc::new(crate::danger::recording_client_config()))
}

fn fail(obs: &mut Observation, status: Status, error: impl Into<String>) {
    obs.status = status;
    obs.error = Some(error.into());
}

/// A stable description of a TLS failure; the dependency's own text is not stored.
fn tls_failure(e: &io::Error) -> &'static str {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(_)) => "the server sent a TLS alert",
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. }) => "the server does not speak TLS",
        Some(rustls::Error::PeerIncompatible(_)) => "no TLS version or cipher in common",
        Some(_) => "the TLS handshake failed",
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake"
        }
        None => "the connection failed during the TLS handshake",
    }
}

/// The non-intrusive plan of exchange-fingerprinting.md §1.14, stopping once the exact build is
/// known: /owa/ (header), the logon page (resource path, markers), autodiscover (header), the
/// ECP export-tool manifest (exact build), NTLM on EWS.
///
/// Every host gets the first two requests. Only a host that gave a reason (see [`Reasons`])
/// is asked autodiscover and the manifest, and only one that showed Exchange is asked for
/// NTLM: the plan stays at two requests for the web servers of a country that are not
/// Exchange, and reaches Exchange behind pre-authentication portals and blocked OWA.
async fn http_plan<S>(
    stream: S,
    target: Target,
    config: &ProbeConfig,
    tls: &TlsConnector,
    deadline: Instant,
    obs: &mut Observation,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn_task) = match open_http(stream, config, deadline).await {
        Ok(pair) => pair,
        Err(failure) => return fail(obs, failure.status, failure.error),
    };
    let mut client = Client {
        sender,
        conn_task,
        target,
        config,
        tls: tls.clone(),
        deadline,
        may_redial: false,
        redials_left: MAX_REDIALS,
    };

    let first_path = match config.plan {
        ProbePlan::Exchange => OWA,
        ProbePlan::Banner => "/",
    };
    let owa = match client.get(first_path).await {
        Ok(r) => r,
        Err(failure) => return fail(obs, failure.status, failure.error),
    };
    obs.http_server = header_str(&owa.response, header::SERVER);
    read_stack(&owa.response, first_path, &mut obs.fingerprint);
    read_headers(&owa.response, first_path, &mut obs.fingerprint);
    if config.plan == ProbePlan::Banner {
        return;
    }
    if owa.response.status().is_redirection() {
        if let Some(location) = header_str(&owa.response, header::LOCATION) {
            // Where it leads, without the query: portals put nonces and state there, which
            // would make two scans of one server differ for nothing.
            let place = location.split(['?', '#']).next().unwrap_or_default();
            obs.fingerprint
                .push(Signal::OwaRedirect, format!("GET {OWA}"), place);
        }
    }
    let mut reasons = Reasons {
        owa_answer: owa_gives_reason(&owa.response),
        certificate: obs.tls.as_ref().is_some_and(names_a_mail_host),
        logon_page: false,
    };
    // A server that closes after each answer is reconnected to only for a host with a reason:
    // the rest cost what they cost before.
    client.may_redial = reasons.any() || shows_exchange(&obs.fingerprint);

    if let Ok((path, logon)) = client.get_following(LOGON).await {
        read_headers(&logon.response, &path, &mut obs.fingerprint);
        if logon.response.status() == StatusCode::OK {
            let body = String::from_utf8_lossy(&logon.body);
            let source = format!("GET {path}");
            let markers = fingerprint::logon_markers(&body);
            for m in &markers {
                obs.fingerprint
                    .push(Signal::LogonPageMarker, source.clone(), *m);
            }
            let build = fingerprint::owa_resource_build(&body);
            if let Some(build) = &build {
                obs.fingerprint
                    .push(Signal::OwaResourcePath, source.clone(), build.clone());
            }
            // What a copy of the page cannot hide: where its form posts, and what serves it.
            if !markers.is_empty() || build.is_some() {
                reasons.logon_page = true;
                client.may_redial = true;
                if let Some(action) = fingerprint::logon_form_action(&body) {
                    // An absolute action on this very host is recorded as its path; one on
                    // another host stays as it is, the copy's collector.
                    let action = match action.contains("://") {
                        true => client.same_host_path(&path, &action).unwrap_or(action),
                        false => action,
                    };
                    obs.fingerprint
                        .push(Signal::LogonFormAction, source, action);
                }
                read_stack(&logon.response, &path, &mut obs.fingerprint);
            }
        }
    }
    for wanted in [AUTODISCOVER, EXPORTTOOL] {
        let asked = shows_exchange(&obs.fingerprint) || reasons.any();
        if !asked || has_exact_build(&obs.fingerprint) {
            break;
        }
        // Autodiscover answers 401; only the manifest is worth following to.
        let fetched = if wanted == EXPORTTOOL {
            client.get_following(wanted).await
        } else {
            client.get(wanted).await.map(|r| (wanted.to_owned(), r))
        };
        let Ok((path, reply)) = fetched else {
            break;
        };
        read_headers(&reply.response, &path, &mut obs.fingerprint);
        if wanted == EXPORTTOOL && reply.response.status() == StatusCode::OK {
            let body = String::from_utf8_lossy(&reply.body);
            if let Some(build) = fingerprint::exporttool_manifest_build(&body) {
                obs.fingerprint
                    .push(Signal::ExportToolManifest, format!("GET {path}"), build);
            }
        }
    }
    // NTLM: the AD domain, server name and Windows build, from a handshake we never finish.
    if shows_exchange(&obs.fingerprint) && config.ntlm {
        for path in NTLM_PATHS {
            let Ok(reply) = client
                .get_with(path, Some(("NTLM", crate::ntlm::NEGOTIATE)))
                .await
            else {
                break;
            };
            let values = reply.response.headers().get_all(header::WWW_AUTHENTICATE);
            let challenge =
                crate::ntlm::from_www_authenticate(values.iter().filter_map(|v| v.to_str().ok()));
            if let Some(info) = challenge {
                push_ntlm(&mut obs.fingerprint, path, &info);
                break;
            }
        }
    }
}

/// Why a host that showed no Exchange header is still asked autodiscover and the manifest.
/// A plain web server gives none of these, so it is asked nothing more.
#[derive(Debug, Clone, Copy)]
struct Reasons {
    /// `/owa/` answered 401 or 403, or redirected to another page (a pre-authentication
    /// portal, an identity provider, Exchange's own logon page).
    owa_answer: bool,
    /// The TLS certificate names a mail host (`mail.`, `autodiscover.`, …): what an Exchange
    /// behind a proxy still presents.
    certificate: bool,
    /// The logon page showed OWA markers or a versioned resource path.
    logon_page: bool,
}

impl Reasons {
    fn any(self) -> bool {
        self.owa_answer || self.certificate || self.logon_page
    }
}

/// The answer to `/owa/` is a reason to look further: 401 or 403 (a portal or a block in front
/// of something), or a redirect to another page. Redirects to `/` or to `/owa/` itself (on
/// another scheme or host) are what any web server does and are not.
fn owa_gives_reason(response: &Response<()>) -> bool {
    let status = response.status();
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return true;
    }
    if !status.is_redirection() {
        return false;
    }
    let Some(location) = header_str(response, header::LOCATION) else {
        return false;
    };
    let path = location_path(&location).to_ascii_lowercase();
    !matches!(path.as_str(), "" | "/" | "/owa" | "/owa/")
}

/// The path of a `Location` value, without scheme, host or query.
fn location_path(location: &str) -> &str {
    let rest = match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => location,
    };
    rest.split(['?', '#']).next().unwrap_or("")
}

/// First labels of certificate names that mail servers, and Exchange above all, are published
/// under (Exchange needs `autodiscover.` for its clients).
const MAIL_LABELS: [&str; 6] = [
    "autodiscover",
    "mail",
    "owa",
    "webmail",
    "exchange",
    "outlook",
];

fn names_a_mail_host(tls: &surveyor_model::TlsInfo) -> bool {
    tls.names.iter().any(|name| {
        let label = name.split('.').next().unwrap_or("");
        MAIL_LABELS.iter().any(|m| label.eq_ignore_ascii_case(m))
    })
}

/// Whether the host has shown anything of Exchange: its headers, the manifest, or the logon
/// page's markers.
fn shows_exchange(fp: &Fingerprint) -> bool {
    [
        Signal::OwaVersionHeader,
        Signal::FeServerHeader,
        Signal::ExportToolManifest,
        Signal::LogonPageMarker,
    ]
    .into_iter()
    .any(|s| fp.of(s).next().is_some())
}

/// Reconnections allowed to one target whose server closes after an answer (BIG-IP APM answers
/// HTTP/1.0 with `Connection: Close`): enough for the plan of a host behind such a portal.
const MAX_REDIALS: u8 = 3;

/// Where Exchange answers NTLM, most reliable first (exchange-fingerprinting.md §1.7).
const NTLM_PATHS: [&str; 3] = ["/EWS/Exchange.asmx", "/rpc/rpcproxy.dll", "/mapi/"];

fn push_ntlm(fp: &mut Fingerprint, path: &str, info: &crate::ntlm::ChallengeInfo) {
    let source = format!("GET {path} (NTLM negotiate)");
    let fields = [
        (Signal::NtlmNetbiosComputer, &info.netbios_computer),
        (Signal::NtlmNetbiosDomain, &info.netbios_domain),
        (Signal::NtlmDnsComputer, &info.dns_computer),
        (Signal::NtlmDnsDomain, &info.dns_domain),
        (Signal::NtlmDnsTree, &info.dns_tree),
    ];
    for (signal, value) in fields {
        if let Some(v) = value {
            fp.push(signal, source.clone(), v.clone());
        }
    }
    if let Some((major, minor, build)) = info.version {
        fp.push(
            Signal::NtlmWindowsVersion,
            source,
            format!("{major}.{minor}.{build}"),
        );
    }
}

fn has_exact_build(fp: &Fingerprint) -> bool {
    fp.of(Signal::OwaVersionHeader)
        .chain(fp.of(Signal::ExportToolManifest))
        .any(|e| e.value.split('.').count() == 4)
}

/// What serves a page: its `Server` and every `X-Powered-By` value, each value once. The
/// classifier weighs them against a copied logon page (PHP, Express, a honeypot's Python).
fn read_stack(response: &Response<()>, path: &str, fp: &mut Fingerprint) {
    let source = format!("GET {path}");
    let server = header_str(response, header::SERVER);
    let powered = response
        .headers()
        .get_all("x-powered-by")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().chars().take(256).collect::<String>())
        .filter(|v| !v.is_empty());
    let values = server
        .map(|v| (Signal::ServerHeader, v))
        .into_iter()
        .chain(powered.map(|v| (Signal::PoweredByHeader, v)));
    for (signal, value) in values {
        if !fp.of(signal).any(|e| e.value == value) {
            fp.push(signal, source.clone(), value);
        }
    }
}

/// Header signals: X-OWA-Version, X-FEServer, and the Exchange Online backend marker.
fn read_headers(response: &Response<()>, path: &str, fp: &mut Fingerprint) {
    let source = format!("GET {path}");
    if let Some(v) = header_str(response, "x-owa-version") {
        if !fp.of(Signal::OwaVersionHeader).any(|e| e.value == v) {
            fp.push(Signal::OwaVersionHeader, source.clone(), v);
        }
    }
    if let Some(v) = header_str(response, "x-feserver") {
        if !fp.of(Signal::FeServerHeader).any(|e| e.value == v) {
            fp.push(Signal::FeServerHeader, source.clone(), v);
        }
    }
    if let Some(v) = header_str(response, "x-calculatedbetarget") {
        if v.to_ascii_lowercase().ends_with(".outlook.com") {
            fp.push(Signal::ExchangeOnline, source, v);
        }
    }
}

fn header_str(response: &Response<()>, name: impl header::AsHeaderName) -> Option<String> {
    let v = response.headers().get(name)?.to_str().ok()?.trim();
    (!v.is_empty()).then(|| v.chars().take(256).collect())
}

struct Reply {
    response: Response<()>,
    body: Bytes,
}

struct Failure {
    status: Status,
    error: &'static str,
}

/// The kept-alive HTTP/1.1 connection of one probe, reopened when the server closes it if the
/// host gave a reason to go on (`may_redial`), at most [`MAX_REDIALS`] times.
struct Client<'a> {
    sender: SendRequest<Empty<Bytes>>,
    /// Drives the connection; ends when the sender is dropped or the deadline passes.
    conn_task: tokio::task::JoinHandle<()>,
    target: Target,
    config: &'a ProbeConfig,
    tls: TlsConnector,
    deadline: Instant,
    may_redial: bool,
    redials_left: u8,
}

impl Drop for Client<'_> {
    fn drop(&mut self) {
        self.conn_task.abort();
    }
}

/// The HTTP/1.1 handshake on a connected stream, and the task that drives the connection.
async fn open_http<S>(
    stream: S,
    config: &ProbeConfig,
    deadline: Instant,
) -> Result<(SendRequest<Empty<Bytes>>, tokio::task::JoinHandle<()>), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = hyper::client::conn::http1::Builder::new()
        .max_buf_size(config.max_header_bytes.max(8192))
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream));
    let (sender, conn) = match timeout_at(deadline, handshake).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(_)) => {
            return Err(Failure {
                status: Status::ProtocolError,
                error: "HTTP connection setup failed",
            })
        }
        Err(_) => {
            return Err(Failure {
                status: Status::IoTimeout,
                error: "timed out setting up HTTP",
            })
        }
    };
    let conn_task = tokio::spawn(async move {
        // A second of grace, so that a request timing out at the deadline reports the timeout
        // rather than the connection being torn down under it.
        let _ = timeout_at(deadline + std::time::Duration::from_secs(1), conn).await;
    });
    Ok((sender, conn_task))
}

/// A byte stream of any kind, for connections reopened after the first.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Same-host redirects followed from one request.
const MAX_REDIRECTS: usize = 3;

impl Client<'_> {
    /// One GET on the kept-alive connection, body read up to the configured bound.
    async fn get(&mut self, path: &str) -> Result<Reply, Failure> {
        self.get_with(path, None).await
    }

    /// A GET that follows redirects on the same connection while they stay on the same
    /// scheme, host and port (so SNI and Host stay right), at most [`MAX_REDIRECTS`] times.
    /// Returns the path finally fetched with its reply; a redirect that leads elsewhere, or
    /// one that cannot be followed, is itself the reply.
    async fn get_following(&mut self, path: &str) -> Result<(String, Reply), Failure> {
        let mut current = path.to_owned();
        let mut reply = self.get(&current).await?;
        for _ in 0..MAX_REDIRECTS {
            if !reply.response.status().is_redirection() {
                break;
            }
            let Some(next) = self.same_host_location(&current, &reply.response) else {
                break;
            };
            match self.get(&next).await {
                Ok(followed) => {
                    current = next;
                    reply = followed;
                }
                Err(_) => break,
            }
        }
        Ok((current, reply))
    }

    /// The path a redirect points to, if it stays on this scheme, host and port.
    fn same_host_location(&self, base: &str, response: &Response<()>) -> Option<String> {
        let location = response
            .headers()
            .get(header::LOCATION)?
            .to_str()
            .ok()?
            .trim();
        self.same_host_path(base, location)
    }

    /// The path a reference (a `Location`, a form's `action`) found at `base` leads to, if it
    /// stays on this scheme, host and port.
    fn same_host_path(&self, base: &str, reference: &str) -> Option<String> {
        let location = reference.trim();
        let path = if location.starts_with('/') && !location.starts_with("//") {
            location.to_owned()
        } else if let Some((scheme, rest)) = location.split_once("://") {
            let ours = match self.target.scheme {
                Scheme::Https => "https",
                Scheme::Http => "http",
                Scheme::Smtp => return None,
            };
            if !scheme.eq_ignore_ascii_case(ours) {
                return None;
            }
            let uri: http::Uri = format!("{ours}://{rest}").parse().ok()?;
            let default_port = if ours == "https" { 443 } else { 80 };
            let same_port = uri.port_u16().unwrap_or(default_port) == self.target.port;
            let host = uri.host()?;
            if !same_port || !host.eq_ignore_ascii_case(&self.host_name()) {
                return None;
            }
            uri.path_and_query()?.as_str().to_owned()
        } else if location.is_empty() || location.starts_with("//") || location.contains(':') {
            return None;
        } else {
            // Relative to the directory of the path just fetched.
            let dir_end = base.split('?').next().unwrap_or(base).rfind('/')? + 1;
            format!("{}{location}", &base[..dir_end])
        };
        // Only a well-formed request target is sent.
        http::uri::PathAndQuery::try_from(path.as_str()).ok()?;
        Some(path)
    }

    /// The name sent as Host (and SNI): the target's domain, or its address literal.
    fn host_name(&self) -> String {
        match &self.target.domain {
            Some(domain) => domain.to_string(),
            None => host_literal(self.target.ip),
        }
    }

    /// Opens a new connection in place of one the server closed: TCP, TLS for https, and the
    /// HTTP handshake, all under the target's deadline. The certificate was recorded on the
    /// first connection.
    async fn redial(&mut self) -> Result<(), Failure> {
        let closed = Failure {
            status: Status::ProtocolError,
            error: "the server closed the HTTP connection",
        };
        if !self.may_redial || self.redials_left == 0 {
            return Err(closed);
        }
        self.redials_left -= 1;
        let connect_by = self
            .deadline
            .min(Instant::now() + self.config.connect_timeout);
        let addr = std::net::SocketAddr::new(self.target.ip, self.target.port);
        let Ok(Ok(tcp)) = timeout_at(connect_by, TcpStream::connect(addr)).await else {
            return Err(closed);
        };
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match self.target.scheme {
            Scheme::Https => {
                let name = crate::tls::server_name(&self.target);
                match timeout_at(self.deadline, self.tls.connect(name, tcp)).await {
                    Ok(Ok(tls)) => Box::new(tls),
                    _ => return Err(closed),
                }
            }
            Scheme::Http => Box::new(tcp),
            Scheme::Smtp => return Err(closed),
        };
        let (sender, conn_task) = open_http(stream, self.config, self.deadline).await?;
        self.conn_task.abort();
        self.sender = sender;
        self.conn_task = conn_task;
        Ok(())
    }

    /// A GET with an `Authorization` header (`scheme token`).
    async fn get_with(
        &mut self,
        path: &str,
        authorization: Option<(&str, &str)>,
    ) -> Result<Reply, Failure> {
        let timed_out = Failure {
            status: Status::IoTimeout,
            error: "timed out waiting for an HTTP response",
        };
        if timeout_at(self.deadline, self.sender.ready())
            .await
            .map_err(|_| Failure { ..timed_out })?
            .is_err()
        {
            self.redial().await?;
            let ready = timeout_at(self.deadline, self.sender.ready()).await;
            if !matches!(ready, Ok(Ok(()))) {
                return Err(Failure {
                    status: Status::ProtocolError,
                    error: "the server closed the HTTP connection",
                });
            }
        }
        let name = self.host_name();
        let host = match (self.target.scheme, self.target.port) {
            (Scheme::Https, 443) | (Scheme::Http, 80) => name,
            (_, port) => format!("{name}:{port}"),
        };
        let mut request = Request::get(path)
            .header(header::HOST, host)
            .header(header::USER_AGENT, &self.config.user_agent)
            .header(header::ACCEPT, "*/*");
        if let Some((scheme, token)) = authorization {
            request = request.header(header::AUTHORIZATION, format!("{scheme} {token}"));
        }
        // Paths are ours or a checked redirect target; refuse rather than panic regardless.
        let Ok(request) = request.body(Empty::new()) else {
            return Err(Failure {
                status: Status::ProtocolError,
                error: "the server redirected to a path that cannot be requested",
            });
        };
        let response: Response<Incoming> =
            match timeout_at(self.deadline, self.sender.send_request(request)).await {
                Err(_) => return Err(timed_out),
                Ok(Err(e)) => return Err(http_failure(&e)),
                Ok(Ok(r)) => r,
            };
        let (parts, mut body) = response.into_parts();
        let mut buf = Vec::new();
        // A short per-body wait as well: a slow drip must not hold the whole deadline.
        let body_by = self
            .deadline
            .min(Instant::now() + self.config.connect_timeout * 2);
        while buf.len() < self.config.max_body_bytes {
            match timeout_at(body_by, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let room = self.config.max_body_bytes - buf.len();
                        buf.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Ok(None) => break,
                // A broken or slow body still leaves the headers, which carry most signals.
                Ok(Some(Err(_))) | Err(_) => break,
            }
        }
        let encoding = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let body = decode(buf, encoding, self.config.max_body_bytes);
        Ok(Reply {
            response: Response::from_parts(parts, ()),
            body: Bytes::from(body),
        })
    }
}

/// Undoes a gzip or deflate content coding, keeping at most `limit` bytes of output, so a
/// compression bomb costs no more than an honest body. (We send no Accept-Encoding, which
/// per RFC 9110 leaves the server free to choose a coding.) A body that fails to decode
/// part-way keeps what decoded; any other coding is left as it came.
fn decode(body: Vec<u8>, encoding: Option<&str>, limit: usize) -> Vec<u8> {
    use std::io::Read;
    let coding = encoding.map(|e| e.trim().to_ascii_lowercase());
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    match coding.as_deref() {
        Some("gzip" | "x-gzip") => {
            let _ = flate2::read::MultiGzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out);
        }
        Some("deflate") => {
            // Servers send zlib-wrapped deflate as the RFC says, or raw deflate.
            if flate2::read::ZlibDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out)
                .is_err()
                && out.is_empty()
            {
                let _ = flate2::read::DeflateDecoder::new(&body[..])
                    .take(limit)
                    .read_to_end(&mut out);
            }
        }
        _ => return body,
    }
    out
}

/// A stable description of an HTTP failure; hyper's own text is not stored.
fn http_failure(e: &hyper::Error) -> Failure {
    // A head over the size limit is a parse error too.
    let error = if e.is_parse() || e.is_parse_status() {
        "the server sent a malformed or oversized HTTP response head"
    } else if e.is_incomplete_message() {
        "the server closed the connection before a complete response"
    } else {
        "the HTTP exchange failed"
    };
    Failure {
        status: Status::ProtocolError,
        error,
    }
}

fn host_literal(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::{Response, StatusCode};

    use super::{decode, location_path, names_a_mail_host, owa_gives_reason};

    fn answer(status: u16, location: Option<&str>) -> Response<()> {
        let mut r = Response::builder().status(StatusCode::from_u16(status).unwrap());
        if let Some(l) = location {
            r = r.header("location", l);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn which_answers_to_owa_are_a_reason_to_look_further() {
        // Portals, identity providers, blocks, and Exchange's own redirect.
        for (status, location) in [
            (302, Some("/my.policy")),
            (302, Some("/logon/LogonPoint/tmindex.html")),
            (
                302,
                Some("https://sso.a.example/realms/a/protocol/openid-connect/auth?x=1"),
            ),
            (
                302,
                Some("https://mail.a.example/owa/auth/logon.aspx?url=x&reason=0"),
            ),
            (401, None),
            (403, None),
        ] {
            assert!(
                owa_gives_reason(&answer(status, location)),
                "{status} {location:?}"
            );
        }
        // What any web server does: not found, a page, the same path on https, the home page.
        for (status, location) in [
            (404, None),
            (200, None),
            (500, None),
            (301, Some("https://www.a.example/owa/")),
            (301, Some("https://www.a.example/owa")),
            (302, Some("/")),
            (302, Some("https://www.a.example")),
            (302, None),
        ] {
            assert!(
                !owa_gives_reason(&answer(status, location)),
                "{status} {location:?}"
            );
        }
        assert_eq!(location_path("https://h.example:8443/a/b?c#d"), "/a/b");
        assert_eq!(location_path("/x?y"), "/x");
        assert_eq!(location_path("https://h.example"), "");
    }

    #[test]
    fn mail_certificates_are_a_reason() {
        let tls = |names: &[&str]| surveyor_model::TlsInfo {
            names: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        assert!(names_a_mail_host(&tls(&[
            "mail.a.example",
            "autodiscover.a.example"
        ])));
        assert!(names_a_mail_host(&tls(&[
            "www.a.example",
            "AutoDiscover.b.example"
        ])));
        assert!(names_a_mail_host(&tls(&["owa.a.example"])));
        assert!(!names_a_mail_host(&tls(&["www.a.example", "a.example"])));
        assert!(!names_a_mail_host(&tls(&[
            "mailer.a.example",
            "*.a.example"
        ])));
        assert!(!names_a_mail_host(&tls(&[])));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_and_deflate_bodies_are_decoded() {
        let page = b"<title>Outlook</title>".repeat(50);
        assert_eq!(decode(gzip(&page), Some("gzip"), 1 << 20), page);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&page).unwrap();
        assert_eq!(decode(z.finish().unwrap(), Some(" Deflate"), 1 << 20), page);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&page).unwrap();
        assert_eq!(
            decode(raw.finish().unwrap(), Some("deflate"), 1 << 20),
            page
        );
        assert_eq!(decode(page.clone(), None, 1 << 20), page);
        assert_eq!(decode(page.clone(), Some("br"), 1 << 20), page);
    }

    #[test]
    fn a_compression_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 256 << 10, "{} bytes", bomb.len());
        assert_eq!(decode(bomb, Some("gzip"), 256 << 10).len(), 256 << 10);
        // Garbage that claims gzip keeps nothing rather than failing the probe.
        assert!(decode(b"not gzip".to_vec(), Some("gzip"), 1024).is_empty());
    }
}
