//! The store written once for both backends: every statement and row mapping that is the same
//! on PostgreSQL and SQLite, generic over sqlx's [`Database`].
//!
//! A backend supplies only what genuinely differs, as a [`Flavour`]: how values are bound and
//! read back (native times, dates, addresses and arrays, or text), a few spellings, and how a
//! batch of observations goes in. The store traits are implemented once, by aggregate:
//! `scans.rs` ([`crate::ScanStore`]), `reads.rs` ([`crate::CensusStore`]), `registry.rs`
//! (registry, tokens and the export log) and `notify.rs` ([`crate::NotificationStore`]).
//!
//! Statements are [`Sql`] values: text with `$n` parameters (sqlx's SQLite driver numbers
//! `$n` as PostgreSQL does) and the [`Bind`] values in order, so that only the one impl of
//! [`Exec`] states sqlx's encoding and executor bounds.

mod notify;
mod reads;
mod registry;
mod scans;

use std::net::IpAddr;

use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};
use surveyor_model::Observation;
use time::{Date, OffsetDateTime};

use crate::census::{self, Dialect};
use crate::rows::{self, FactsCache, Prepared, StoredObservation, StoredScan};
use crate::{Backend, ScanId, ScanRecord, StoreError};

/// One store on one connection pool; [`crate::ScanStore`] and the other traits are
/// implemented for every [`Flavour`].
pub(crate) struct SqlStore<F: Database> {
    pub(crate) pool: Pool<F>,
}

/// A bound value of a statement, as the model has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    Int(i64),
    /// A PostgreSQL INTEGER (ports, counts of attempts).
    Int4(i32),
    Text(String),
    Bool(bool),
    OptInt(Option<i64>),
    OptText(Option<String>),
    /// A value each backend binds in its own form ([`Flavour::bind`]).
    Native(Native),
}

