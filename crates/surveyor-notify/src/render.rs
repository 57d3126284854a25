//! A bundle rendered in every format, the payload the outbox keeps, and enqueueing it per
//! channel with its idempotency key.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use surveyor_store::{Channel, NewNotification, NotificationStore, ScanId};
use time::OffsetDateTime;

use crate::email::{Email, Templates};
use crate::intelmq::{self, Feed};
use crate::plan::{hex, Bundle, Plan};
use crate::{shadowserver, NotifyError};

/// The version of the payload's shape; receivers can check it.
pub const PAYLOAD_SCHEMA: &str = "surveyor-notification/1";

/// One bundle in every format.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub bundle: Bundle,
    pub events: Vec<Map<String, Value>>,
    pub csv: String,
    pub email: Email,
}

impl Rendered {
    /// The name Shadowserver would give the CSV: `YYYY-MM-DD-scan_exchange-<bundle>.csv`.
    pub fn csv_file_name(&self) -> String {
        format!("{}-scan_exchange-{}.csv", self.bundle.as_of, self.bundle.id)
    }

    /// What the outbox keeps and the webhook posts.
    pub fn payload(&self, idempotency_key: &str) -> Value {
        json!({
            "schema": PAYLOAD_SCHEMA,
            "idempotency_key": idempotency_key,
            "bundle": self.bundle.id,
            "scan": self.bundle.scan.0,
            "as_of": self.bundle.as_of.to_string(),
            "recipient": self.bundle.recipient,
            "findings": self.bundle.findings,
            "intelmq_events": self.events,
            "scan_exchange_csv": self.csv,
            "scan_exchange_file": self.csv_file_name(),
            "email": self.email,
        })
    }
}

/// Renders one bundle in every format.
pub fn render(
    bundle: &Bundle,
    templates: &Templates,
    feed: &Feed,
) -> Result<Rendered, NotifyError> {
    Ok(Rendered {
        events: intelmq::events(bundle, feed),
        csv: shadowserver::to_csv(bundle)?,
        email: templates.render(bundle)?,
        bundle: bundle.clone(),
    })
}

/// Renders every bundle of a plan; the first failure stops and names the bundle.
pub fn render_all(
    plan: &Plan,
    templates: &Templates,
    feed: &Feed,
) -> Result<Vec<Rendered>, NotifyError> {
    plan.bundles
        .iter()
        .map(|b| {
            render(b, templates, feed).map_err(|e| match e {
                NotifyError::Template(m) => NotifyError::Template(format!("{m} (bundle {})", b.id)),
                other => other,
            })
        })
        .collect()
}

/// Which channels bundles go out on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// Every bundle is posted here (e.g. the CERT's ticket system or IntelMQ).
    pub webhook: Option<String>,
    /// Every bundle whose recipient has a contact address is mailed to it.
    pub smtp: bool,
    /// Every bundle is written to this directory.
    pub directory: Option<String>,
}

/// What enqueueing did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EnqueueReport {
    pub enqueued: usize,
    /// Already in the outbox under the same idempotency key.
    pub already_queued: usize,
    /// Bundles that could not be mailed: the recipient has no contact address.
    pub no_contact: Vec<String>,
}

/// One key per scan, recipient, channel and destination: planning the same scan again finds
/// the same keys, and a receiver drops every repeat of one notification by it.
pub fn idempotency_key(
    scan: ScanId,
    recipient: &str,
    channel: Channel,
    destination: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        PAYLOAD_SCHEMA,
        &scan.0.to_string(),
        recipient,
        channel.as_str(),
        destination,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// Puts every rendered bundle into the outbox once per configured channel, in one transaction.
pub async fn enqueue(
    store: &dyn NotificationStore,
    rendered: &[Rendered],
    routes: &Routes,
    now: OffsetDateTime,
) -> Result<EnqueueReport, NotifyError> {
    let mut report = EnqueueReport::default();
    let mut batch = Vec::new();
    for r in rendered {
        let mut destinations = Vec::new();
        if let Some(url) = &routes.webhook {
            destinations.push((Channel::Webhook, url.clone()));
        }
        if routes.smtp {
            match &r.bundle.recipient.email {
                Some(address) => destinations.push((Channel::Smtp, address.clone())),
                None => report.no_contact.push(r.bundle.id.clone()),
            }
        }
        if let Some(dir) = &routes.directory {
            destinations.push((Channel::File, dir.clone()));
        }
        for (channel, destination) in destinations {
            let key = idempotency_key(
                r.bundle.scan,
                &r.bundle.recipient.key,
                channel,
                &destination,
            );
            batch.push(NewNotification {
                scan: r.bundle.scan,
                recipient: r.bundle.recipient.key.clone(),
                channel,
                destination,
                payload: r.payload(&key),
                idempotency_key: key,
                language: r.bundle.recipient.language.as_str().into(),
                findings: r.bundle.findings.iter().map(|f| f.key()).collect(),
                created_at: now,
            });
        }
    }
    for id in store.enqueue(&batch).await? {
        match id {
            Some(_) => report.enqueued += 1,
            None => report.already_queued += 1,
        }
    }
    Ok(report)
}
