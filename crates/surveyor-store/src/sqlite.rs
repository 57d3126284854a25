//! The SQLite backend: one file in WAL mode, timestamps as fixed-width RFC 3339 text.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use surveyor_model::{ExchangeServer, Observation, Organisation};
use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::census::{self, Bind, Dialect, Sql};
use crate::overlap;
use crate::rows::{self, Columns, FactsCache, StoredObservation, StoredScan};
use crate::url::SqliteLocation;
use crate::{
    Backend, CensusFilter, CensusGroup, CensusStore, Dimension, HostDetail, Judgements,
    NewJudgement, NewScan, ObservationCursor, PrunePolicy, PruneReport, RegistryImport,
    RegistryStore, ScanId, ScanRecord, ScanStore, ServerCursor, ServersPage, StoreError,
    TrendPoint,
};
use crate::{ExportOutcome, ExportRecord, NewExport, Role, StoredExport, TokenRecord, TokenStore};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

const BACKEND: Backend = Backend::Sqlite;

const DIALECT: Dialect = Dialect {
    placeholder: |_| "?".to_string(),
    least: "min",
    greatest: "max",
};

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

const SELECT_SCANS: &str = "SELECT s.id, s.started_at, s.finished_at, s.as_of, s.targets, \
     s.ports, s.tool_version, s.pruned_at, s.observation_count AS observations, s.kb_digest, \
     s.kb_newest_release, s.judged_at, s.judged_from, s.projection, s.superseded_by \
     FROM scans s";

/// The columns `observation_from_row` reads, from `observations o`. The verdict facts a row
/// refers to are read once per distinct id (`facts_of`), not once per row.
const SELECT_OBSERVATIONS: &str = "SELECT o.id, o.scan_id, o.ip, o.port, o.scheme, o.observed_at, \
     o.status, o.error, o.tls, o.http_server, o.fingerprint, o.exchange_family, o.exchange_build, \
     o.exchange_version_name, o.exchange_support, o.exchange_verdict, o.exchange_facts_id, \
     o.attribution, o.asn, o.country \
     FROM observations o";

pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
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

    /// Whether a scan is finished and whether it was pruned; `UnknownScan` when there is none.
    async fn scan_state(&self, scan: ScanId) -> Result<ScanState, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::query(BACKEND, "look up a scan"))?;
        scan_state(&mut conn, scan).await
    }

    /// Fails with `ScanPruned` for a pruned scan: its observations are gone.
    async fn readable(&self, scan: ScanId) -> Result<(), StoreError> {
        match self.scan_state(scan).await? {
            ScanState { pruned: true, .. } => Err(StoreError::ScanPruned(scan)),
            _ => Ok(()),
        }
    }

    /// The verdict facts `rows` refer to, each read and parsed once.
    async fn facts_of(&self, rows: &[SqliteRow]) -> Result<FactsCache, StoreError> {
        let mut ids = rows
            .iter()
            .filter_map(|row| get::<Option<i64>>(row, "exchange_facts_id").transpose())
            .collect::<Result<Vec<i64>, StoreError>>()?;
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(FactsCache::new());
        }
        let list = serde_json::to_string(&ids).map_err(|_| StoreError::Unencodable {
            what: "a list of verdict facts ids".into(),
        })?;
        let facts = sqlx::query(
            "SELECT id, body FROM verdict_facts WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(list)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read verdict facts"))?;
        rows::facts_cache(
            facts
                .iter()
                .map(|row| Ok((get(row, "id")?, get(row, "body")?)))
                .collect::<Result<Vec<(i64, String)>, StoreError>>()?,
        )
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
        let newest = scan
            .kb
            .as_ref()
            .map(|k| date_text(k.newest_release))
            .transpose()?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO scans (started_at, as_of, targets, ports, tool_version, kb_digest, \
             kb_newest_release, judged_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?1) RETURNING id",
        )
        .bind(timestamp_text(
            scan.started_at,
            "the new scan's started_at",
        )?)
        .bind(date_text(scan.as_of)?)
        .bind(&scan.targets)
        .bind(ports)
        .bind(&scan.tool_version)
        .bind(scan.kb.as_ref().map(|k| k.digest.as_str()))
        .bind(newest)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "begin a scan"))?;
        Ok(ScanId(id))
    }

    async fn begin_judgement(&self, judgement: &NewJudgement) -> Result<ScanId, StoreError> {
        let source = rows::judgement_source(judgement, self.scan(judgement.source).await?)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO scans (started_at, as_of, targets, ports, tool_version, kb_digest, \
             kb_newest_release, judged_at, judged_from, projection) \
             SELECT started_at, ?2, targets, ports, ?3, ?4, ?5, ?6, id, ?2 <> as_of \
             FROM scans WHERE id = ?1 RETURNING id",
        )
        .bind(source.id.0)
        .bind(date_text(judgement.as_of)?)
        .bind(&judgement.tool_version)
        .bind(&judgement.kb.digest)
        .bind(date_text(judgement.kb.newest_release)?)
        .bind(timestamp_text(
            judgement.judged_at,
            "the judgement's judged_at",
        )?)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "begin a judgement"))?;
        Ok(ScanId(id))
    }

    async fn record(&self, scan: ScanId, batch: &[Observation]) -> Result<(), StoreError> {
        let batch = rows::Prepared::new(batch)?;
        let action = "record observations";
        // IMMEDIATE takes the write lock up front (waiting up to the busy timeout); a deferred
        // transaction that reads first can fail outright when it later upgrades to write.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        let state = scan_state(&mut tx, scan).await?;
        if state.pruned {
            return Err(StoreError::ScanPruned(scan));
        }
        let facts = store_facts(&mut tx, &batch).await?;
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
        let conn = &mut *tx;
        let inserted = overlap::encode_while_writing(chunks, |mut chunks| async move {
            let mut inserted = 0;
            while let Some(chunk) = chunks.recv().await {
                inserted += insert_observations(conn, scan, &chunk, &facts).await?;
            }
            Ok(inserted)
        })
        .await?;
        // Only rows that went in count: a repeated target is skipped by ON CONFLICT.
        sqlx::query("UPDATE scans SET observation_count = observation_count + ? WHERE id = ?")
            .bind(inserted as i64)
            .bind(scan.0)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        // Late observations of a finished scan (a spill file ingested after the scan ended)
        // must reach its census counts and the hosts table.
        if state.finished {
            refresh_census(&mut tx, scan, &state).await?;
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
        let finished_at = timestamp_text(finished_at, "the scan's finished_at")?;
        let action = "finish a scan";
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        let done = sqlx::query("UPDATE scans SET finished_at = ? WHERE id = ?")
            .bind(finished_at)
            .bind(scan.0)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownScan(scan));
        }
        let state = scan_state(&mut tx, scan).await?;
        // A pruned scan's aggregates were computed before its observations went.
        if !state.pruned {
            refresh_census(&mut tx, scan, &state).await?;
        }
        if let Some(sql) = census::supersede_statement(&DIALECT, scan, &state.judgement) {
            execute(&mut tx, &sql, action).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))
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
        let rows = sqlx::query(&format!("{SELECT_OBSERVATIONS} WHERE o.scan_id = ?"))
            .bind(scan.0)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read observations"))?;
        if rows.is_empty() {
            self.readable(scan).await?;
        }
        let facts = self.facts_of(&rows).await?;
        let mut observations = rows
            .iter()
            .map(|row| observation_from_row(row)?.into_model(&facts))
            .collect::<Result<Vec<_>, _>>()?;
        // Text addresses do not sort numerically in SQL ("10.0.0.10" < "10.0.0.2").
        rows::sort_observations(&mut observations);
        Ok(observations)
    }

    async fn observations_page(
        &self,
        scan: ScanId,
        after: Option<ObservationCursor>,
        limit: u32,
    ) -> Result<(Vec<Observation>, Option<ObservationCursor>), StoreError> {
        self.readable(scan).await?;
        // A row-value comparison on UNIQUE (scan_id, ip, port), in the text order of the
        // stored address: one index descent per page.
        let cursor = if after.is_some() {
            "AND (o.ip, o.port) > (?3, ?4) "
        } else {
            ""
        };
        let sql = format!(
            "{SELECT_OBSERVATIONS} WHERE o.scan_id = ?1 {cursor}ORDER BY o.ip, o.port LIMIT ?2"
        );
        let mut query = sqlx::query(&sql).bind(scan.0).bind(i64::from(limit));
        if let Some(c) = after {
            query = query.bind(c.ip.to_string()).bind(i64::from(c.port));
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read a page of observations"))?;
        let facts = self.facts_of(&rows).await?;
        let observations = rows
            .iter()
            .map(|row| observation_from_row(row)?.into_model(&facts))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows::page_of_observations(observations, limit))
    }

    async fn prune(&self, policy: &PrunePolicy, dry_run: bool) -> Result<PruneReport, StoreError> {
        let doomed = census::scans_to_prune(&self.scans().await?, policy);
        let mut report = PruneReport::default();
        for scan in doomed {
            report.pruned.push(scan.id);
            if dry_run {
                report.observations_deleted += scan.observations;
                continue;
            }
            let action = "prune a scan";
            let now = timestamp_text(OffsetDateTime::now_utc(), "the prune time")?;
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            let deleted = sqlx::query("DELETE FROM observations WHERE scan_id = ?")
                .bind(scan.id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            sqlx::query("UPDATE scans SET pruned_at = ?, observation_count = 0 WHERE id = ?")
                .bind(now)
                .bind(scan.id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            tx.commit()
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            report.observations_deleted += deleted.rows_affected();
        }
        Ok(report)
    }
}

#[async_trait::async_trait]
impl CensusStore for SqliteStore {
    async fn latest_finished_scan(&self) -> Result<Option<ScanRecord>, StoreError> {
        let sql = format!(
            "{SELECT_SCANS} WHERE s.finished_at IS NOT NULL AND {} \
             ORDER BY s.finished_at DESC, s.id DESC LIMIT 1",
            census::DEFAULT_JUDGEMENT
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
        if rows.is_empty() {
            self.readable(scan).await?;
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

    async fn statistics(
        &self,
        scan: ScanId,
        group_by: &[Dimension],
        filter: &CensusFilter,
    ) -> Result<Vec<CensusGroup>, StoreError> {
        let state = self.scan_state(scan).await?;
        let live = census::needs_observations(group_by, filter);
        if live && state.pruned {
            return Err(StoreError::ScanPruned(scan));
        }
        let sql = census::statistics(&DIALECT, scan, state.finished && !live, group_by, filter);
        let rows = bind_all(sqlx::query(&sql.text), &sql.binds)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "count the census"))?;
        rows.iter()
            .map(|row| group_from_row(row, group_by, 0))
            .collect()
    }

    async fn trend_of(
        &self,
        group_by: &[Dimension],
        filter: &CensusFilter,
        which: Judgements,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        if census::needs_observations(group_by, filter) {
            return Err(StoreError::InvalidQuery(
                "a trend cannot be counted by organisation; count one scan by organisation".into(),
            ));
        }
        let sql = census::trend(&DIALECT, group_by, filter, which);
        let rows = bind_all(sqlx::query(&sql.text), &sql.binds)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "count the census trend"))?;
        let scans = self.scans().await?;
        rows.iter()
            .map(|row| {
                let id = ScanId(get(row, "scan_id")?);
                let group = group_from_row(row, group_by, 1)?;
                census::trend_point(&scans, id, group)
            })
            .collect()
    }

    async fn servers_page(
        &self,
        scan: ScanId,
        filter: &CensusFilter,
        after: Option<ServerCursor>,
        limit: u32,
    ) -> Result<ServersPage, StoreError> {
        self.readable(scan).await?;
        let sql = census::servers_page(&DIALECT, SELECT_OBSERVATIONS, scan, filter, after, limit);
        let rows = bind_all(sqlx::query(&sql.text), &sql.binds)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read a page of servers"))?;
        let facts = self.facts_of(&rows).await?;
        let rows = rows
            .iter()
            .map(|row| {
                let stored = observation_from_row(row)?;
                Ok((stored.id, stored.into_model(&facts)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(census::page_from_rows(rows, limit))
    }

    async fn host(&self, ip: IpAddr) -> Result<HostDetail, StoreError> {
        let text = ip.to_string();
        let action = "read a host";
        let rows = sqlx::query(
            "SELECT ip, port, first_seen, last_seen, last_scan_id, status, exchange_family, \
                 exchange_build, exchange_support FROM hosts WHERE ip = ? ORDER BY port",
        )
        .bind(&text)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        let ports = rows
            .iter()
            .map(|row| {
                let port: i64 = get(row, "port")?;
                let stamp = |column: &'static str| -> Result<OffsetDateTime, StoreError> {
                    parse_timestamp(&get::<String>(row, column)?)
                        .ok_or_else(|| StoreError::corrupt(format!("hosts.{column}")))
                };
                let first_seen = stamp("first_seen")?;
                let last_seen = stamp("last_seen")?;
                rows::StoredHost {
                    ip: get(row, "ip")?,
                    port,
                    first_seen,
                    last_seen,
                    last_scan: get(row, "last_scan_id")?,
                    status: get(row, "status")?,
                    family: get(row, "exchange_family")?,
                    build: get(row, "exchange_build")?,
                    support: get(row, "exchange_support")?,
                }
                .into_model()
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = sqlx::query(&format!(
            // One probe of UNIQUE (scan_id, ip, port) per scan (migration 0009 dropped the
            // address index).
            "{SELECT_OBSERVATIONS} WHERE o.scan_id IN (SELECT id FROM scans s WHERE {}) \
             AND o.ip = ? \
             ORDER BY (SELECT started_at FROM scans WHERE id = o.scan_id), o.scan_id, o.port",
            census::DEFAULT_JUDGEMENT
        ))
        .bind(&text)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        let facts = self.facts_of(&rows).await?;
        let history = rows
            .iter()
            .map(|row| {
                Ok((
                    ScanId(get(row, "scan_id")?),
                    observation_from_row(row)?.into_model(&facts)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(HostDetail { ip, ports, history })
    }
}

/// Maps a failed INSERT of a batch to what it means for the caller.
#[async_trait::async_trait]
impl RegistryStore for SqliteStore {
    async fn replace_registry(
        &self,
        organisations: &[Organisation],
        source: &str,
        imported_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let rows = rows::organisation_rows(organisations)?;
        let imported_at = timestamp_text(imported_at, "the import time")?;
        let action = "replace the registry";
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        sqlx::query("DELETE FROM organisations")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        for chunk in rows.chunks(rows::INSERT_CHUNK) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO organisations (id, name, sector, body) ");
            insert.push_values(chunk, |mut row, (id, name, sector, body)| {
                row.push_bind(*id);
                row.push_bind(*name);
                row.push_bind(*sector);
                row.push_bind(body);
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
        }
        sqlx::query(
            "INSERT INTO registry_imports (imported_at, source, organisations) VALUES (?, ?, ?)",
        )
        .bind(imported_at)
        .bind(source)
        .bind(rows.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))
    }

    async fn organisations(&self) -> Result<Vec<Organisation>, StoreError> {
        let rows = sqlx::query("SELECT body FROM organisations ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read the registry"))?;
        rows.iter()
            .map(|row| rows::organisation_from_json(&get::<String>(row, "body")?))
            .collect()
    }

    async fn last_import(&self) -> Result<Option<RegistryImport>, StoreError> {
        let row = sqlx::query(
            "SELECT imported_at, source, organisations FROM registry_imports \
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read the registry imports"))?;
        row.map(|row| {
            let at: String = get(&row, "imported_at")?;
            let n: i64 = get(&row, "organisations")?;
            Ok(RegistryImport {
                imported_at: parse_timestamp(&at)
                    .ok_or_else(|| StoreError::corrupt("registry_imports.imported_at"))?,
                source: get(&row, "source")?,
                organisations: u64::try_from(n)
                    .map_err(|_| StoreError::corrupt("registry_imports.organisations"))?,
            })
        })
        .transpose()
    }
}

#[async_trait::async_trait]
impl TokenStore for SqliteStore {
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        created_at: OffsetDateTime,
    ) -> Result<TokenRecord, StoreError> {
        rows::check_token(name, token_hash)?;
        let created_at = rows::truncate_to_micros(created_at);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (name, role, token_hash, created_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(timestamp_text(created_at, "the token's creation time")?)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "create a token"))?;
        Ok(TokenRecord {
            id,
            name: name.to_string(),
            role,
            created_at,
            revoked_at: None,
        })
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "look up a token"))?;
        row.map(|row| token_from_row(&row)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "list tokens"))?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: i64, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(timestamp_text(at, "the revocation time")?)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(StoreError::query(BACKEND, "revoke a token"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn begin_export(&self, export: &NewExport) -> Result<i64, StoreError> {
        let filter = serde_json::to_string(&export.filter)
            .map_err(|_| StoreError::corrupt("an export's filter"))?;
        sqlx::query_scalar(
            "INSERT INTO export_audit (started_at, token_id, token_name, role, scan_id, format, \
             pseudonymised, filter, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running') \
             RETURNING id",
        )
        .bind(timestamp_text(export.started_at, "the export's start")?)
        .bind(export.token.id)
        .bind(&export.token.name)
        .bind(export.token.role.as_str())
        .bind(export.scan.0)
        .bind(&export.format)
        .bind(export.pseudonymised)
        .bind(filter)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "log an export"))
    }

    async fn finish_export(
        &self,
        id: i64,
        rows: u64,
        outcome: ExportOutcome,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE export_audit SET rows = ?, outcome = ?, finished_at = ? WHERE id = ?")
            .bind(i64::try_from(rows).unwrap_or(i64::MAX))
            .bind(outcome.as_str())
            .bind(timestamp_text(at, "the export's end")?)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "close an export's log entry"))?;
        Ok(())
    }

    async fn exports(&self, limit: u32) -> Result<Vec<ExportRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at, finished_at, token_id, token_name, role, scan_id, format, \
             pseudonymised, filter, rows, outcome FROM export_audit \
             ORDER BY started_at DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read the export log"))?;
        let stamp = |text: String| {
            parse_timestamp(&text).ok_or_else(|| StoreError::corrupt("export_audit time"))
        };
        rows.iter()
            .map(|row| {
                StoredExport {
                    id: get(row, "id")?,
                    started_at: stamp(get(row, "started_at")?)?,
                    finished_at: get::<Option<String>>(row, "finished_at")?
                        .map(stamp)
                        .transpose()?,
                    token_id: get(row, "token_id")?,
                    token_name: get(row, "token_name")?,
                    role: get(row, "role")?,
                    scan_id: get(row, "scan_id")?,
                    format: get(row, "format")?,
                    pseudonymised: get(row, "pseudonymised")?,
                    filter: get(row, "filter")?,
                    rows: get(row, "rows")?,
                    outcome: get(row, "outcome")?,
                }
                .into_model()
            })
            .collect()
    }
}

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let role: String = get(row, "role")?;
    let stamp = |column: &'static str| -> Result<Option<OffsetDateTime>, StoreError> {
        get::<Option<String>>(row, column)?
            .map(|t| {
                parse_timestamp(&t)
                    .ok_or_else(|| StoreError::corrupt(format!("api_tokens.{column}")))
            })
            .transpose()
    };
    Ok(TokenRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        role: role
            .parse()
            .map_err(|_| StoreError::corrupt("api_tokens.role"))?,
        created_at: stamp("created_at")?
            .ok_or_else(|| StoreError::corrupt("api_tokens.created_at"))?,
        revoked_at: stamp("revoked_at")?,
    })
}

