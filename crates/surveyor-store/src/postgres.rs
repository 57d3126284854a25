//! The PostgreSQL backend: native TIMESTAMPTZ, DATE, INET, INTEGER[] and JSONB columns,
//! batches COPYed in binary. The statements both backends share are in `sql/`.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{Executor, Postgres, Row};
use time::{Date, OffsetDateTime};

use crate::census::Dialect;
use crate::overlap;
use crate::pg_copy::{self, BinaryRows};
use crate::rows::{self, Columns, Prepared, OBSERVATION_COLUMNS};
use crate::sql::{get, Flavour, Insert, Native, Query, SqlStore};
use crate::{Backend, OpenOptions, ScanId, StoreError};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

const BACKEND: Backend = Backend::Postgres;

/// Enough for the API's readers and one scan writer; PostgreSQL's default limit is 100.
const MAX_CONNECTIONS: u32 = 8;
/// How long a caller waits for a pooled connection (or the first connect) before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type PgStore = SqlStore<Postgres>;

impl PgStore {
    pub(crate) async fn connect(
        mut options: PgConnectOptions,
        open: &OpenOptions,
    ) -> Result<PgStore, StoreError> {
        let target = crate::url::describe_pg(&options);
        if options.get_application_name().is_none() {
            options = options.application_name("surveyor");
        }
        if let Some(timeout) = open.statement_timeout {
            // A startup option rather than a SET: every connection the pool opens has it.
            options = options.options([("statement_timeout", timeout_millis(timeout))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                backend: BACKEND,
                target: target.clone(),
                source,
            })?;
        migrate(&pool).await?;
        tracing::debug!(%target, "opened PostgreSQL store");
        Ok(PgStore { pool })
    }
}

#[async_trait::async_trait]
impl Flavour for Postgres {
    const BACKEND: Backend = BACKEND;
    const DIALECT: Dialect = Dialect {
        placeholder: |n| format!("${n}"),
        least: "LEAST",
        greatest: "GREATEST",
    };
    const BEGIN_WRITE: &'static str = "BEGIN";
    const SELECT_OBSERVATIONS: &'static str = "SELECT o.id, o.scan_id, host(o.ip) AS ip, \
         o.port, o.scheme, o.observed_at, o.status, o.error, o.tls::text AS tls, o.http_server, \
         o.fingerprint::text AS fingerprint, o.exchange_family, o.exchange_build, \
         o.exchange_version_name, o.exchange_support, \
         o.exchange_verdict::text AS exchange_verdict, o.exchange_facts_id, \
         o.attribution::text AS attribution, o.asn, o.country \
         FROM observations o";
    const JSON_PARAM: &'static str = "::jsonb";

