//! The notifications aggregate: the outbox of rendered bundles, what each one told, every
//! delivery attempt, and the suppression list.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;

use crate::{ScanId, StoreError};

/// How a notification travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// An HTTP POST of the bundle as JSON, signed with HMAC-SHA256.
    Webhook,
    /// An e-mail through the configured relay.
    Smtp,
    /// Files in a directory.
    File,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Webhook, Channel::Smtp, Channel::File];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Smtp => "smtp",
            Channel::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// Waiting for its first or next attempt.
    Pending,
    Delivered,
    /// Given up: a permanent error, or the attempts ran out.
    Failed,
}

impl NotificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Delivered => "delivered",
            NotificationStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<NotificationStatus> {
        [
            NotificationStatus::Pending,
            NotificationStatus::Delivered,
            NotificationStatus::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One finding a notification tells, as the re-notification window compares them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FindingKey {
    pub ip: IpAddr,
    pub port: u16,
    /// A digest of what was wrong (build, reasons, CVEs): a changed finding has another one.
    pub fingerprint: String,
}

/// A rendered bundle for one channel, about to enter the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub scan: ScanId,
    /// `organisation:<id>` or `contact:<address>`.
    pub recipient: String,
    pub channel: Channel,
    /// A URL, a mail address or a directory.
    pub destination: String,
    /// Unique over the outbox; enqueueing the same key again is a no-op.
    pub idempotency_key: String,
    pub language: String,
    pub payload: serde_json::Value,
    pub findings: Vec<FindingKey>,
    /// Also the time of the first attempt.
    pub created_at: OffsetDateTime,
}

/// A notification as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub id: i64,
    pub scan: ScanId,
    pub recipient: String,
    pub channel: Channel,
    pub destination: String,
    pub idempotency_key: String,
    pub language: String,
    pub payload: serde_json::Value,
    pub status: NotificationStatus,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

/// What one delivery attempt came to, and what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// A failure worth retrying at the given time.
    Retry {
        error: String,
        next_attempt_at: OffsetDateTime,
    },
    /// A permanent failure, or the last allowed attempt failed.
    Failed {
        error: String,
    },
}

impl AttemptOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Failed { .. } => "failed",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            AttemptOutcome::Delivered => None,
            AttemptOutcome::Retry { error, .. } | AttemptOutcome::Failed { error } => Some(error),
        }
    }
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    pub notification: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

/// The last time a finding was told to a recipient by a notification that did not fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifiedFinding {
    pub recipient: String,
    pub finding: FindingKey,
    #[serde(with = "time::serde::rfc3339")]
    pub last_notified_at: OffsetDateTime,
}

/// One entry of the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// An organisation id, a contact address, or an address prefix (`192.0.2.0/24`).
    pub target: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `None`: until removed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// The outbox, the delivery log and the suppression list.
#[async_trait::async_trait]
pub trait NotificationStore: Send + Sync {
    /// Puts notifications into the outbox in ONE transaction, each `pending` with its first
    /// attempt due at `created_at`. Idempotent by `idempotency_key`: a key the outbox has is
    /// skipped. Returns the ids of the rows added, `None` for skipped ones, in input order.
    /// [`StoreError::UnknownScan`] when a scan does not exist (nothing is written).
    async fn enqueue(&self, batch: &[NewNotification]) -> Result<Vec<Option<i64>>, StoreError>;

    /// Pending notifications whose next attempt is due at `now`, oldest due first (then id),
    /// at most `limit`.
    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Notification>, StoreError>;

    /// Logs one attempt and moves the notification on, in one transaction. `false` when the
    /// notification is not pending (delivered or failed meanwhile): nothing is written.
    async fn record_attempt(
        &self,
        id: i64,
        attempted_at: OffsetDateTime,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError>;

    /// Every notification, or those of one scan, by id.
    async fn notifications(&self, scan: Option<ScanId>) -> Result<Vec<Notification>, StoreError>;

    /// The delivery log of one notification, oldest attempt first.
    async fn deliveries(&self, notification: i64) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// For each (recipient, ip, port, fingerprint) told by a notification that is pending or
    /// delivered, the newest such notification's `created_at`. Failed notifications do not
    /// count: what they carried was never told.
    async fn notified_findings(&self) -> Result<Vec<NotifiedFinding>, StoreError>;

    /// Adds or replaces a suppression.
    async fn suppress(&self, suppression: &Suppression) -> Result<(), StoreError>;

    /// Removes a suppression; `false` when there was none.
    async fn unsuppress(&self, target: &str) -> Result<bool, StoreError>;

    /// The suppressions in force at `now` (not expired), by target.
    async fn suppressions(&self, now: OffsetDateTime) -> Result<Vec<Suppression>, StoreError>;
}

/// Refuses what PostgreSQL cannot store (a NUL character), so both backends accept the same.
pub(crate) fn check_new(n: &NewNotification) -> Result<(), StoreError> {
    let texts = [
        ("recipient", n.recipient.as_str()),
        ("destination", n.destination.as_str()),
        ("idempotency key", n.idempotency_key.as_str()),
        ("language", n.language.as_str()),
    ];
    for (field, value) in texts {
        if value.contains('\0') {
            return Err(nul(format!("the notification's {field}")));
        }
    }
    // serde_json writes a NUL as \u0000, which JSONB refuses.
    if n.payload.to_string().contains("\\u0000") {
        return Err(nul("the notification's payload".to_string()));
    }
    if n.findings.iter().any(|f| f.fingerprint.contains('\0')) {
        return Err(nul("a finding's fingerprint".to_string()));
    }
    Ok(())
}

pub(crate) fn check_outcome(outcome: &AttemptOutcome) -> Result<(), StoreError> {
    match outcome.error() {
        Some(e) if e.contains('\0') => Err(nul("the delivery error".to_string())),
        _ => Ok(()),
    }
}

pub(crate) fn check_suppression(s: &Suppression) -> Result<(), StoreError> {
    if s.target.contains('\0') || s.reason.contains('\0') {
        return Err(nul("the suppression".to_string()));
    }
    Ok(())
}

fn nul(what: String) -> StoreError {
    StoreError::Unencodable {
        what: format!("{what}: a NUL character").into(),
    }
}
