//! The notifications aggregate on SQLite: the outbox, findings, delivery log and suppressions.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};
use time::OffsetDateTime;

use crate::notifications::{
    check_new, AttemptOutcome, Channel, DeliveryRecord, FindingKey, NewNotification, Notification,
    NotificationStatus, NotificationStore, NotifiedFinding, Suppression,
};
use crate::sqlite::{parse_timestamp, timestamp_text, SqliteStore};
use crate::{Backend, ScanId, StoreError};

const BACKEND: Backend = Backend::Sqlite;

const SELECT_NOTIFICATIONS: &str = "SELECT id, scan_id, recipient, channel, destination, \
     idempotency_key, language, payload, status, attempts, created_at, next_attempt_at, \
     delivered_at, last_error FROM notifications";

#[async_trait::async_trait]
impl NotificationStore for SqliteStore {
    async fn enqueue(&self, batch: &[NewNotification]) -> Result<Vec<Option<i64>>, StoreError> {
        for n in batch {
            check_new(n)?;
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::query(BACKEND, "begin enqueueing notifications"))?;
        let mut ids = Vec::with_capacity(batch.len());
        for n in batch {
            let known: Option<i64> = sqlx::query_scalar("SELECT id FROM scans WHERE id = ?")
                .bind(n.scan.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, "enqueue notifications"))?;
            if known.is_none() {
                return Err(StoreError::UnknownScan(n.scan));
            }
            let created = timestamp_text(n.created_at, "the notification's creation time")?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO notifications (scan_id, recipient, channel, destination, \
                 idempotency_key, language, payload, status, attempts, created_at, \
                 next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) \
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            )
            .bind(n.scan.0)
            .bind(&n.recipient)
            .bind(n.channel.as_str())
            .bind(&n.destination)
            .bind(&n.idempotency_key)
            .bind(&n.language)
            .bind(n.payload.to_string())
            .bind(&created)
            .bind(&created)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, "enqueue notifications"))?;
            if let Some(id) = id {
                for f in &n.findings {
                    sqlx::query(
                        "INSERT INTO notification_findings (notification_id, ip, port, \
                         fingerprint) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(f.ip.to_string())
                    .bind(i64::from(f.port))
                    .bind(&f.fingerprint)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(BACKEND, "enqueue notifications"))?;
                }
            }
            ids.push(id);
        }
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, "commit enqueued notifications"))?;
        Ok(ids)
    }

    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Notification>, StoreError> {
        let sql = format!(
            "{SELECT_NOTIFICATIONS} WHERE status = 'pending' AND next_attempt_at <= ? \
             ORDER BY next_attempt_at, id LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(timestamp_text(now, "the time now")?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read due notifications"))?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn record_attempt(
        &self,
        id: i64,
        attempted_at: OffsetDateTime,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError> {
        crate::notifications::check_outcome(outcome)?;
        let at = timestamp_text(attempted_at, "the attempt's time")?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::query(
                BACKEND,
                "begin recording a delivery attempt",
            ))?;
        let attempts: Option<i64> = sqlx::query_scalar(
            "SELECT attempts FROM notifications WHERE id = ? AND status = 'pending'",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, "record a delivery attempt"))?;
        let Some(attempts) = attempts else {
            return Ok(false);
        };
        let attempt = attempts + 1;
        sqlx::query(
            "INSERT INTO notification_deliveries (notification_id, attempt, attempted_at, \
             outcome, error) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(attempt)
        .bind(&at)
        .bind(outcome.as_str())
        .bind(outcome.error())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, "record a delivery attempt"))?;
        let update = match outcome {
            AttemptOutcome::Delivered => sqlx::query(
                "UPDATE notifications SET status = 'delivered', attempts = ?, \
                 delivered_at = ?, last_error = NULL WHERE id = ?",
            )
            .bind(attempt)
            .bind(&at)
            .bind(id),
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => sqlx::query(
                "UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ? \
                 WHERE id = ?",
            )
            .bind(attempt)
            .bind(timestamp_text(*next_attempt_at, "the next attempt's time")?)
            .bind(error.clone())
            .bind(id),
            AttemptOutcome::Failed { error } => sqlx::query(
                "UPDATE notifications SET status = 'failed', attempts = ?, last_error = ? \
                 WHERE id = ?",
            )
            .bind(attempt)
            .bind(error.clone())
            .bind(id),
        };
        update
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, "record a delivery attempt"))?;
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, "commit a delivery attempt"))?;
        Ok(true)
    }

    async fn notifications(&self, scan: Option<ScanId>) -> Result<Vec<Notification>, StoreError> {
        let sql = format!("{SELECT_NOTIFICATIONS} WHERE (? IS NULL OR scan_id = ?) ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(scan.map(|s| s.0))
            .bind(scan.map(|s| s.0))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "list notifications"))?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn deliveries(&self, notification: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT notification_id, attempt, attempted_at, outcome, error \
             FROM notification_deliveries WHERE notification_id = ? ORDER BY attempt, id",
        )
        .bind(notification)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read the delivery log"))?;
        rows.iter()
            .map(|row| {
                let at: String = get(row, "attempted_at")?;
                Ok(DeliveryRecord {
                    notification: get(row, "notification_id")?,
                    attempt: u32::try_from(get::<i64>(row, "attempt")?)
                        .map_err(|_| StoreError::corrupt("notification_deliveries.attempt"))?,
                    attempted_at: parse_timestamp(&at).ok_or_else(|| {
                        StoreError::corrupt("notification_deliveries.attempted_at")
                    })?,
                    outcome: get(row, "outcome")?,
                    error: get(row, "error")?,
                })
            })
            .collect()
    }

    async fn notified_findings(&self) -> Result<Vec<NotifiedFinding>, StoreError> {
        // Fixed-width UTC text: max() of the text is the newest time.
        let rows = sqlx::query(
            "SELECT n.recipient, f.ip, f.port, f.fingerprint, max(n.created_at) AS last \
             FROM notification_findings f JOIN notifications n ON n.id = f.notification_id \
             WHERE n.status IN ('pending', 'delivered') \
             GROUP BY n.recipient, f.ip, f.port, f.fingerprint",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read notified findings"))?;
        let mut found = BTreeMap::new();
        for row in &rows {
            let ip: String = get(row, "ip")?;
            let last: String = get(row, "last")?;
            let finding = NotifiedFinding {
                recipient: get(row, "recipient")?,
                finding: FindingKey {
                    ip: ip
                        .parse::<IpAddr>()
                        .map_err(|_| StoreError::corrupt("notification_findings.ip"))?,
                    port: u16::try_from(get::<i64>(row, "port")?)
                        .map_err(|_| StoreError::corrupt("notification_findings.port"))?,
                    fingerprint: get(row, "fingerprint")?,
                },
                last_notified_at: parse_timestamp(&last)
                    .ok_or_else(|| StoreError::corrupt("notifications.created_at"))?,
            };
            found.insert(
                (finding.recipient.clone(), finding.finding.clone()),
                finding,
            );
        }
        Ok(found.into_values().collect())
    }

    async fn suppress(&self, s: &Suppression) -> Result<(), StoreError> {
        crate::notifications::check_suppression(s)?;
        sqlx::query(
            "INSERT INTO notification_suppressions (target, reason, created_at, expires_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(&s.target)
        .bind(&s.reason)
        .bind(timestamp_text(s.created_at, "the suppression's time")?)
        .bind(
            s.expires_at
                .map(|t| timestamp_text(t, "the suppression's expiry"))
                .transpose()?,
        )
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "add a suppression"))?;
        Ok(())
    }

    async fn unsuppress(&self, target: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM notification_suppressions WHERE target = ?")
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "remove a suppression"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppressions(&self, now: OffsetDateTime) -> Result<Vec<Suppression>, StoreError> {
        let rows = sqlx::query(
            "SELECT target, reason, created_at, expires_at FROM notification_suppressions \
             WHERE expires_at IS NULL OR expires_at > ? ORDER BY target",
        )
        .bind(timestamp_text(now, "the time now")?)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read the suppression list"))?;
        rows.iter()
            .map(|row| {
                let stamp = |column: &'static str| -> Result<Option<OffsetDateTime>, StoreError> {
                    get::<Option<String>>(row, column)?
                        .map(|t| {
                            parse_timestamp(&t).ok_or_else(|| {
                                StoreError::corrupt(format!("notification_suppressions.{column}"))
                            })
                        })
                        .transpose()
                };
                Ok(Suppression {
                    target: get(row, "target")?,
                    reason: get(row, "reason")?,
                    created_at: stamp("created_at")?.ok_or_else(|| {
                        StoreError::corrupt("notification_suppressions.created_at")
                    })?,
                    expires_at: stamp("expires_at")?,
                })
            })
            .collect()
    }
}

fn notification_from_row(row: &SqliteRow) -> Result<Notification, StoreError> {
    let id: i64 = get(row, "id")?;
    let corrupt = |column: &str| StoreError::corrupt(format!("notifications.{column} of {id}"));
    let stamp = |column: &'static str| -> Result<Option<OffsetDateTime>, StoreError> {
        get::<Option<String>>(row, column)?
            .map(|t| parse_timestamp(&t).ok_or_else(|| corrupt(column)))
            .transpose()
    };
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
        attempts: u32::try_from(get::<i64>(row, "attempts")?).map_err(|_| corrupt("attempts"))?,
        created_at: stamp("created_at")?.ok_or_else(|| corrupt("created_at"))?,
        next_attempt_at: stamp("next_attempt_at")?.ok_or_else(|| corrupt("next_attempt_at"))?,
        delivered_at: stamp("delivered_at")?,
        last_error: get(row, "last_error")?,
    })
}

fn get<'r, T>(row: &'r SqliteRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column)
        .map_err(|_| StoreError::corrupt(format!("column {column}")))
}