/// Whether a scan is finished and whether it was pruned.
struct ScanState {
    finished: bool,
    pruned: bool,
    judgement: census::JudgementState,
}

async fn scan_state(conn: &mut SqliteConnection, scan: ScanId) -> Result<ScanState, StoreError> {
    let row = sqlx::query(
        "SELECT finished_at IS NOT NULL AS finished, pruned_at IS NOT NULL AS pruned, \
         judged_from, projection FROM scans WHERE id = ?",
    )
    .bind(scan.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query(BACKEND, "look up a scan"))?
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

/// One multi-row INSERT of a chunk of observations (with each one's observed_at as text);
/// how many went in.
async fn insert_observations(
    conn: &mut SqliteConnection,
    scan: ScanId,
    chunk: &[(Columns, String)],
    facts: &[i64],
) -> Result<u64, StoreError> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, error, tls, \
         http_server, fingerprint, exchange_family, exchange_build, exchange_version_name, \
         exchange_support, exchange_verdict, exchange_cu, exchange_patch, exchange_facts_id, \
         organisation, sector, attribution, asn, country) ",
    );
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

/// Stores the distinct verdict facts of a batch (each once, whoever wrote it first) and returns
/// their ids, in the batch's order of facts ([`rows::Prepared::fact_ids`]).
async fn store_facts(
    conn: &mut SqliteConnection,
    batch: &rows::Prepared<'_>,
) -> Result<Vec<i64>, StoreError> {
    let (digests, bodies) = batch.distinct_facts();
    let mut ids = HashMap::new();
    let action = "store verdict facts";
    // Two binds a row: far below SQLite's limit per statement.
    for (digests, bodies) in digests
        .chunks(rows::INSERT_CHUNK)
        .zip(bodies.chunks(rows::INSERT_CHUNK))
    {
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO verdict_facts (digest, body) ");
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
        let mut select =
            QueryBuilder::<Sqlite>::new("SELECT id, digest FROM verdict_facts WHERE digest IN (");
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

/// Recomputes a scan's census aggregates and folds its observations into `hosts`.
async fn refresh_census(
    conn: &mut SqliteConnection,
    scan: ScanId,
    state: &ScanState,
) -> Result<(), StoreError> {
    for sql in census::census_statements(&DIALECT, scan, &state.judgement) {
        execute(conn, &sql, "store the census of a scan").await?;
    }
    Ok(())
}

async fn execute(
    conn: &mut SqliteConnection,
    sql: &Sql,
    action: &'static str,
) -> Result<u64, StoreError> {
    let done = bind_all(sqlx::query(&sql.text), &sql.binds)
        .execute(conn)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
    Ok(done.rows_affected())
}

fn bind_all<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Int(i) => query.bind(*i),
            Bind::Text(t) => query.bind(t.as_str()),
        };
    }
    query
}

