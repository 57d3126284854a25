//! Delivery from the outbox: webhook (HMAC-SHA256 signed POST with an idempotency key), SMTP
//! through a relay, or files; every attempt logged, failures retried with exponential back-off.
//!
//! A notification stays `pending` in the store until an attempt succeeds or it fails for good,
//! so a crash mid-send loses nothing: the next run sends it again with the same idempotency
//! key, and the receiver drops the repeat.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use serde_json::Value;
use surveyor_store::{AttemptOutcome, Channel, Notification, NotificationStore};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::files::write_files;
use crate::plan::hex;
use crate::NotifyError;

/// The header that carries the HMAC-SHA256 of the body: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-surveyor-signature";
/// The header that carries the notification's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// When to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The pause after the first failed attempt; each further failure doubles it.
    pub base: Duration,
    /// The longest pause.
    pub max: Duration,
    /// After this many failed attempts the notification is `failed`.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(60),
            max: Duration::from_secs(6 * 3600),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1 for the first).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// How webhooks are signed and how long one may take.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The HMAC-SHA256 key the receiver shares.
    pub secret: Vec<u8>,
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the same host or a trusted network.
    None,
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The relay mail goes through.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `Name <address>` or an address.
    pub from: String,
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The channels this sender can use, and the retry policy.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub webhook: Option<WebhookConfig>,
    pub smtp: Option<SmtpConfig>,
    /// Files need no configuration: the destination is the directory.
    pub files: bool,
    pub retry: RetryPolicy,
    /// How many due notifications one pass takes.
    pub batch: u32,
}

impl DeliveryConfig {
    fn can(&self, channel: Channel) -> bool {
        match channel {
            Channel::Webhook => self.webhook.is_some(),
            Channel::Smtp => self.smtp.is_some(),
            Channel::File => self.files,
        }
    }
}

/// Wall-clock time that follows tokio's clock, so that a test with paused time moves both.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: OffsetDateTime,
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock that reads `wall` now and runs with tokio's time from here.
    pub fn starting_at(wall: OffsetDateTime) -> Clock {
        Clock {
            wall,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        self.wall + (tokio::time::Instant::now() - self.start)
    }
}

/// What a run of sending did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SendReport {
    pub attempted: usize,
    pub delivered: usize,
    /// Failed attempts that will be retried.
    pub retrying: usize,
    /// Notifications given up on.
    pub failed: usize,
    /// Due notifications on a channel this sender is not configured for (left pending).
    pub skipped: usize,
}

impl SendReport {
    fn add(&mut self, other: &SendReport) {
        self.attempted += other.attempted;
        self.delivered += other.delivered;
        self.retrying += other.retrying;
        self.failed += other.failed;
        self.skipped = other.skipped;
    }
}

/// One pass: every notification due now (up to `batch`) gets one attempt, logged in the store.
pub async fn send_due(
    store: &dyn NotificationStore,
    config: &DeliveryConfig,
    clock: &Clock,
) -> Result<SendReport, NotifyError> {
    let mut report = SendReport::default();
    for n in store.due(clock.now(), config.batch).await? {
        if !config.can(n.channel) {
            report.skipped += 1;
            continue;
        }
        let attempted_at = clock.now();
        let result = attempt(&n, config).await;
        let attempt_no = n.attempts + 1;
        let outcome = match result {
            Ok(()) => AttemptOutcome::Delivered,
            Err(f) if f.retryable && attempt_no < config.retry.max_attempts => {
                let pause = config.retry.backoff(attempt_no);
                AttemptOutcome::Retry {
                    error: f.message,
                    next_attempt_at: clock.now() + pause,
                }
            }
            Err(f) if f.retryable => AttemptOutcome::Failed {
                error: format!("gave up after {attempt_no} attempts: {}", f.message),
            },
            Err(f) => AttemptOutcome::Failed { error: f.message },
        };
        tracing::info!(
            notification = n.id,
            channel = n.channel.as_str(),
            attempt = attempt_no,
            outcome = outcome.as_str(),
            error = outcome.error().unwrap_or(""),
            "notification attempt"
        );
        if store.record_attempt(n.id, attempted_at, &outcome).await? {
            report.attempted += 1;
            match outcome {
                AttemptOutcome::Delivered => report.delivered += 1,
                AttemptOutcome::Retry { .. } => report.retrying += 1,
                AttemptOutcome::Failed { .. } => report.failed += 1,
            }
        }
    }
    Ok(report)
}

