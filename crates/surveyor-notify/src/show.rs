//! What `surveyor notify` shows: a plan's summary when no files are written, and the outbox
//! with every notification's delivery log, as JSON or as a tab-separated table.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use surveyor_store::{Notification, NotificationStatus, NotificationStore, ScanId, Suppression};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{NotifyError, Plan, Rendered};

/// The plan as the manifest of [`crate::files::write_plan`] describes it, without files.
pub fn plan_summary(plan: &Plan, rendered: &[Rendered]) -> Value {
    let bundles: Vec<Value> = rendered
        .iter()
        .map(|r| {
            json!({
                "id": r.bundle.id,
                "recipient": r.bundle.recipient,
                "language": r.bundle.recipient.language,
                "findings": r.bundle.findings.len(),
                "reminders": r.bundle.findings.iter().filter(|f| f.reminder).count(),
                "subject": r.email.subject,
            })
        })
        .collect();
    json!({
        "scan": plan.scan.0,
        "as_of": plan.as_of.to_string(),
        "bundles": bundles,
        "unrouted": plan.unrouted.iter().map(|(ip, port)| json!({"ip": ip, "port": port})).collect::<Vec<_>>(),
        "suppressed": plan.suppressed,
        "within_window": plan.within_window,
    })
}

/// The outbox (of one scan, or all of it), counted by status, and the suppressions in force.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxStatus {
    /// Notifications by status; pending, delivered and failed are always there.
    pub counts: BTreeMap<&'static str, usize>,
    /// One object per notification, without its payload, with its delivery log.
    pub rows: Vec<Value>,
    pub suppressions: Vec<Suppression>,
}

impl OutboxStatus {
    /// Reads the outbox, each notification's delivery log and the suppressions in force `now`.
    pub async fn read(
        store: &dyn NotificationStore,
        scan: Option<ScanId>,
        now: OffsetDateTime,
    ) -> Result<OutboxStatus, NotifyError> {
        let notifications = store.notifications(scan).await?;
        let mut rows = Vec::with_capacity(notifications.len());
        let mut counts: BTreeMap<&'static str, usize> = ["pending", "delivered", "failed"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        for n in &notifications {
            *counts.entry(n.status.as_str()).or_default() += 1;
            let log = store.deliveries(n.id).await?;
            rows.push(row(n, json!(log)));
        }
        Ok(OutboxStatus {
            counts,
            rows,
            suppressions: store.suppressions(now).await?,
        })
    }

    /// The JSON document of `notify status --format json`.
    pub fn document(&self) -> Value {
        json!({
            "counts": self.counts,
            "notifications": self.rows,
            "suppressions": self.suppressions,
        })
    }

    /// A header and one tab-separated line per notification.
    pub fn table(&self) -> String {
        let mut out =
            "id\tscan\tbundle\tchannel\tdestination\tstatus\tattempts\tlast error\n".to_string();
        for r in &self.rows {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                r["id"],
                r["scan"],
                r["bundle"].as_str().unwrap_or(""),
                r["channel"].as_str().unwrap_or(""),
                r["destination"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
                r["attempts"],
                r["last_error"].as_str().unwrap_or("")
            ));
        }
        out
    }
}

/// One notification without its payload, with its delivery log.
fn row(n: &Notification, deliveries: Value) -> Value {
    json!({
        "id": n.id,
        "scan": n.scan.0,
        "bundle": n.payload.get("bundle"),
        "recipient": n.recipient,
        "channel": n.channel,
        "destination": n.destination,
        "idempotency_key": n.idempotency_key,
        "status": n.status,
        "attempts": n.attempts,
        "created_at": rfc3339(n.created_at),
        "next_attempt_at": (n.status == NotificationStatus::Pending).then(|| rfc3339(n.next_attempt_at)),
        "delivered_at": n.delivered_at.map(rfc3339),
        "last_error": n.last_error,
        "deliveries": deliveries,
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use surveyor_store::Channel;
    use time::macros::{date, datetime};

    use super::*;

    fn notification(status: NotificationStatus, last_error: Option<&str>) -> Notification {
        Notification {
            id: 4,
            scan: ScanId(2),
            recipient: "cert@example.org".into(),
            channel: Channel::Webhook,
            destination: "https://intake.example/".into(),
            idempotency_key: "k1".into(),
            language: "de".into(),
            payload: json!({ "bundle": "org-1", "events": [] }),
            status,
            attempts: 1,
            created_at: datetime!(2026-03-01 10:00 UTC),
            next_attempt_at: datetime!(2026-03-01 10:01 UTC),
            delivered_at: None,
            last_error: last_error.map(str::to_string),
        }
    }

    #[test]
    fn a_row_leaves_out_the_payload_and_keeps_the_log() {
        let r = row(&notification(NotificationStatus::Pending, None), json!([]));
        assert_eq!(r["bundle"], "org-1");
        assert_eq!(r["channel"], "webhook");
        assert_eq!(r["next_attempt_at"], "2026-03-01T10:01:00Z");
        assert_eq!(r["deliveries"], json!([]));
        assert!(r.get("payload").is_none());
        let failed = row(
            &notification(NotificationStatus::Failed, Some("410")),
            json!([]),
        );
        assert_eq!(failed["next_attempt_at"], Value::Null);
    }

    #[test]
    fn the_table_is_a_header_and_a_line_per_notification() {
        let status = OutboxStatus {
            counts: BTreeMap::from([("failed", 1), ("pending", 0), ("delivered", 0)]),
            rows: vec![row(
                &notification(NotificationStatus::Failed, Some("gave up")),
                json!([]),
            )],
            suppressions: Vec::new(),
        };
        assert_eq!(
            status.table(),
            "id\tscan\tbundle\tchannel\tdestination\tstatus\tattempts\tlast error\n\
             4\t2\torg-1\twebhook\thttps://intake.example/\tfailed\t1\tgave up\n"
        );
        let doc = status.document();
        assert_eq!(doc["counts"]["failed"], 1);
        assert_eq!(doc["notifications"][0]["id"], 4);
        assert_eq!(doc["suppressions"], json!([]));
    }

    #[test]
    fn a_plan_summary_names_what_no_one_receives() {
        let plan = Plan {
            scan: ScanId(2),
            as_of: date!(2026 - 03 - 01),
            bundles: Vec::new(),
            unrouted: vec![("192.0.2.7".parse().unwrap(), 443)],
            suppressed: 1,
            within_window: 0,
        };
        assert_eq!(
            plan_summary(&plan, &[]),
            json!({
                "scan": 2,
                "as_of": "2026-03-01",
                "bundles": [],
                "unrouted": [{ "ip": "192.0.2.7", "port": 443 }],
                "suppressed": 1,
                "within_window": 0,
            })
        );
    }
}
