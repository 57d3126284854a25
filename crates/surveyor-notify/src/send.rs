//! Sending as `surveyor notify send` asks for it: passes over what is due until nothing due now
//! is left, and the SMTP relay as a command line writes it.

use surveyor_store::NotificationStore;

use crate::deliver::{send_due, Clock, DeliveryConfig, SendReport};
use crate::NotifyError;

/// One pass of [`send_due`] after another until a pass attempts nothing: everything due now
/// has had its attempt. A retry falls due `retry.base` later at the earliest, so this ends;
/// [`crate::deliver::send_until_settled`] waits for the retries instead.
pub async fn send_now(
    store: &dyn NotificationStore,
    config: &DeliveryConfig,
    clock: &Clock,
) -> Result<SendReport, NotifyError> {
    let mut total = SendReport::default();
    loop {
        let pass = send_due(store, config, clock).await?;
        total.attempted += pass.attempted;
        total.delivered += pass.delivered;
        total.retrying += pass.retrying;
        total.failed += pass.failed;
        total.skipped = pass.skipped;
        if pass.attempted == 0 {
            return Ok(total);
        }
    }
}

/// The host and port of a relay written `HOST:PORT` (`[ADDRESS]:PORT` for IPv6); `None`
/// without a host or a port.
pub fn relay_address(relay: &str) -> Option<(String, u16)> {
    let (host, port) = relay.rsplit_once(':')?;
    let host = host.trim_matches(['[', ']']);
    (!host.is_empty()).then_some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use surveyor_store::testing::each_backend;
    use surveyor_store::{Channel, NewNotification};
    use time::macros::datetime;

    use super::*;
    use crate::deliver::RetryPolicy;

    #[tokio::test]
    async fn one_send_attempts_everything_due_now_and_skips_other_channels() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, db) in each_backend().await {
            let store = surveyor_store::open(&db.url).await.unwrap();
            let now = datetime!(2026-11-23 12:00 UTC);
            let scan = crate::test_scan::begin(&store, now).await;
            let queued = |key: &str, channel, payload| NewNotification {
                scan,
                recipient: format!("organisation:{key}"),
                channel,
                destination: dir.path().join(backend.to_string()).display().to_string(),
                idempotency_key: format!("{backend}-{key}"),
                language: "en".into(),
                payload,
                findings: Vec::new(),
                created_at: now,
            };
            let batch = [
                queued(
                    "good",
                    Channel::File,
                    json!({ "bundle": "org-good", "scan_exchange_file": "org-good.csv" }),
                ),
                queued("bad", Channel::File, json!({ "bundle": "../up" })),
                queued("hook", Channel::Webhook, json!({ "bundle": "org-hook" })),
            ];
            store.notifications.enqueue(&batch).await.unwrap();
            let config = DeliveryConfig {
                webhook: None,
                smtp: None,
                files: true,
                retry: RetryPolicy::default(),
                batch: 1,
            };
            let clock = Clock::starting_at(now);
            let notifications = store.notifications.as_ref();
            let report = send_now(notifications, &config, &clock).await.unwrap();
            let counts = (
                report.attempted,
                report.delivered,
                report.failed,
                report.skipped,
            );
            assert_eq!(counts, (2, 1, 1, 1), "{backend}: a pass of one at a time");
            let again = send_now(notifications, &config, &clock).await.unwrap();
            assert_eq!(again.attempted, 0, "{backend}");
        }
    }

    #[test]
    fn a_relay_is_host_and_port() {
        let check = |relay: &str, expected: Option<(&str, u16)>| {
            let got = relay_address(relay);
            assert_eq!(got, expected.map(|(h, p)| (h.to_string(), p)), "{relay:?}");
        };
        check("mail.example.org:587", Some(("mail.example.org", 587)));
        check("[2001:db8::25]:25", Some(("2001:db8::25", 25)));
        check("127.0.0.1:2525", Some(("127.0.0.1", 2525)));
        check("mail.example.org", None);
        check(":25", None);
        check("mail.example.org:smtp", None);
        check("mail.example.org:70000", None);
    }
}