    fn row_lock(lock: &'static str) -> &'static str {
        lock
    }

    fn ip_text(column: &str) -> String {
        format!("host({column})")
    }

    fn json_text(column: &str) -> String {
        format!("{column}::text")
    }

    fn in_list(column: &str, param: &str) -> String {
        format!("{column} = ANY({param})")
    }

    // ANY(ARRAY(…)) rather than IN (…): the planner then probes the key once per scan
    // instead of joining.
    fn in_subquery(column: &str, subquery: &str) -> String {
        format!("{column} = ANY(ARRAY({subquery}))")
    }

    fn bind<'q>(query: Query<'q, Self>, value: &'q Native) -> Result<Query<'q, Self>, StoreError> {
        Ok(match value {
            Native::Ip(ip) => query.bind(*ip),
            // PostgreSQL rounds to the microsecond; the store truncates, as SQLite does.
            Native::Time(t, _) => query.bind(rows::truncate_to_micros(*t)),
            Native::OptTime(t, _) => query.bind(t.map(rows::truncate_to_micros)),
            Native::Date(d, _) => query.bind(*d),
            Native::OptDate(d, _) => query.bind(*d),
            Native::Ports(ports) => {
                query.bind(ports.iter().map(|&p| i32::from(p)).collect::<Vec<_>>())
            }
            Native::Ids(ids) => query.bind(ids.as_slice()),
        })
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn time(row: &PgRow, column: &'static str) -> Result<Option<OffsetDateTime>, StoreError> {
        typed(row, column)
    }

    fn date(row: &PgRow, column: &'static str) -> Result<Option<Date>, StoreError> {
        typed(row, column)
    }

    fn ports(row: &PgRow, column: &'static str) -> Result<Vec<i64>, StoreError> {
        let ports: Vec<i32> = typed(row, column)?;
        Ok(ports.into_iter().map(i64::from).collect())
    }

    async fn store_facts(
        conn: &mut PgConnection,
        batch: &Prepared<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let (digests, bodies) = batch.distinct_facts();
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let action = "store verdict facts";
        // Sorted digests: concurrent batches take the unique-index locks in one order.
        sqlx::query(
            "INSERT INTO verdict_facts (digest, body) \
             SELECT d, b::jsonb FROM UNNEST($1::text[], $2::text[]) AS t (d, b) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&digests)
        .bind(&bodies)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        let rows =
            sqlx::query("SELECT id, digest FROM verdict_facts WHERE digest = ANY($1::text[])")
                .bind(&digests)
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
        let ids: HashMap<String, i64> = rows
            .iter()
            .map(|row| Ok((get(row, "digest")?, get(row, "id")?)))
            .collect::<Result<_, StoreError>>()?;
        batch.fact_ids(&ids)
    }

    async fn write_observations(
        conn: &mut PgConnection,
        scan: ScanId,
        batch: &Prepared<'_>,
        facts: &[i64],
        insert: Insert,
    ) -> Result<u64, StoreError> {
        match insert {
            Insert::Fast => copy_observations(conn, scan, batch, facts).await,
            Insert::SkipStored => {
                let columns = batch.encode()?;
                insert_observations(conn, scan, &columns, facts).await
            }
        }
    }
}

/// Applies the migrations on one connection of the pool without the statement timeout: a
/// migration may rewrite a large table, which the timeout meant for readers must not stop.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let migrate_error = |source| StoreError::Migrate {
        backend: BACKEND,
        source,
    };
    let mut conn = pool.acquire().await.map_err(|e| migrate_error(e.into()))?;
    conn.execute("SET statement_timeout = 0")
        .await
        .map_err(|e| migrate_error(e.into()))?;
    MIGRATOR.run(&mut *conn).await.map_err(migrate_error)?;
    // RESET returns to the connection's startup value, the store's timeout.
    conn.execute("RESET statement_timeout")
        .await
        .map_err(|e| migrate_error(e.into()))?;
    Ok(())
}

/// PostgreSQL's statement_timeout in whole milliseconds, at least 1 (0 would turn it off) and
/// at most the largest it takes.
fn timeout_millis(timeout: Duration) -> u128 {
    timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .clamp(1, i32::MAX as u128)
}

/// Rows per piece of the COPY stream: the server stores one piece while the next is encoded.
const COPY_CHUNK: usize = 100;

/// COPYs a batch in PostgreSQL's binary format, piece by piece as it is encoded. Returns how
/// many rows went in.
async fn copy_observations(
    conn: &mut PgConnection,
    scan: ScanId,
    batch: &rows::Prepared<'_>,
    facts: &[i64],
) -> Result<u64, StoreError> {
    let pieces = batch.encoded_chunks(COPY_CHUNK).map(|columns| {
        let mut rows = BinaryRows::new(23);
        for c in &columns? {
            rows.row();
            rows.field(&scan.0)?;
            rows.field(&c.ip)?;
            rows.field(&c.port)?;
            rows.field(&c.scheme)?;
            rows.field(&c.observed_at)?;
            rows.field(&c.status)?;
            rows.field(&c.error)?;
            // json's binary form is its text.
            rows.field(&c.tls)?;
            rows.field(&c.http_server)?;
            rows.field(&c.fingerprint)?;
            rows.field(&c.exchange_family)?;
            rows.field(&c.exchange_build)?;
            rows.field(&c.exchange_version_name)?;
            rows.field(&c.exchange_support)?;
            rows.field(&c.exchange_verdict)?;
            rows.field(&c.exchange_cu)?;
            rows.field(&c.exchange_patch)?;
            rows.field(&rows::facts_id(facts, c))?;
            rows.field(&c.organisation)?;
            rows.field(&c.sector)?;
            rows.field(&c.attribution)?;
            rows.field(&c.asn)?;
            rows.field(&c.country)?;
        }
        Ok(rows.finish())
    });
    let action = "record observations";
    overlap::encode_while_writing(pieces, |mut pieces| async move {
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY observations ({OBSERVATION_COLUMNS}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        copy.send(pg_copy::HEADER.as_slice())
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        while let Some(piece) = pieces.recv().await {
            copy.send(piece)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
        }
        copy.send(pg_copy::TRAILER.as_slice())
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        copy.finish()
            .await
            .map_err(StoreError::query(BACKEND, action))
    })
    .await
}

/// Inserts a batch as one statement of column arrays (UNNEST): one plan whatever the batch
/// size, and each value travels in binary, none as a bind parameter of its own. Returns how
/// many rows went in.
async fn insert_observations(
    conn: &mut PgConnection,
    scan: ScanId,
    columns: &[Columns],
    facts: &[i64],
) -> Result<u64, StoreError> {
    fn column<'a, T>(columns: &'a [Columns], f: impl Fn(&'a Columns) -> T) -> Vec<T> {
        columns.iter().map(f).collect()
    }
    let sql = format!(
        "INSERT INTO observations ({OBSERVATION_COLUMNS}) \
         SELECT $1, * FROM UNNEST($2::inet[], $3::int4[], $4::text[], $5::timestamptz[], \
         $6::text[], $7::text[], $8::json[], $9::text[], $10::json[], $11::text[], $12::text[], \
         $13::text[], $14::text[], $15::json[], $16::text[], $17::text[], $18::int8[], \
         $19::text[], $20::text[], $21::json[], $22::int8[], $23::text[]) \
         ON CONFLICT (scan_id, ip, port) DO NOTHING"
    );
    let done = sqlx::query(&sql)
        .bind(scan.0)
        .bind(column(columns, |c| c.ip))
        .bind(column(columns, |c| c.port))
        .bind(column(columns, |c| c.scheme))
        .bind(column(columns, |c| c.observed_at))
        .bind(column(columns, |c| c.status))
        .bind(column(columns, |c| c.error.as_deref()))
        .bind(column(columns, |c| c.tls.as_deref()))
        .bind(column(columns, |c| c.http_server.as_deref()))
        .bind(column(columns, |c| c.fingerprint.as_str()))
        .bind(column(columns, |c| c.exchange_family))
        .bind(column(columns, |c| c.exchange_build.as_deref()))
        .bind(column(columns, |c| c.exchange_version_name.as_deref()))
        .bind(column(columns, |c| c.exchange_support))
        .bind(column(columns, |c| c.exchange_verdict.as_deref()))
        .bind(column(columns, |c| c.exchange_cu.as_deref()))
        .bind(column(columns, |c| c.exchange_patch))
        .bind(column(columns, |c| rows::facts_id(facts, c)))
        .bind(column(columns, |c| c.organisation.as_deref()))
        .bind(column(columns, |c| c.sector))
        .bind(column(columns, |c| c.attribution.as_deref()))
        .bind(column(columns, |c| c.asn))
        .bind(column(columns, |c| c.country.as_deref()))
        .execute(conn)
        .await
        .map_err(StoreError::query(BACKEND, "record observations"))?;
    Ok(done.rows_affected())
}

/// A column of a type only PostgreSQL has (times, dates, arrays).
fn typed<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|_| StoreError::corrupt(format!("column {column}")))
}
