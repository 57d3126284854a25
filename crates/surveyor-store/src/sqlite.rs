//! The SQLite backend: one file in WAL mode, timestamps as fixed-width RFC 3339 text,
//! addresses and JSON as text. The statements both backends share are in `sql/`.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteQueryResult, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::census::Dialect;
use crate::overlap;
use crate::rows::{self, Columns, Prepared, OBSERVATION_COLUMNS};
use crate::sql::{get, Flavour, Insert, Native, Query, SqlStore};
use crate::url::SqliteLocation;
use crate::{Backend, ScanId, StoreError};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

const BACKEND: Backend = Backend::Sqlite;

/// WAL lets readers run beside the one writer; more connections than this only queue on the
/// write lock.
const MAX_CONNECTIONS: u32 = 4;
/// Rows per INSERT of observations: small enough that the batch's next chunk is encoded while
/// SQLite stores this one, large enough that the statement is not the cost.
const OBSERVATION_CHUNK: usize = 100;
/// How long a statement waits for another connection's write lock before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// UTC with exactly six fractional digits: fixed width, so text order is time order and
/// `ORDER BY finished_at` works on the column as stored.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

pub(crate) type SqliteStore = SqlStore<Sqlite>;

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
                    .synchronous(SqliteSynchronous::Normal)
                    // A scan stores targets in permuted order, so each batch dirties pages
                    // all over the unique index. A 64 MiB page cache per connection (SQLite's
                    // default is 2 MiB) keeps them from being reread, and checkpointing every
                    // 64 MiB of WAL instead of 4 writes each page back once for many batches:
                    // together 9,700 -> 13,800 observations/s at 200,000 (docs/benchmarks.md).
                    // Statement journals in memory, not in a temporary file: 7 % more.
                    .pragma("cache_size", "-65536")
                    .pragma("wal_autocheckpoint", "16384")
                    .pragma("temp_store", "memory");
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
}

#[async_trait::async_trait]
impl Flavour for Sqlite {
    const BACKEND: Backend = BACKEND;
    const DIALECT: Dialect = Dialect {
        placeholder: |_| "?".to_string(),
        least: "min",
        greatest: "max",
    };
    // IMMEDIATE takes the write lock up front (waiting up to the busy timeout); a deferred
    // transaction that reads first can fail outright when it later upgrades to write.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const SELECT_OBSERVATIONS: &'static str = "SELECT o.id, o.scan_id, o.ip, o.port, o.scheme, \
         o.observed_at, o.status, o.error, o.tls, o.http_server, o.fingerprint, \
         o.exchange_family, o.exchange_build, o.exchange_version_name, o.exchange_support, \
         o.exchange_verdict, o.exchange_facts_id, o.attribution, o.asn, o.country \
         FROM observations o";
    const JSON_PARAM: &'static str = "";

