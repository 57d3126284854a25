//! Notifications to affected organisations: bundles per organisation or network contact from a
//! scan, rendered as IntelMQ events, Shadowserver `scan_exchange` CSV and e-mails (German or
//! English), and delivered by webhook, SMTP or files through an outbox in the store.
//!
//! - [`plan::plan`] (pure) decides who is told what, [`plan_scan`] for a scan in the store;
//!   [`render`] turns a bundle into the payload the outbox keeps; [`files`] writes bundles and
//!   a manifest to a directory; [`show`] is what the binary shows of a plan and of the outbox.
//! - [`deliver`] takes due notifications from the store's outbox, sends each, logs every attempt
//!   and retries with exponential back-off; receivers drop repeats by idempotency key;
//!   [`send`] is what `surveyor notify send` asks of it.

pub mod deliver;
pub mod email;
pub mod files;
pub mod intelmq;
pub mod plan;
pub mod render;
pub mod send;
pub mod shadowserver;
pub mod show;
mod stored;
#[cfg(test)]
mod test_scan;

pub use deliver::{
    Clock, DeliveryConfig, RetryPolicy, SendReport, SmtpConfig, SmtpTls, WebhookConfig,
};
pub use email::{Email, Part, Templates};
pub use plan::{plan, Bundle, Finding, Language, NetworkContacts, Plan, PlanConfig, Reason};
pub use render::{enqueue, idempotency_key, render, render_all, EnqueueReport, Rendered, Routes};
pub use send::{relay_address, send_now};
pub use show::{plan_summary, OutboxStatus};
pub use stored::{plan_scan, PlanScanError};

/// Why planning, rendering or delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// Input we were given does not parse (network contacts, a URL, an address); the message
    /// says where.
    #[error("{0}")]
    InvalidInput(String),
    /// A template does not parse or asks for data the bundle does not have.
    #[error("cannot render {0}")]
    Template(String),
    /// Writing files failed.
    #[error("{0}")]
    Io(String),
    /// The store failed; `retryable` says whether trying later may help.
    #[error("the store failed: {message}")]
    Store { message: String, retryable: bool },
}

impl From<surveyor_store::StoreError> for NotifyError {
    fn from(e: surveyor_store::StoreError) -> NotifyError {
        NotifyError::Store {
            retryable: e.is_retryable(),
            message: e.to_string(),
        }
    }
}
