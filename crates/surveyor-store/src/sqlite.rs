//! The SQLite backend: one file in WAL mode, timestamps as fixed-width RFC 3339 text.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use surveyor_model::{ExchangeServer, Observation};
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::rows::{self, Columns, StoredObservation, StoredScan};
use crate::url::SqliteLocation;
use crate::{Backend, CensusStore, NewScan, ScanId, ScanRecord, ScanStore, StoreError};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

const BACKEND: Backend = Backend::Sqlite;

/// WAL lets readers run beside the one writer; more connections than this only queue on the
/// write lock.
const MAX_CONNECTIONS: u32 = 4;
/// How long a statement waits for another connection's write lock before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// UTC with exactly six fractional digits: fixed width, so text order is time order and
/// `ORDER BY finished_at` works on the column as stored.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

const SELECT_SCANS: &str = "SELECT s.id, s.started_at, s.finished_at, s.as_of, s.targets, \
     s.ports, s.tool_version, \
     (SELECT count(*) FROM observations o WHERE o.scan_id = s.id) AS observations \
     FROM scans s";

pub(crate) struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(location: SqliteLocation) -> Result<SqliteStore, StoreError> {
        let (options, pool_options, target) = match location {
            SqliteLocation::File(path) => {
                let target = path.display().to_string();
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL is durable in WAL mode except for the last commits on power loss.
                    .synchronous(SqliteSynchronous::Normal);
                (
                    options,
                    SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS),
                    target,
                )
            }
            SqliteLocation::Memory => {
                let options =
                    SqliteConnectOptions::from_str("sqlite::memory:").map_err(|source| {
                        StoreError::Connect {
                            backend: BACKEND,
                            target: ":memory:".into(),
                            source,
                        }
                    })?;
                // The database lives as long as a connection does: keep exactly one, forever.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
                (options, pool, ":memory:".to_string())
            }
        };
        let options = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        let pool = pool_options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                backend: BACKEND,
                target: target.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                source,
            })?;
        tracing::debug!(%target, "opened SQLite store");
        Ok(SqliteStore { pool })
    }

    async fn scan_exists(&self, scan: ScanId) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT 1 FROM scans WHERE id = ?")
            .bind(scan.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "look up a scan"))?;
        Ok(found.is_some())
    }

    async fn fetch_scans(
        &self,
        sql: &str,
        id: Option<ScanId>,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        let mut query = sqlx::query(sql);
        if let Some(id) = id {
            query = query.bind(id.0);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read scans"))?;
        rows.iter().map(scan_from_row).collect()
    }
}