/// Sends until no notification this sender can deliver is pending: each is delivered or given
/// up on, waiting (on tokio's clock) for each retry to fall due.
pub async fn send_until_settled(
    store: &dyn NotificationStore,
    config: &DeliveryConfig,
    clock: &Clock,
) -> Result<SendReport, NotifyError> {
    let mut report = SendReport::default();
    loop {
        let pass = send_due(store, config, clock).await?;
        report.add(&pass);
        // The earliest pending notification this sender can deliver, however far ahead.
        let horizon = clock.now() + time::Duration::days(36_500);
        let next = store
            .due(horizon, u32::MAX)
            .await?
            .into_iter()
            .find(|n| config.can(n.channel));
        let Some(next) = next else {
            return Ok(report);
        };
        let wait = next.next_attempt_at - clock.now();
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
    }
}

/// Why an attempt failed, in our own words, and whether trying again may help.
#[derive(Debug)]
struct Failure {
    retryable: bool,
    message: String,
}

impl Failure {
    fn retry(message: impl Into<String>) -> Failure {
        Failure {
            retryable: true,
            message: message.into(),
        }
    }

    fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            retryable: false,
            message: message.into(),
        }
    }
}

async fn attempt(n: &Notification, config: &DeliveryConfig) -> Result<(), Failure> {
    match n.channel {
        Channel::Webhook => {
            let Some(webhook) = &config.webhook else {
                return Err(Failure::retry("the webhook channel is not configured"));
            };
            post_webhook(&n.destination, &n.idempotency_key, &n.payload, webhook).await
        }
        Channel::Smtp => {
            let Some(smtp) = &config.smtp else {
                return Err(Failure::retry("the SMTP channel is not configured"));
            };
            send_mail(n, smtp).await
        }
        Channel::File => write_payload(Path::new(&n.destination), &n.payload),
    }
}

/// `sha256=<hex>` of the body under the shared secret, as the signature header carries it.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex(ring::hmac::sign(&key, body).as_ref()))
}

/// Whether `header` is the signature of `body` (constant time).
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_tag) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = unhex(hex_tag) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn post_webhook(
    url: &str,
    key: &str,
    payload: &Value,
    config: &WebhookConfig,
) -> Result<(), Failure> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| Failure::permanent(format!("the webhook URL {url:?} does not parse")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(Failure::permanent(
                "the webhook URL must be http:// or https://",
            ))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| Failure::permanent("the webhook URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let body = serde_json::to_vec(payload)
        .map_err(|_| Failure::permanent("the payload does not serialize"))?;
    let request = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "surveyor-notify")
        .header(IDEMPOTENCY_HEADER, key)
        .header(SIGNATURE_HEADER, signature(&config.secret, &body))
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| Failure::permanent("the webhook request cannot be built"))?;

    let exchange = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Failure::retry(format!("webhook unreachable: {}", io_kind(&e))))?;
        if https {
            let tls = tls_connector();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| Failure::permanent("the webhook host is not a valid TLS name"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|_| Failure::retry("webhook TLS handshake failed"))?;
            exchange(stream, request).await
        } else {
            exchange(tcp, request).await
        }
    };
    let status = tokio::time::timeout(config.timeout, exchange)
        .await
        .map_err(|_| {
            Failure::retry(format!(
                "webhook timed out after {} s",
                config.timeout.as_secs_f32()
            ))
        })??;
    match status.as_u16() {
        200..=299 => Ok(()),
        408 | 425 | 429 | 500..=599 => Err(Failure::retry(format!(
            "webhook answered HTTP {}",
            status.as_u16()
        ))),
        other => Err(Failure::permanent(format!(
            "webhook refused the notification: HTTP {other}"
        ))),
    }
}

async fn exchange<S>(
    stream: S,
    request: http::Request<Full<Bytes>>,
) -> Result<http::StatusCode, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::retry("webhook HTTP handshake failed"))?;
    // The driver ends when the response is read and `sender` is dropped.
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| Failure::retry("webhook closed the connection before answering"));
    drop(sender);
    driver.abort();
    Ok(response?.status())
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn io_kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        TimedOut => "connect timed out",
        NotFound => "host not found",
        _ => "connect failed",
    }
}

