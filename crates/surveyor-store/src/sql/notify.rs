//! [`NotificationStore`] for both backends: the outbox, findings, delivery log and
//! suppressions.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::{get, Exec, Flavour, Native, Sql, SqlStore};
use crate::notifications::{
    check_new, check_outcome, check_suppression, AttemptOutcome, Channel, DeliveryRecord,
    FindingKey, NewNotification, Notification, NotificationStatus, NotificationStore,
    NotifiedFinding, Suppression,
};
use crate::{ScanId, StoreError};

fn select_notifications<F: Flavour>() -> String {
    format!(
        "SELECT id, scan_id, recipient, channel, destination, idempotency_key, language, \
         {} AS payload, status, attempts, created_at, next_attempt_at, delivered_at, \
         last_error FROM notifications",
        F::json_text("payload")
    )
}

#[async_trait::async_trait]
impl<F: Exec> NotificationStore for SqlStore<F> {
    async fn enqueue(&self, batch: &[NewNotification]) -> Result<Vec<Option<i64>>, StoreError> {
        for n in batch {
            check_new(n)?;
        }
        let action = "enqueue notifications";
        let mut tx = self.begin("begin enqueueing notifications").await?;
        let mut ids = Vec::with_capacity(batch.len());
        for n in batch {
            let known = Sql::new("SELECT id FROM scans WHERE id = $1").bind(n.scan);
            if F::optional(&mut tx, &known, action).await?.is_none() {
                return Err(StoreError::UnknownScan(n.scan));
            }
            let insert = Sql::new(format!(
                "INSERT INTO notifications (scan_id, recipient, channel, destination, \
                 idempotency_key, language, payload, status, attempts, created_at, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7{}, 'pending', 0, $8, $8) \
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                F::JSON_PARAM
            ))
            .bind(n.scan)
            .bind(n.recipient.as_str())
            .bind(n.channel.as_str())
            .bind(n.destination.as_str())
            .bind(n.idempotency_key.as_str())
            .bind(n.language.as_str())
            .bind(n.payload.to_string())
            .bind(Native::Time(
                n.created_at,
                "the notification's creation time",
            ));
            let id: Option<i64> = match F::optional(&mut tx, &insert, action).await? {
                Some(row) => Some(get(&row, "id")?),
                None => None,
            };
            if let Some(id) = id {
                for f in &n.findings {
                    let finding = Sql::new(
                        "INSERT INTO notification_findings (notification_id, ip, port, \
                         fingerprint) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(f.ip)
                    .bind(i32::from(f.port))
                    .bind(f.fingerprint.as_str());
                    F::execute(&mut tx, &finding, action).await?;
                }
            }
            ids.push(id);
        }
        tx.commit().await.map_err(StoreError::query(
            F::BACKEND,
            "commit enqueued notifications",
        ))?;
        Ok(ids)
    }

    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Notification>, StoreError> {
        let sql = Sql::new(format!(
            "{} WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2",
            select_notifications::<F>()
        ))
        .bind(Native::Time(now, "the time now"))
        .bind(i64::from(limit));
        let rows = self.all(&sql, "read due notifications").await?;
        rows.iter().map(notification_from_row::<F>).collect()
    }

    async fn record_attempt(
        &self,
        id: i64,
        attempted_at: OffsetDateTime,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError> {
        check_outcome(outcome)?;
        let action = "record a delivery attempt";
        let at = Native::Time(attempted_at, "the attempt's time");
        let mut tx = self.begin("begin recording a delivery attempt").await?;
        // Two senders cannot both log attempt n of one notification: PostgreSQL locks the row,
        // SQLite's writing transaction holds the whole database.
        let current = Sql::new(format!(
            "SELECT attempts FROM notifications WHERE id = $1 AND status = 'pending'{}",
            F::row_lock(" FOR UPDATE")
        ))
        .bind(id);
        let Some(row) = F::optional(&mut tx, &current, action).await? else {
            return Ok(false);
        };
        let attempt = get::<i32>(&row, "attempts")? + 1;
        let log = Sql::new(
            "INSERT INTO notification_deliveries (notification_id, attempt, attempted_at, \
             outcome, error) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(attempt)
        .bind(at.clone())
        .bind(outcome.as_str())
        .bind(outcome.error());
        F::execute(&mut tx, &log, action).await?;
        let update = match outcome {
            AttemptOutcome::Delivered => Sql::new(
                "UPDATE notifications SET status = 'delivered', attempts = $1, \
                 delivered_at = $2, last_error = NULL WHERE id = $3",
            )
            .bind(attempt)
            .bind(at)
            .bind(id),
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => Sql::new(
                "UPDATE notifications SET attempts = $1, next_attempt_at = $2, last_error = $3 \
                 WHERE id = $4",
            )
            .bind(attempt)
            .bind(Native::Time(*next_attempt_at, "the next attempt's time"))
            .bind(error.as_str())
            .bind(id),
            AttemptOutcome::Failed { error } => Sql::new(
                "UPDATE notifications SET status = 'failed', attempts = $1, last_error = $2 \
                 WHERE id = $3",
            )
            .bind(attempt)
            .bind(error.as_str())
            .bind(id),
        };
        F::execute(&mut tx, &update, action).await?;
        tx.commit()
            .await
            .map_err(StoreError::query(F::BACKEND, "commit a delivery attempt"))?;
        Ok(true)
    }

    async fn notifications(&self, scan: Option<ScanId>) -> Result<Vec<Notification>, StoreError> {
        let sql = Sql::new(format!(
            "{} WHERE ($1 IS NULL OR scan_id = $1) ORDER BY id",
            select_notifications::<F>()
        ))
        .bind(scan.map(|s| s.0));
        let rows = self.all(&sql, "list notifications").await?;
        rows.iter().map(notification_from_row::<F>).collect()
    }

    async fn deliveries(&self, notification: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let sql = Sql::new(
            "SELECT notification_id, attempt, attempted_at, outcome, error \
             FROM notification_deliveries WHERE notification_id = $1 ORDER BY attempt, id",
        )
        .bind(notification);
        let rows = self.all(&sql, "read the delivery log").await?;
        rows.iter()
            .map(|row| {
                Ok(DeliveryRecord {
                    notification: get(row, "notification_id")?,
                    attempt: u32::try_from(get::<i32>(row, "attempt")?)
                        .map_err(|_| StoreError::corrupt("notification_deliveries.attempt"))?,
                    attempted_at: F::time(row, "attempted_at")?.ok_or_else(|| {
                        StoreError::corrupt("notification_deliveries.attempted_at")
                    })?,
                    outcome: get(row, "outcome")?,
                    error: get(row, "error")?,
                })
            })
            .collect()
    }

    async fn notified_findings(&self) -> Result<Vec<NotifiedFinding>, StoreError> {
        // SQLite's times are fixed-width UTC text: max() of the text is the newest time.
        let sql = Sql::new(format!(
            "SELECT n.recipient, {} AS ip, f.port, f.fingerprint, max(n.created_at) AS last \
             FROM notification_findings f JOIN notifications n ON n.id = f.notification_id \
             WHERE n.status IN ('pending', 'delivered') \
             GROUP BY n.recipient, f.ip, f.port, f.fingerprint",
            F::ip_text("f.ip")
        ));
        let rows = self.all(&sql, "read notified findings").await?;
        let mut found = rows
            .iter()
            .map(|row| {
                let ip: String = get(row, "ip")?;
                Ok(NotifiedFinding {
                    recipient: get(row, "recipient")?,
                    finding: FindingKey {
                        ip: ip
                            .parse::<IpAddr>()
                            .map_err(|_| StoreError::corrupt("notification_findings.ip"))?,
                        port: u16::try_from(get::<i32>(row, "port")?)
                            .map_err(|_| StoreError::corrupt("notification_findings.port"))?,
                        fingerprint: get(row, "fingerprint")?,
                    },
                    last_notified_at: F::time(row, "last")?
                        .ok_or_else(|| StoreError::corrupt("notifications.created_at"))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // By recipient, then the finding in Rust's order (addresses numerically).
        found.sort_by(|a, b| (&a.recipient, &a.finding).cmp(&(&b.recipient, &b.finding)));
        Ok(found)
    }

    async fn suppress(&self, s: &Suppression) -> Result<(), StoreError> {
        check_suppression(s)?;
        let sql = Sql::new(
            "INSERT INTO notification_suppressions (target, reason, created_at, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(s.target.as_str())
        .bind(s.reason.as_str())
        .bind(Native::Time(s.created_at, "the suppression's time"))
        .bind(Native::OptTime(s.expires_at, "the suppression's expiry"));
        self.execute(&sql, "add a suppression").await?;
        Ok(())
    }

    async fn unsuppress(&self, target: &str) -> Result<bool, StoreError> {
        let sql = Sql::new("DELETE FROM notification_suppressions WHERE target = $1").bind(target);
        Ok(self.execute(&sql, "remove a suppression").await? == 1)
    }

    async fn suppressions(&self, now: OffsetDateTime) -> Result<Vec<Suppression>, StoreError> {
        let sql = Sql::new(
            "SELECT target, reason, created_at, expires_at FROM notification_suppressions \
             WHERE expires_at IS NULL OR expires_at > $1",
        )
        .bind(Native::Time(now, "the time now"));
        let rows = self.all(&sql, "read the suppression list").await?;
        let mut list = rows
            .iter()
            .map(|row| {
                Ok(Suppression {
                    target: get(row, "target")?,
                    reason: get(row, "reason")?,
                    created_at: F::time(row, "created_at")?.ok_or_else(|| {
                        StoreError::corrupt("notification_suppressions.created_at")
                    })?,
                    expires_at: F::time(row, "expires_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // By target byte by byte, as PostgreSQL's "C" collation and SQLite's BINARY order it,
        // whatever the database's collation.
        list.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(list)
    }
}

fn notification_from_row<F: Flavour>(row: &F::Row) -> Result<Notification, StoreError> {
    let id: i64 = get(row, "id")?;
    let corrupt = |column: &str| StoreError::corrupt(format!("notifications.{column} of {id}"));
    let channel: String = get(row, "channel")?;
    let status: String = get(row, "status")?;
    let payload: String = get(row, "payload")?;
    Ok(Notification {
        id,
        scan: ScanId(get(row, "scan_id")?),
        recipient: get(row, "recipient")?,
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel"))?,
        destination: get(row, "destination")?,
        idempotency_key: get(row, "idempotency_key")?,
        language: get(row, "language")?,
        payload: serde_json::from_str(&payload).map_err(|_| corrupt("payload"))?,
        status: NotificationStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        attempts: u32::try_from(get::<i32>(row, "attempts")?).map_err(|_| corrupt("attempts"))?,
        created_at: F::time(row, "created_at")?.ok_or_else(|| corrupt("created_at"))?,
        next_attempt_at: F::time(row, "next_attempt_at")?
            .ok_or_else(|| corrupt("next_attempt_at"))?,
        delivered_at: F::time(row, "delivered_at")?,
        last_error: get(row, "last_error")?,
    })
}