#[async_trait::async_trait]
impl ScanStore for SqliteStore {
    async fn begin_scan(&self, scan: &NewScan) -> Result<ScanId, StoreError> {
        rows::check_new_scan(scan)?;
        let ports = serde_json::to_string(&scan.ports).map_err(|_| StoreError::Unencodable {
            what: "the new scan's ports".into(),
        })?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO scans (started_at, as_of, targets, ports, tool_version) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(timestamp_text(
            scan.started_at,
            "the new scan's started_at",
        )?)
        .bind(date_text(scan.as_of)?)
        .bind(&scan.targets)
        .bind(ports)
        .bind(&scan.tool_version)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "begin a scan"))?;
        Ok(ScanId(id))
    }

    async fn record(&self, scan: ScanId, batch: &[Observation]) -> Result<(), StoreError> {
        // Encode everything before the transaction, so that bad input never half-writes.
        let columns = batch
            .iter()
            .map(|o| {
                let observed_at = timestamp_text(o.observed_at, "an observation's observed_at")?;
                Ok((Columns::encode(o)?, observed_at))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let action = "record observations";
        // IMMEDIATE takes the write lock up front (waiting up to the busy timeout); a deferred
        // transaction that reads first can fail outright when it later upgrades to write.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        let found = sqlx::query("SELECT 1 FROM scans WHERE id = ?")
            .bind(scan.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        if found.is_none() {
            return Err(StoreError::UnknownScan(scan));
        }
        for chunk in columns.chunks(rows::INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, error, \
                 tls, http_server, fingerprint, exchange_family, exchange_build, \
                 exchange_version_name, exchange_support, exchange_verdict) ",
            );
            insert.push_values(chunk, |mut row, (c, observed_at)| {
                row.push_bind(scan.0);
                row.push_bind(&c.ip);
                row.push_bind(c.port);
                row.push_bind(c.scheme);
                row.push_bind(observed_at);
                row.push_bind(c.status);
                row.push_bind(&c.error);
                row.push_bind(&c.tls);
                row.push_bind(&c.http_server);
                row.push_bind(&c.fingerprint);
                row.push_bind(c.exchange_family);
                row.push_bind(&c.exchange_build);
                row.push_bind(&c.exchange_version_name);
                row.push_bind(c.exchange_support);
                row.push_bind(&c.exchange_verdict);
            });
            // Idempotent per (scan, ip, port): a resumed scan or overlapping target lists
            // store each target once; the first observation stands.
            insert.push(" ON CONFLICT (scan_id, ip, port) DO NOTHING");
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| insert_error(scan, e))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))
    }

    async fn finish_scan(
        &self,
        scan: ScanId,
        finished_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE scans SET finished_at = ? WHERE id = ?")
            .bind(timestamp_text(finished_at, "the scan's finished_at")?)
            .bind(scan.0)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "finish a scan"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownScan(scan));
        }
        Ok(())
    }

    async fn scans(&self) -> Result<Vec<ScanRecord>, StoreError> {
        let sql = format!("{SELECT_SCANS} ORDER BY s.started_at DESC, s.id DESC");
        self.fetch_scans(&sql, None).await
    }

    async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError> {
        let sql = format!("{SELECT_SCANS} WHERE s.id = ?");
        Ok(self.fetch_scans(&sql, Some(id)).await?.into_iter().next())
    }

    async fn observations(&self, scan: ScanId) -> Result<Vec<Observation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ip, port, scheme, observed_at, status, error, tls, http_server, \
             fingerprint, exchange_family, exchange_build, exchange_version_name, \
             exchange_support, exchange_verdict \
             FROM observations WHERE scan_id = ?",
        )
        .bind(scan.0)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read observations"))?;
        if rows.is_empty() && !self.scan_exists(scan).await? {
            return Err(StoreError::UnknownScan(scan));
        }
        let mut observations = rows
            .iter()
            .map(|row| observation_from_row(row)?.into_model())
            .collect::<Result<Vec<_>, _>>()?;
        // Text addresses do not sort numerically in SQL ("10.0.0.10" < "10.0.0.2").
        rows::sort_observations(&mut observations);
        Ok(observations)
    }
}

#[async_trait::async_trait]
impl CensusStore for SqliteStore {
    async fn latest_finished_scan(&self) -> Result<Option<ScanRecord>, StoreError> {
        let sql = format!(
            "{SELECT_SCANS} WHERE s.finished_at IS NOT NULL \
             ORDER BY s.finished_at DESC, s.id DESC LIMIT 1"
        );
        Ok(self.fetch_scans(&sql, None).await?.into_iter().next())
    }

