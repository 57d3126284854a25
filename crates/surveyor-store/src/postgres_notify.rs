//! The notifications aggregate on PostgreSQL: the outbox, findings, delivery log and suppressions.

use std::net::IpAddr;

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};
use time::OffsetDateTime;

use crate::notifications::{
    check_new, check_outcome, check_suppression, AttemptOutcome, Channel, DeliveryRecord,
    FindingKey, NewNotification, Notification, NotificationStatus, NotificationStore,
    NotifiedFinding, Suppression,
};
use crate::postgres::{begin, PgStore};
use crate::rows::truncate_to_micros;
use crate::{Backend, ScanId, StoreError};

const BACKEND: Backend = Backend::Postgres;

const SELECT_NOTIFICATIONS: &str = "SELECT id, scan_id, recipient, channel, destination, \
     idempotency_key, language, payload::text AS payload, status, attempts, created_at, \
     next_attempt_at, delivered_at, last_error FROM notifications";

#[async_trait::async_trait]
impl NotificationStore for PgStore {
    async fn enqueue(&self, batch: &[NewNotification]) -> Result<Vec<Option<i64>>, StoreError> {
        for n in batch {
            check_new(n)?;
        }
        let mut tx = begin(&self.pool, "begin enqueueing notifications").await?;
        let mut ids = Vec::with_capacity(batch.len());
        for n in batch {
            let known: Option<i64> = sqlx::query_scalar("SELECT id FROM scans WHERE id = $1")
                .bind(n.scan.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, "enqueue notifications"))?;
            if known.is_none() {
                return Err(StoreError::UnknownScan(n.scan));
            }
            let created = truncate_to_micros(n.created_at);
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO notifications (scan_id, recipient, channel, destination, \
                 idempotency_key, language, payload, status, attempts, created_at, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, 'pending', 0, $8, $8) \
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            )
            .bind(n.scan.0)
            .bind(&n.recipient)
            .bind(n.channel.as_str())
            .bind(&n.destination)
            .bind(&n.idempotency_key)
            .bind(&n.language)
            .bind(n.payload.to_string())
            .bind(created)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, "enqueue notifications"))?;
            if let Some(id) = id {
                for f in &n.findings {
                    sqlx::query(
                        "INSERT INTO notification_findings (notification_id, ip, port, \
                         fingerprint) VALUES ($1, $2::inet, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(f.ip.to_string())
                    .bind(i32::from(f.port))
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
            "{SELECT_NOTIFICATIONS} WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
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
        check_outcome(outcome)?;
        let at = truncate_to_micros(attempted_at);
        let mut tx = begin(&self.pool, "begin recording a delivery attempt").await?;
        // FOR UPDATE: two senders cannot both log attempt n of one notification.
        let attempts: Option<i32> = sqlx::query_scalar(
            "SELECT attempts FROM notifications WHERE id = $1 AND status = 'pending' FOR UPDATE",
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
             outcome, error) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(attempt)
        .bind(at)
        .bind(outcome.as_str())
        .bind(outcome.error())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, "record a delivery attempt"))?;
        let update = match outcome {
            AttemptOutcome::Delivered => sqlx::query(
                "UPDATE notifications SET status = 'delivered', attempts = $1, \
                 delivered_at = $2, last_error = NULL WHERE id = $3",
            )
            .bind(attempt)
            .bind(at)
            .bind(id),
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => sqlx::query(
                "UPDATE notifications SET attempts = $1, next_attempt_at = $2, last_error = $3 \
                 WHERE id = $4",
            )
            .bind(attempt)
            .bind(truncate_to_micros(*next_attempt_at))
            .bind(error.clone())
            .bind(id),
            AttemptOutcome::Failed { error } => sqlx::query(
                "UPDATE notifications SET status = 'failed', attempts = $1, last_error = $2 \
                 WHERE id = $3",
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
        let sql = format!(
            "{SELECT_NOTIFICATIONS} WHERE ($1::bigint IS NULL OR scan_id = $1) ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(scan.map(|s| s.0))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "list notifications"))?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn deliveries(&self, notification: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT notification_id, attempt, attempted_at, outcome, error \
             FROM notification_deliveries WHERE notification_id = $1 ORDER BY attempt, id",
        )
        .bind(notification)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read the delivery log"))?;
        rows.iter()
            .map(|row| {
                Ok(DeliveryRecord {
                    notification: get(row, "notification_id")?,
                    attempt: u32::try_from(get::<i32>(row, "attempt")?)
                        .map_err(|_| StoreError::corrupt("notification_deliveries.attempt"))?,
                    attempted_at: get(row, "attempted_at")?,
                    outcome: get(row, "outcome")?,
                    error: get(row, "error")?,
                })
            })
            .collect()
    }

    async fn notified_findings(&self) -> Result<Vec<NotifiedFinding>, StoreError> {
        let rows = sqlx::query(
            "SELECT n.recipient, host(f.ip) AS ip, f.port, f.fingerprint, \
             max(n.created_at) AS last \
             FROM notification_findings f JOIN notifications n ON n.id = f.notification_id \
             WHERE n.status IN ('pending', 'delivered') \
             GROUP BY n.recipient, f.ip, f.port, f.fingerprint",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read notified findings"))?;
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
                    last_notified_at: get(row, "last")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // The same order as SQLite's: by recipient, then the finding in Rust's order.
        found.sort_by(|a, b| (&a.recipient, &a.finding).cmp(&(&b.recipient, &b.finding)));
        Ok(found)
    }

    async fn suppress(&self, s: &Suppression) -> Result<(), StoreError> {
        check_suppression(s)?;
        sqlx::query(
            "INSERT INTO notification_suppressions (target, reason, created_at, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(&s.target)
        .bind(&s.reason)
        .bind(truncate_to_micros(s.created_at))
        .bind(s.expires_at.map(truncate_to_micros))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "add a suppression"))?;
        Ok(())
    }

    async fn unsuppress(&self, target: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM notification_suppressions WHERE target = $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "remove a suppression"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppressions(&self, now: OffsetDateTime) -> Result<Vec<Suppression>, StoreError> {
        let rows = sqlx::query(
            "SELECT target, reason, created_at, expires_at FROM notification_suppressions \
             WHERE expires_at IS NULL OR expires_at > $1 ORDER BY target COLLATE \"C\"",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read the suppression list"))?;
        rows.iter()
            .map(|row| {
                Ok(Suppression {
                    target: get(row, "target")?,
                    reason: get(row, "reason")?,
                    created_at: get(row, "created_at")?,
                    expires_at: get(row, "expires_at")?,
                })
            })
            .collect()
    }
}

fn notification_from_row(row: &PgRow) -> Result<Notification, StoreError> {
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
        created_at: get(row, "created_at")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        delivered_at: get(row, "delivered_at")?,
        last_error: get(row, "last_error")?,
    })
}

fn get<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|_| StoreError::corrupt(format!("column {column}")))
}