    // A writing transaction already holds the database's write lock (BEGIN IMMEDIATE).
    fn row_lock(_: &'static str) -> &'static str {
        ""
    }

    fn ip_text(column: &str) -> String {
        column.to_string()
    }

    fn json_text(column: &str) -> String {
        column.to_string()
    }

    fn in_list(column: &str, param: &str) -> String {
        format!("{column} IN (SELECT value FROM json_each({param}))")
    }

    // One probe of UNIQUE (scan_id, ip, port) per scan.
    fn in_subquery(column: &str, subquery: &str) -> String {
        format!("{column} IN ({subquery})")
    }

    fn bind<'q>(query: Query<'q, Self>, value: &'q Native) -> Result<Query<'q, Self>, StoreError> {
        Ok(match value {
            Native::Ip(ip) => query.bind(ip.to_string()),
            Native::Time(t, what) => query.bind(timestamp_text(*t, what)?),
            Native::OptTime(t, what) => query.bind(t.map(|t| timestamp_text(t, what)).transpose()?),
            Native::Date(d, what) => query.bind(date_text(*d, what)?),
            Native::OptDate(d, what) => query.bind(d.map(|d| date_text(d, what)).transpose()?),
            Native::Ports(ports) => query.bind(json_list(ports, "the new scan's ports")?),
            Native::Ids(ids) => query.bind(json_list(ids, "a list of row ids")?),
        })
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn time(row: &SqliteRow, column: &'static str) -> Result<Option<OffsetDateTime>, StoreError> {
        get::<Option<String>>(row, column)?
            .map(|text| parse_timestamp(&text).ok_or_else(|| corrupt(column)))
            .transpose()
    }

    fn date(row: &SqliteRow, column: &'static str) -> Result<Option<Date>, StoreError> {
        get::<Option<String>>(row, column)?
            .map(|text| Date::parse(&text, DATE).map_err(|_| corrupt(column)))
            .transpose()
    }

    fn ports(row: &SqliteRow, column: &'static str) -> Result<Vec<i64>, StoreError> {
        serde_json::from_str(&get::<String>(row, column)?).map_err(|_| corrupt(column))
    }

    async fn store_facts(
        conn: &mut SqliteConnection,
        batch: &Prepared<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let (digests, bodies) = batch.distinct_facts();
        let mut ids = HashMap::new();
        let action = "store verdict facts";
        // Two binds a row: far below SQLite's limit per statement.
        for (digests, bodies) in digests
            .chunks(rows::INSERT_CHUNK)
            .zip(bodies.chunks(rows::INSERT_CHUNK))
        {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO verdict_facts (digest, body) ");
            insert.push_values(digests.iter().zip(bodies), |mut row, (d, b)| {
                row.push_bind(*d);
                row.push_bind(*b);
            });
            insert.push(" ON CONFLICT (digest) DO NOTHING");
            insert
                .build()
                .execute(&mut *conn)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            let mut select = QueryBuilder::<Sqlite>::new(
                "SELECT id, digest FROM verdict_facts WHERE digest IN (",
            );
            let mut list = select.separated(", ");
            for d in digests {
                list.push_bind(*d);
            }
            select.push(")");
            for row in select
                .build()
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::query(BACKEND, action))?
            {
                ids.insert(get(&row, "digest")?, get(&row, "id")?);
            }
        }
        batch.fact_ids(&ids)
    }

    // ON CONFLICT DO NOTHING: a stored target is skipped however the batch is asked to go in.
    async fn write_observations(
        conn: &mut SqliteConnection,
        scan: ScanId,
        batch: &Prepared<'_>,
        facts: &[i64],
        _: Insert,
    ) -> Result<u64, StoreError> {
        // SQLite's worker thread inserts one chunk while this task encodes the next.
        let chunks = batch.encoded_chunks(OBSERVATION_CHUNK).map(|columns| {
            columns?
                .into_iter()
                .map(|c| {
                    let observed_at =
                        timestamp_text(c.observed_at, "an observation's observed_at")?;
                    Ok((c, observed_at))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        });
        overlap::encode_while_writing(chunks, |mut chunks| async move {
            let mut inserted = 0;
            while let Some(chunk) = chunks.recv().await {
                inserted += insert_observations(conn, scan, &chunk, facts).await?;
            }
            Ok(inserted)
        })
        .await
    }
}

/// One multi-row INSERT of a chunk of observations (with each one's observed_at as text);
/// how many went in.
async fn insert_observations(
    conn: &mut SqliteConnection,
    scan: ScanId,
    chunk: &[(Columns, String)],
    facts: &[i64],
) -> Result<u64, StoreError> {
    let mut insert =
        QueryBuilder::<Sqlite>::new(format!("INSERT INTO observations ({OBSERVATION_COLUMNS}) "));
    insert.push_values(chunk, |mut row, (c, observed_at)| {
        row.push_bind(scan.0);
        row.push_bind(c.ip.to_string());
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
        row.push_bind(&c.exchange_cu);
        row.push_bind(c.exchange_patch);
        row.push_bind(rows::facts_id(facts, c));
        row.push_bind(&c.organisation);
        row.push_bind(c.sector);
        row.push_bind(&c.attribution);
        row.push_bind(c.asn);
        row.push_bind(&c.country);
    });
    // Idempotent per (scan, ip, port): a resumed scan or overlapping target lists store each
    // target once; the first observation stands.
    insert.push(" ON CONFLICT (scan_id, ip, port) DO NOTHING");
    Ok(insert
        .build()
        .execute(conn)
        .await
        .map_err(|e| insert_error(scan, e))?
        .rows_affected())
}

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

fn date_text(date: Date, what: &'static str) -> Result<String, StoreError> {
    date.format(DATE)
        .map_err(|_| StoreError::Unencodable { what: what.into() })
}

/// Reads what [`timestamp_text`] wrote, and any other RFC 3339 text a person may have put there.
fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(text, TIMESTAMP)
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(text, &Rfc3339))
        .ok()
}

fn json_list<T: serde::Serialize>(list: &[T], what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(|_| StoreError::Unencodable { what: what.into() })
}

fn corrupt(column: &str) -> StoreError {
    StoreError::corrupt(format!("column {column}"))
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