/// The dimension columns of a census row, which start at column `first`, then `servers`.
fn group_from_row(
    row: &SqliteRow,
    group_by: &[Dimension],
    first: usize,
) -> Result<CensusGroup, StoreError> {
    let values = (first..first + group_by.len())
        .map(|i| {
            row.try_get::<Option<String>, _>(i)
                .map_err(|_| StoreError::corrupt("census dimension"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    census::group_from_texts(group_by, values, get(row, "servers")?)
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

pub(crate) fn timestamp_text(t: OffsetDateTime, what: &'static str) -> Result<String, StoreError> {
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
pub(crate) fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
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
        pruned_at: timestamp("pruned_at")?,
        kb_digest: get(row, "kb_digest")?,
        kb_newest_release: get::<Option<String>>(row, "kb_newest_release")?
            .map(|d| Date::parse(&d, DATE).map_err(|_| corrupt("kb_newest_release")))
            .transpose()?,
        judged_at: timestamp("judged_at")?,
        judged_from: get(row, "judged_from")?,
        projection: get(row, "projection")?,
        superseded_by: get(row, "superseded_by")?,
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
        exchange_facts_id: get(row, "exchange_facts_id")?,
        attribution: get(row, "attribution")?,
        asn: get(row, "asn")?,
        country: get(row, "country")?,
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