    async fn exchange_servers(&self, scan: ScanId) -> Result<Vec<ExchangeServer>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ip, port, exchange_family, exchange_build, exchange_support \
             FROM observations WHERE scan_id = ? AND exchange_family IS NOT NULL",
        )
        .bind(scan.0)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read exchange servers"))?;
        if rows.is_empty() && !self.scan_exists(scan).await? {
            return Err(StoreError::UnknownScan(scan));
        }
        let mut servers = rows
            .iter()
            .map(|row| {
                let port: i64 = get(row, "port")?;
                rows::exchange_server(rows::ServerColumns {
                    id: get(row, "id")?,
                    ip: &get::<String>(row, "ip")?,
                    port,
                    family: &get::<String>(row, "exchange_family")?,
                    build: &get::<String>(row, "exchange_build")?,
                    support: &get::<String>(row, "exchange_support")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        servers.sort_by_key(|s| (s.ip, s.port));
        Ok(servers)
    }
}

/// Maps a failed INSERT of a batch to what it means for the caller.
fn insert_error(scan: ScanId, error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_foreign_key_violation() {
            return StoreError::UnknownScan(scan);
        }
    }
    StoreError::Query {
        backend: BACKEND,
        action: "record observations",
        source: error,
    }
}

fn timestamp_text(t: OffsetDateTime, what: &'static str) -> Result<String, StoreError> {
    rows::truncate_to_micros(t)
        .checked_to_offset(UtcOffset::UTC)
        .and_then(|utc| utc.format(TIMESTAMP).ok())
        .ok_or(StoreError::Unencodable { what: what.into() })
}

fn date_text(date: Date) -> Result<String, StoreError> {
    date.format(DATE).map_err(|_| StoreError::Unencodable {
        what: "the new scan's as_of date".into(),
    })
}

/// Reads what [`timestamp_text`] wrote, and any other RFC 3339 text a person may have put there.
fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(text, TIMESTAMP)
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(text, &Rfc3339))
        .ok()
}

fn scan_from_row(row: &SqliteRow) -> Result<ScanRecord, StoreError> {
    let id: i64 = get(row, "id")?;
    let corrupt = |column: &str| StoreError::corrupt(format!("scans.{column} of scan {id}"));
    let timestamp = |column: &'static str| -> Result<Option<OffsetDateTime>, StoreError> {
        get::<Option<String>>(row, column)?
            .map(|text| parse_timestamp(&text).ok_or_else(|| corrupt(column)))
            .transpose()
    };
    let as_of: String = get(row, "as_of")?;
    let ports: String = get(row, "ports")?;
    StoredScan {
        id,
        started_at: timestamp("started_at")?.ok_or_else(|| corrupt("started_at"))?,
        finished_at: timestamp("finished_at")?,
        as_of: Date::parse(&as_of, DATE).map_err(|_| corrupt("as_of"))?,
        targets: get(row, "targets")?,
        ports: serde_json::from_str(&ports).map_err(|_| corrupt("ports"))?,
        tool_version: get(row, "tool_version")?,
        observations: get(row, "observations")?,
    }
    .into_model()
}

fn observation_from_row(row: &SqliteRow) -> Result<StoredObservation, StoreError> {
    let id: i64 = get(row, "id")?;
    let observed_at: String = get(row, "observed_at")?;
    Ok(StoredObservation {
        id,
        ip: get(row, "ip")?,
        port: get(row, "port")?,
        scheme: get(row, "scheme")?,
        observed_at: parse_timestamp(&observed_at)
            .ok_or_else(|| rows::corrupt_column(id, "observed_at"))?,
        status: get(row, "status")?,
        error: get(row, "error")?,
        tls: get(row, "tls")?,
        http_server: get(row, "http_server")?,
        fingerprint: get(row, "fingerprint")?,
        exchange_family: get(row, "exchange_family")?,
        exchange_build: get(row, "exchange_build")?,
        exchange_version_name: get(row, "exchange_version_name")?,
        exchange_support: get(row, "exchange_support")?,
        exchange_verdict: get(row, "exchange_verdict")?,
    })
}

/// One column of a row; a value of the wrong type is a corrupt row, not a failed query.
fn get<'r, T>(row: &'r SqliteRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column)
        .map_err(|_| StoreError::corrupt(format!("column {column}")))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let t = datetime!(2025-10-14 11:30:01.000_123_999 +02:00);
        let text = timestamp_text(t, "t").unwrap();
        assert_eq!(text, "2025-10-14T09:30:01.000123Z");
        assert_eq!(
            parse_timestamp(&text),
            Some(datetime!(2025-10-14 09:30:01.000_123 UTC))
        );
        assert_eq!(
            parse_timestamp("2025-10-14T11:30:01+02:00"),
            Some(datetime!(2025-10-14 09:30:01 UTC))
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