/// A value PostgreSQL binds as its own type and SQLite as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Native {
    Ip(IpAddr),
    /// A point in time, stored to the microsecond, and what it is for the error when the
    /// backend cannot store it.
    Time(OffsetDateTime, &'static str),
    OptTime(Option<OffsetDateTime>, &'static str),
    Date(Date, &'static str),
    OptDate(Option<Date>, &'static str),
    /// A scan's ports: an INTEGER[] or a JSON list.
    Ports(Vec<u16>),
    /// Row ids: a BIGINT[] or a JSON list, for [`Flavour::in_list`].
    Ids(Vec<i64>),
}

impl From<Native> for Bind {
    fn from(value: Native) -> Bind {
        Bind::Native(value)
    }
}

impl From<i64> for Bind {
    fn from(i: i64) -> Bind {
        Bind::Int(i)
    }
}

impl From<i32> for Bind {
    fn from(i: i32) -> Bind {
        Bind::Int4(i)
    }
}

impl From<ScanId> for Bind {
    fn from(scan: ScanId) -> Bind {
        Bind::Int(scan.0)
    }
}

impl From<bool> for Bind {
    fn from(b: bool) -> Bind {
        Bind::Bool(b)
    }
}

impl From<&str> for Bind {
    fn from(s: &str) -> Bind {
        Bind::Text(s.to_string())
    }
}

impl From<String> for Bind {
    fn from(s: String) -> Bind {
        Bind::Text(s)
    }
}

impl From<Option<i64>> for Bind {
    fn from(i: Option<i64>) -> Bind {
        Bind::OptInt(i)
    }
}

impl From<Option<&str>> for Bind {
    fn from(s: Option<&str>) -> Bind {
        Bind::OptText(s.map(str::to_string))
    }
}

impl From<IpAddr> for Bind {
    fn from(ip: IpAddr) -> Bind {
        Bind::Native(Native::Ip(ip))
    }
}

/// A statement and its parameters in order.
#[derive(Debug)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    /// Adds the next parameter (`$1`, `$2`, … in the text).
    pub(crate) fn bind(mut self, value: impl Into<Bind>) -> Sql {
        self.binds.push(value.into());
        self
    }
}

/// A statement of backend `F` as sqlx builds it.
pub(crate) type Query<'q, F> = sqlx::query::Query<'q, F, <F as Database>::Arguments<'q>>;

/// How a batch of observations goes into `observations` ([`Flavour::write_observations`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The backend's fastest way: on PostgreSQL a binary COPY, which fails whole on a target
    /// the scan already stored.
    Fast,
    /// Keeps what is stored and adds the rest.
    SkipStored,
}

/// What one backend does its own way. The shared code reads rows through [`get`] for the
/// types both backends decode alike (the bounds on `Row`), and through the methods here for
/// the rest.
#[async_trait::async_trait]
pub(crate) trait Flavour:
    Database<
    Row: Column<i64>
             + Column<Option<i64>>
             + Column<i32>
             + Column<String>
             + Column<Option<String>>
             + Column<bool>,
>
{
    const BACKEND: Backend;
    /// How `census.rs` spells its statements for this backend.
    const DIALECT: Dialect;
    /// The statement that begins a transaction which writes.
    const BEGIN_WRITE: &'static str;
    /// `SELECT … FROM observations o` with the columns [`observation_from_row`] reads. The
    /// verdict facts a row refers to are read once per distinct id
    /// ([`SqlStore::facts_of`]), not once per row.
    const SELECT_OBSERVATIONS: &'static str;
    /// What follows a text parameter that fills a JSON column.
    const JSON_PARAM: &'static str;

    /// `lock` (e.g. " FOR UPDATE") where the backend locks rows, or nothing.
    fn row_lock(lock: &'static str) -> &'static str;
    /// An address column as text.
    fn ip_text(column: &str) -> String;
    /// A JSON column as text.
    fn json_text(column: &str) -> String;
    /// The condition that `column` is one of the ids of the [`Native::Ids`] `param`.
    fn in_list(column: &str, param: &str) -> String;
    /// The condition that `column` is one of the ids `subquery` selects.
    fn in_subquery(column: &str, subquery: &str) -> String;

    /// Binds one value; fails with `Unencodable` for a value the backend cannot store.
    fn bind<'q>(query: Query<'q, Self>, value: &'q Native) -> Result<Query<'q, Self>, StoreError>;
    fn rows_affected(done: &Self::QueryResult) -> u64;
    /// A column of times; `None` for NULL.
    fn time(row: &Self::Row, column: &'static str) -> Result<Option<OffsetDateTime>, StoreError>;
    /// A column of dates; `None` for NULL.
    fn date(row: &Self::Row, column: &'static str) -> Result<Option<Date>, StoreError>;
    /// A column of [`Native::Ports`].
    fn ports(row: &Self::Row, column: &'static str) -> Result<Vec<i64>, StoreError>;

    /// Stores the distinct verdict facts of a batch (each once, whoever wrote it first) and
    /// returns their ids, in the batch's order of facts ([`Prepared::fact_ids`]).
    async fn store_facts(
        conn: &mut Self::Connection,
        batch: &Prepared<'_>,
    ) -> Result<Vec<i64>, StoreError>;

    /// Writes a batch's rows; how many went in.
    async fn write_observations(
        conn: &mut Self::Connection,
        scan: ScanId,
        batch: &Prepared<'_>,
        facts: &[i64],
        insert: Insert,
    ) -> Result<u64, StoreError>;
}

/// Runs [`Sql`] on a connection of any [`Flavour`]. sqlx's executor bounds are stated once,
/// on the one impl, instead of on every generic function.
#[async_trait::async_trait]
pub(crate) trait Exec: Flavour {
    /// The statement with its values bound.
    fn query(sql: &Sql) -> Result<Query<'_, Self>, StoreError>;

    async fn all(
        conn: &mut Self::Connection,
        sql: &Sql,
        action: &'static str,
    ) -> Result<Vec<Self::Row>, StoreError>;

    async fn optional(
        conn: &mut Self::Connection,
        sql: &Sql,
        action: &'static str,
    ) -> Result<Option<Self::Row>, StoreError>;

    /// How many rows the statement changed.
    async fn execute(
        conn: &mut Self::Connection,
        sql: &Sql,
        action: &'static str,
    ) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl<F> Exec for F
where
    F: Flavour,
    for<'c> &'c mut F::Connection: Executor<'c, Database = F>,
    for<'q> <F as Database>::Arguments<'q>: IntoArguments<'q, F>,
    for<'q> i64: Encode<'q, F> + Type<F>,
    for<'q> i32: Encode<'q, F> + Type<F>,
    for<'q> &'q str: Encode<'q, F> + Type<F>,
    for<'q> bool: Encode<'q, F> + Type<F>,
    for<'q> Option<i64>: Encode<'q, F> + Type<F>,
    for<'q> Option<&'q str>: Encode<'q, F> + Type<F>,
{
    fn query(sql: &Sql) -> Result<Query<'_, F>, StoreError> {
        sql.binds
            .iter()
            .try_fold(sqlx::query::<F>(&sql.text), |query, value| {
                Ok(match value {
                    Bind::Int(i) => query.bind(*i),
                    Bind::Int4(i) => query.bind(*i),
                    Bind::Text(t) => query.bind(t.as_str()),
                    Bind::Bool(b) => query.bind(*b),
                    Bind::OptInt(i) => query.bind(*i),
                    Bind::OptText(t) => query.bind(t.as_deref()),
                    Bind::Native(native) => F::bind(query, native)?,
                })
            })
    }

    async fn all(
        conn: &mut F::Connection,
        sql: &Sql,
        action: &'static str,
    ) -> Result<Vec<F::Row>, StoreError> {
        F::query(sql)?
            .fetch_all(conn)
            .await
            .map_err(StoreError::query(F::BACKEND, action))
    }

    async fn optional(
        conn: &mut F::Connection,
        sql: &Sql,
        action: &'static str,
    ) -> Result<Option<F::Row>, StoreError> {
        F::query(sql)?
            .fetch_optional(conn)
            .await
            .map_err(StoreError::query(F::BACKEND, action))
    }

    async fn execute(
        conn: &mut F::Connection,
        sql: &Sql,
        action: &'static str,
    ) -> Result<u64, StoreError> {
        let done = F::query(sql)?
            .execute(conn)
            .await
            .map_err(StoreError::query(F::BACKEND, action))?;
        Ok(F::rows_affected(&done))
    }
}

/// A column both backends decode alike; a value of the wrong type is a corrupt row, not a
/// failed query.
pub(crate) trait Column<T> {
    fn column(&self, name: &'static str) -> Result<T, StoreError>;
    fn column_at(&self, index: usize) -> Result<T, StoreError>;
}

impl<R, T> Column<T> for R
where
    R: Row,
    T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    for<'n> &'n str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
{
    fn column(&self, name: &'static str) -> Result<T, StoreError> {
        self.try_get(name)
            .map_err(|_| StoreError::corrupt(format!("column {name}")))
    }

    fn column_at(&self, index: usize) -> Result<T, StoreError> {
        self.try_get(index)
            .map_err(|_| StoreError::corrupt(format!("column {index}")))
    }
}

/// One column of a row ([`Column`]).
pub(crate) fn get<T>(row: &impl Column<T>, column: &'static str) -> Result<T, StoreError> {
    row.column(column)
}

impl<F: Exec> SqlStore<F> {
    /// Every row of a statement run on a pooled connection.
    pub(crate) async fn all(
        &self,
        sql: &Sql,
        action: &'static str,
    ) -> Result<Vec<F::Row>, StoreError> {
        F::all(&mut *self.acquire(action).await?, sql, action).await
    }

    pub(crate) async fn optional(
        &self,
        sql: &Sql,
        action: &'static str,
    ) -> Result<Option<F::Row>, StoreError> {
        F::optional(&mut *self.acquire(action).await?, sql, action).await
    }

    /// The one row a statement (an INSERT … RETURNING) gives.
    pub(crate) async fn one(&self, sql: &Sql, action: &'static str) -> Result<F::Row, StoreError> {
        let row = self.optional(sql, action).await?;
        row.ok_or_else(|| StoreError::query(F::BACKEND, action)(sqlx::Error::RowNotFound))
    }

    pub(crate) async fn execute(&self, sql: &Sql, action: &'static str) -> Result<u64, StoreError> {
        F::execute(&mut *self.acquire(action).await?, sql, action).await
    }

    /// A transaction that writes; failing to start one is a query error of `action`.
    pub(crate) async fn begin(
        &self,
        action: &'static str,
    ) -> Result<Transaction<'static, F>, StoreError> {
        self.pool
            .begin_with(F::BEGIN_WRITE)
            .await
            .map_err(StoreError::query(F::BACKEND, action))
    }

    async fn acquire(
        &self,
        action: &'static str,
    ) -> Result<sqlx::pool::PoolConnection<F>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(StoreError::query(F::BACKEND, action))
    }

    /// Whether a scan is finished and whether it was pruned; `UnknownScan` when there is none.
    pub(crate) async fn scan_state(&self, scan: ScanId) -> Result<ScanState, StoreError> {
        scan_state::<F>(&mut *self.acquire("look up a scan").await?, scan, "").await
    }

    /// Fails with `ScanPruned` for a pruned scan: its observations are gone.
    pub(crate) async fn readable(&self, scan: ScanId) -> Result<(), StoreError> {
        match self.scan_state(scan).await? {
            ScanState { pruned: true, .. } => Err(StoreError::ScanPruned(scan)),
            _ => Ok(()),
        }
    }

    /// The verdict facts `rows` refer to, each read and parsed once.
    pub(crate) async fn facts_of(&self, rows: &[F::Row]) -> Result<FactsCache, StoreError> {
        let mut ids = rows
            .iter()
            .filter_map(|row| get::<Option<i64>>(row, "exchange_facts_id").transpose())
            .collect::<Result<Vec<i64>, StoreError>>()?;
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(FactsCache::new());
        }
        let sql = Sql::new(format!(
            "SELECT id, {} AS body FROM verdict_facts WHERE {}",
            F::json_text("body"),
            F::in_list("id", "$1")
        ))
        .bind(Native::Ids(ids));
        let facts = self.all(&sql, "read verdict facts").await?;
        rows::facts_cache(
            facts
                .iter()
                .map(|row| Ok((get(row, "id")?, get(row, "body")?)))
                .collect::<Result<Vec<(i64, String)>, StoreError>>()?,
        )
    }

    /// The observations of `rows` ([`Flavour::SELECT_OBSERVATIONS`]) with their row ids, in
    /// their order, each verdict with its facts.
    pub(crate) async fn observations_of(
        &self,
        rows: &[F::Row],
    ) -> Result<Vec<(i64, Observation)>, StoreError> {
        let facts = self.facts_of(rows).await?;
        rows.iter()
            .map(|row| {
                let stored = observation_from_row::<F>(row)?;
                Ok((stored.id, stored.into_model(&facts)?))
            })
            .collect()
    }

    pub(crate) async fn fetch_scans(&self, sql: &Sql) -> Result<Vec<ScanRecord>, StoreError> {
        let rows = self.all(sql, "read scans").await?;
        rows.iter().map(scan_from_row::<F>).collect()
    }
}

/// Whether a scan is finished and whether it was pruned.
pub(crate) struct ScanState {
    pub finished: bool,
    pub pruned: bool,
    pub judgement: census::JudgementState,
}

/// Reads a scan's state, with `lock` (from [`Flavour::row_lock`]) appended to the SELECT.
pub(crate) async fn scan_state<F: Exec>(
    conn: &mut F::Connection,
    scan: ScanId,
    lock: &str,
) -> Result<ScanState, StoreError> {
    let sql = Sql::new(format!(
        "SELECT finished_at IS NOT NULL AS finished, pruned_at IS NOT NULL AS pruned, \
         judged_from, projection FROM scans WHERE id = $1{lock}"
    ))
    .bind(scan);
    let row = F::optional(conn, &sql, "look up a scan")
        .await?
        .ok_or(StoreError::UnknownScan(scan))?;
    Ok(ScanState {
        finished: get(&row, "finished")?,
        pruned: get(&row, "pruned")?,
        judgement: census::JudgementState {
            judged_from: get::<Option<i64>>(&row, "judged_from")?.map(ScanId),
            projection: get(&row, "projection")?,
        },
    })
}

/// Recomputes a scan's census aggregates and folds its observations into `hosts`.
pub(crate) async fn refresh_census<F: Exec>(
    conn: &mut F::Connection,
    scan: ScanId,
    state: &ScanState,
) -> Result<(), StoreError> {
    for sql in census::census_statements(&F::DIALECT, scan, &state.judgement) {
        F::execute(conn, &sql, "store the census of a scan").await?;
    }
    Ok(())
}

const SELECT_SCANS: &str = "SELECT s.id, s.started_at, s.finished_at, s.as_of, s.targets, \
     s.ports, s.tool_version, s.pruned_at, s.observation_count AS observations, s.kb_digest, \
     s.kb_newest_release, s.judged_at, s.judged_from, s.projection, s.superseded_by \
     FROM scans s";

fn scan_from_row<F: Flavour>(row: &F::Row) -> Result<ScanRecord, StoreError> {
    let id: i64 = get(row, "id")?;
    let corrupt = |column: &str| StoreError::corrupt(format!("scans.{column} of scan {id}"));
    let time = |column| F::time(row, column).map_err(|_| corrupt(column));
    let date = |column| F::date(row, column).map_err(|_| corrupt(column));
    StoredScan {
        id,
        started_at: time("started_at")?.ok_or_else(|| corrupt("started_at"))?,
        finished_at: time("finished_at")?,
        as_of: date("as_of")?.ok_or_else(|| corrupt("as_of"))?,
        targets: get(row, "targets")?,
        ports: F::ports(row, "ports").map_err(|_| corrupt("ports"))?,
        tool_version: get(row, "tool_version")?,
        observations: get(row, "observations")?,
        pruned_at: time("pruned_at")?,
        kb_digest: get(row, "kb_digest")?,
        kb_newest_release: date("kb_newest_release")?,
        judged_at: time("judged_at")?,
        judged_from: get(row, "judged_from")?,
        projection: get(row, "projection")?,
        superseded_by: get(row, "superseded_by")?,
    }
    .into_model()
}

fn observation_from_row<F: Flavour>(row: &F::Row) -> Result<StoredObservation, StoreError> {
    let id: i64 = get(row, "id")?;
    Ok(StoredObservation {
        id,
        ip: get(row, "ip")?,
        port: i64::from(get::<i32>(row, "port")?),
        scheme: get(row, "scheme")?,
        observed_at: F::time(row, "observed_at")
            .ok()
            .flatten()
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
        exchange_facts_id: get(row, "exchange_facts_id")?,
        attribution: get(row, "attribution")?,
        asn: get(row, "asn")?,
        country: get(row, "country")?,
    })
}

/// `($1, $2, …), ($5, …)`: `rows` rows of one parameter per cast, each followed by its cast
/// (e.g. [`Flavour::JSON_PARAM`]), for a multi-row INSERT.
pub(crate) fn values(rows: usize, casts: &[&str]) -> String {
    (0..rows)
        .map(|row| {
            let params: Vec<String> = casts
                .iter()
                .enumerate()
                .map(|(i, cast)| format!("${}{cast}", row * casts.len() + i + 1))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_number_parameters_row_by_row() {
        assert_eq!(
            values(2, &["", "::jsonb"]),
            "($1, $2::jsonb), ($3, $4::jsonb)"
        );
        assert_eq!(values(0, &[""]), "");
    }
}