async fn send_mail(n: &Notification, config: &SmtpConfig) -> Result<(), Failure> {
    let message = mail(n, &config.from)?;
    let builder = match config.tls {
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            config.host.as_str(),
        )),
        SmtpTls::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(config.host.as_str())
        }
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(config.host.as_str()),
    }
    .map_err(|_| Failure::permanent("the SMTP relay's host name is not valid for TLS"))?;
    let mut builder = builder.port(config.port).timeout(Some(config.timeout));
    if let Some((user, password)) = &config.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let transport = builder.build();
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) => Err(smtp_failure(&e)),
    }
}

/// Our own words for an SMTP failure: the reply code, never lettre's message.
fn smtp_failure(e: &lettre::transport::smtp::Error) -> Failure {
    let code = e.status().map(|c| format!(" ({c})")).unwrap_or_default();
    if e.is_permanent() {
        Failure::permanent(format!("SMTP relay refused the message{code}"))
    } else if e.is_transient() {
        Failure::retry(format!("SMTP relay deferred the message{code}"))
    } else if e.is_timeout() {
        Failure::retry("SMTP relay timed out")
    } else if e.is_tls() {
        Failure::retry("SMTP TLS failed")
    } else {
        Failure::retry("SMTP relay unreachable or broke the session")
    }
}

/// The e-mail of a notification: the rendered text, the CSV attached, and a Message-ID made of
/// the idempotency key so that mail systems can drop repeats too.
fn mail(n: &Notification, from: &str) -> Result<Message, Failure> {
    let field = |name: &str| {
        n.payload
            .pointer(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Failure::permanent(format!("the payload has no {name}")))
    };
    let from: Mailbox = from
        .parse()
        .map_err(|_| Failure::permanent(format!("the sender address {from:?} is not valid")))?;
    let to: Mailbox = n.destination.parse().map_err(|_| {
        Failure::permanent(format!(
            "the recipient address {:?} is not valid",
            n.destination
        ))
    })?;
    // 8bit keeps the (wrapped) text readable on the wire; text that 8bit cannot carry (a very
    // long word) goes quoted-printable instead.
    let body = field("/email/body")?;
    let body = Body::new_with_encoding(body.clone(), ContentTransferEncoding::EightBit)
        .unwrap_or_else(|_| Body::new(body));
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(body);
    let csv_type = ContentType::parse("text/csv; charset=utf-8").expect("a valid content type");
    let csv =
        Attachment::new(field("/scan_exchange_file")?).body(field("/scan_exchange_csv")?, csv_type);
    Message::builder()
        .from(from)
        .to(to)
        .subject(field("/email/subject")?)
        .message_id(Some(format!("<{}@surveyor.invalid>", n.idempotency_key)))
        .multipart(MultiPart::mixed().singlepart(text).singlepart(csv))
        .map_err(|_| Failure::permanent("the e-mail cannot be built"))
}

fn write_payload(dir: &Path, payload: &Value) -> Result<(), Failure> {
    let text = |name: &str| payload.pointer(name).and_then(Value::as_str).unwrap_or("");
    let bundle = text("/bundle");
    if bundle.is_empty() || bundle.contains(['/', '\\']) || bundle.starts_with('.') {
        return Err(Failure::permanent("the payload names no usable bundle id"));
    }
    let events: String = payload
        .pointer("/intelmq_events")
        .and_then(Value::as_array)
        .map(|events| events.iter().map(|e| e.to_string() + "\n").collect())
        .unwrap_or_default();
    let email = format!(
        "Subject: {}\n\n{}",
        text("/email/subject"),
        text("/email/body")
    );
    let json = serde_json::to_string_pretty(payload).unwrap_or_default() + "\n";
    let names = [
        format!("{bundle}.json"),
        format!("{bundle}.intelmq.jsonl"),
        text("/scan_exchange_file").to_string(),
        format!("{bundle}.eml.txt"),
    ];
    write_files(
        dir,
        &[
            (&names[0], json.as_bytes()),
            (&names[1], events.as_bytes()),
            (&names[2], text("/scan_exchange_csv").as_bytes()),
            (&names[3], email.as_bytes()),
        ],
    )
    .map_err(|e| Failure::retry(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
            max_attempts: 5,
        };
        let pauses: Vec<u64> = (1..=5).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(pauses, [10, 20, 40, 60, 60]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let sig = signature(b"secret", b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify_signature(b"secret", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"secret", b"{\"a\":2}", &sig));
        assert!(!verify_signature(b"other", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"secret", b"{\"a\":1}", "sha256=zz"));
    }
}
