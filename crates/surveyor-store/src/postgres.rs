//! The PostgreSQL backend: native TIMESTAMPTZ, DATE, INET, INTEGER[] and JSONB columns.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Executor, Postgres, QueryBuilder, Row};
use surveyor_model::{ExchangeServer, Observation, Organisation};
use time::OffsetDateTime;

use crate::census::{self, Bind, Dialect, Sql};
use crate::overlap;
use crate::pg_copy::{self, BinaryRows};
use crate::rows::{self, Columns, FactsCache, StoredObservation, StoredScan};
use crate::{
    Backend, CensusFilter, CensusGroup, CensusStore, Dimension, HostDetail, Judgements,
    NewJudgement, NewScan, ObservationCursor, OpenOptions, PrunePolicy, PruneReport,
    RegistryImport, RegistryStore, ScanId, ScanRecord, ScanStore, ServerCursor, ServersPage,
    StoreError, TrendPoint,
};
use crate::{ExportOutcome, ExportRecord, NewExport, Role, StoredExport, TokenRecord, TokenStore};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

const BACKEND: Backend = Backend::Postgres;

const DIALECT: Dialect = Dialect {
    placeholder: |n| format!("${n}"),
    least: "LEAST",
    greatest: "GREATEST",
};

/// Enough for the API's readers and one scan writer; PostgreSQL's default limit is 100.
const MAX_CONNECTIONS: u32 = 8;
/// How long a caller waits for a pooled connection (or the first connect) before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

const SELECT_SCANS: &str = "SELECT s.id, s.started_at, s.finished_at, s.as_of, s.targets, \
     s.ports, s.tool_version, s.pruned_at, s.observation_count AS observations, s.kb_digest, \
     s.kb_newest_release, s.judged_at, s.judged_from, s.projection, s.superseded_by \
     FROM scans s";

/// The columns `observation_from_row` reads, from `observations o`. The verdict facts a row
/// refers to are read once per distinct id (`facts_of`), not once per row.
const SELECT_OBSERVATIONS: &str = "SELECT o.id, o.scan_id, host(o.ip) AS ip, o.port, o.scheme, \
     o.observed_at, o.status, o.error, o.tls::text AS tls, o.http_server, \
     o.fingerprint::text AS fingerprint, o.exchange_family, o.exchange_build, \
     o.exchange_version_name, o.exchange_support, o.exchange_verdict::text AS exchange_verdict, \
     o.exchange_facts_id, o.attribution::text AS attribution, o.asn, o.country \
     FROM observations o";

pub(crate) struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// One transaction for a batch: the scan's state, the verdict facts, the rows, the kept
    /// count and, for a finished scan, its census.
    async fn record_prepared(
        &self,
        scan: ScanId,
        batch: &rows::Prepared<'_>,
        insert: Insert,
    ) -> Result<(), StoreError> {
        let action = "record observations";
        let mut tx = begin(&self.pool, action).await?;
        // The scan is checked here once per batch, not by a foreign key per row (migration
        // 0011); FOR KEY SHARE holds the row until commit.
        let state = scan_state(&mut tx, scan, " FOR KEY SHARE").await?;
        if state.pruned {
            return Err(StoreError::ScanPruned(scan));
        }
        let facts = store_facts(&mut tx, batch).await?;
        let inserted = match insert {
            Insert::Copy => copy_observations(&mut tx, scan, batch, &facts).await?,
            Insert::SkipStored => {
                let columns = batch.encode()?;
                insert_observations(&mut tx, scan, &columns, &facts).await?
            }
        };
        // Only rows that went in count: a repeated target is skipped by ON CONFLICT.
        sqlx::query("UPDATE scans SET observation_count = observation_count + $2 WHERE id = $1")
            .bind(scan.0)
            .bind(inserted as i64)
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

    /// Whether a scan is finished and whether it was pruned; `UnknownScan` when there is none.
    async fn scan_state(&self, scan: ScanId) -> Result<ScanState, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::query(BACKEND, "look up a scan"))?;
        scan_state(&mut conn, scan, "").await
    }

    /// Fails with `ScanPruned` for a pruned scan: its observations are gone.
    async fn readable(&self, scan: ScanId) -> Result<(), StoreError> {
        match self.scan_state(scan).await? {
            ScanState { pruned: true, .. } => Err(StoreError::ScanPruned(scan)),
            _ => Ok(()),
        }
    }

    /// The verdict facts `rows` refer to, each read and parsed once.
    async fn facts_of(&self, rows: &[PgRow]) -> Result<FactsCache, StoreError> {
        let mut ids = rows
            .iter()
            .filter_map(|row| get::<Option<i64>>(row, "exchange_facts_id").transpose())
            .collect::<Result<Vec<i64>, StoreError>>()?;
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(FactsCache::new());
        }
        let facts =
            sqlx::query("SELECT id, body::text AS body FROM verdict_facts WHERE id = ANY($1)")
                .bind(&ids)
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
impl ScanStore for PgStore {
    async fn begin_scan(&self, scan: &NewScan) -> Result<ScanId, StoreError> {
        rows::check_new_scan(scan)?;
        let ports: Vec<i32> = scan.ports.iter().map(|&p| i32::from(p)).collect();
        let started_at = rows::truncate_to_micros(scan.started_at);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO scans (started_at, as_of, targets, ports, tool_version, kb_digest, \
             kb_newest_release, judged_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $1) RETURNING id",
        )
        .bind(started_at)
        .bind(scan.as_of)
        .bind(&scan.targets)
        .bind(ports)
        .bind(&scan.tool_version)
        .bind(scan.kb.as_ref().map(|k| k.digest.as_str()))
        .bind(scan.kb.as_ref().map(|k| k.newest_release))
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
             SELECT started_at, $2, targets, ports, $3, $4, $5, $6, id, $2 <> as_of \
             FROM scans WHERE id = $1 RETURNING id",
        )
        .bind(source.id.0)
        .bind(judgement.as_of)
        .bind(&judgement.tool_version)
        .bind(&judgement.kb.digest)
        .bind(judgement.kb.newest_release)
        .bind(rows::truncate_to_micros(judgement.judged_at))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "begin a judgement"))?;
        Ok(ScanId(id))
    }

    async fn record(&self, scan: ScanId, batch: &[Observation]) -> Result<(), StoreError> {
        // In key order: concurrent batches that share targets then wait for each other in one
        // order and never deadlock, and the primary key's inserts touch neighbouring pages.
        let batch = rows::Prepared::new(batch)?;
        // COPY first: the fast way in, for a batch of new targets (nearly always). COPY knows
        // no ON CONFLICT, so a batch that repeats a stored target (a resumed scan, a spill
        // file, overlapping target lists) fails whole, is rolled back and goes in again as
        // one INSERT that skips what is stored.
        match self.record_prepared(scan, &batch, Insert::Copy).await {
            Err(StoreError::Query { source, .. }) if is_unique_violation(&source) => {
                self.record_prepared(scan, &batch, Insert::SkipStored).await
            }
            done => done,
        }
    }

    async fn finish_scan(
        &self,
        scan: ScanId,
        finished_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let action = "finish a scan";
        let mut tx = begin(&self.pool, action).await?;
        let done = sqlx::query("UPDATE scans SET finished_at = $2 WHERE id = $1")
            .bind(scan.0)
            .bind(rows::truncate_to_micros(finished_at))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownScan(scan));
        }
        let state = scan_state(&mut tx, scan, "").await?;
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
        let sql = format!("{SELECT_SCANS} WHERE s.id = $1");
        Ok(self.fetch_scans(&sql, Some(id)).await?.into_iter().next())
    }

    async fn observations(&self, scan: ScanId) -> Result<Vec<Observation>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_OBSERVATIONS} WHERE o.scan_id = $1 ORDER BY o.ip, o.port"
        ))
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
        // A row-value comparison on the primary key (scan_id, ip, port): one index descent
        // per page.
        let cursor = if after.is_some() {
            "AND (o.ip, o.port) > ($3::inet, $4) "
        } else {
            ""
        };
        let sql = format!(
            "{SELECT_OBSERVATIONS} WHERE o.scan_id = $1 {cursor}ORDER BY o.ip, o.port LIMIT $2"
        );
        let mut query = sqlx::query(&sql).bind(scan.0).bind(i64::from(limit));
        if let Some(c) = after {
            query = query.bind(c.ip.to_string()).bind(i32::from(c.port));
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
            let mut tx = begin(&self.pool, action).await?;
            let deleted = sqlx::query("DELETE FROM observations WHERE scan_id = $1")
                .bind(scan.id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            sqlx::query("UPDATE scans SET pruned_at = $2, observation_count = 0 WHERE id = $1")
                .bind(scan.id.0)
                .bind(rows::truncate_to_micros(OffsetDateTime::now_utc()))
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
impl CensusStore for PgStore {
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
            "SELECT id, host(ip) AS ip, port, exchange_family, exchange_build, exchange_support \
             FROM observations WHERE scan_id = $1 AND exchange_family IS NOT NULL \
             ORDER BY observations.ip, port",
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
                let port: i32 = get(row, "port")?;
                rows::exchange_server(rows::ServerColumns {
                    id: get(row, "id")?,
                    ip: &get::<String>(row, "ip")?,
                    port: i64::from(port),
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
            "SELECT host(ip) AS ip, port, first_seen, last_seen, last_scan_id, status, \
                 exchange_family, exchange_build, exchange_support FROM hosts \
                 WHERE ip = $1::inet ORDER BY port",
        )
        .bind(&text)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        let ports = rows
            .iter()
            .map(|row| {
                let port: i32 = get(row, "port")?;
                let first_seen = get(row, "first_seen")?;
                let last_seen = get(row, "last_seen")?;
                rows::StoredHost {
                    ip: get(row, "ip")?,
                    port: i64::from(port),
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
            // One descent of the primary key per scan (migration 0011 dropped the address
            // index): a few hundred scans cost a few hundred index probes.
            "{SELECT_OBSERVATIONS} WHERE o.scan_id = ANY(ARRAY(SELECT id FROM scans s \
             WHERE {})) AND o.ip = $1::inet \
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

#[async_trait::async_trait]
impl RegistryStore for PgStore {
    async fn replace_registry(
        &self,
        organisations: &[Organisation],
        source: &str,
        imported_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let rows = rows::organisation_rows(organisations)?;
        let action = "replace the registry";
        let mut tx = begin(&self.pool, action).await?;
        sqlx::query("DELETE FROM organisations")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        for chunk in rows.chunks(rows::INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO organisations (id, name, sector, body) ",
            );
            insert.push_values(chunk, |mut row, (id, name, sector, body)| {
                row.push_bind(*id);
                row.push_bind(*name);
                row.push_bind(*sector);
                row.push_bind(body).push_unseparated("::jsonb");
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
        }
        sqlx::query(
            "INSERT INTO registry_imports (imported_at, source, organisations) VALUES ($1, $2, $3)",
        )
        .bind(rows::truncate_to_micros(imported_at))
        .bind(source)
        .bind(rows.len() as i32)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))
    }

    async fn organisations(&self) -> Result<Vec<Organisation>, StoreError> {
        let rows = sqlx::query("SELECT body::text AS body FROM organisations ORDER BY id")
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
            let n: i32 = get(&row, "organisations")?;
            Ok(RegistryImport {
                imported_at: get(&row, "imported_at")?,
                source: get(&row, "source")?,
                organisations: u64::try_from(n)
                    .map_err(|_| StoreError::corrupt("registry_imports.organisations"))?,
            })
        })
        .transpose()
    }
}

#[async_trait::async_trait]
impl TokenStore for PgStore {
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
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(created_at)
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
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens WHERE token_hash = $1",
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
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(rows::truncate_to_micros(at))
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
             pseudonymised, filter, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, 'running') RETURNING id",
        )
        .bind(rows::truncate_to_micros(export.started_at))
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
        sqlx::query(
            "UPDATE export_audit SET rows = $2, outcome = $3, finished_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .bind(outcome.as_str())
        .bind(rows::truncate_to_micros(at))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "close an export's log entry"))?;
        Ok(())
    }

    async fn exports(&self, limit: u32) -> Result<Vec<ExportRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at, finished_at, token_id, token_name, role, scan_id, format, \
             pseudonymised, filter::text AS filter, rows, outcome FROM export_audit \
             ORDER BY started_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "read the export log"))?;
        rows.iter()
            .map(|row| {
                StoredExport {
                    id: get(row, "id")?,
                    started_at: get(row, "started_at")?,
                    finished_at: get(row, "finished_at")?,
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

fn token_from_row(row: &PgRow) -> Result<TokenRecord, StoreError> {
    let role: String = get(row, "role")?;
    Ok(TokenRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        role: role
            .parse()
            .map_err(|_| StoreError::corrupt("api_tokens.role"))?,
        created_at: get(row, "created_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
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

/// A transaction on the pool; failing to start one is a query error of `action`.
pub(crate) async fn begin(
    pool: &PgPool,
    action: &'static str,
) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    pool.begin()
        .await
        .map_err(StoreError::query(BACKEND, action))
}

/// Whether a scan is finished and whether it was pruned.
struct ScanState {
    finished: bool,
    pruned: bool,
    judgement: census::JudgementState,
}

/// Reads a scan's state, with `lock` (e.g. " FOR KEY SHARE") appended to the SELECT.
async fn scan_state(
    conn: &mut PgConnection,
    scan: ScanId,
    lock: &str,
) -> Result<ScanState, StoreError> {
    let sql = format!(
        "SELECT finished_at IS NOT NULL AS finished, pruned_at IS NOT NULL AS pruned, \
         judged_from, projection FROM scans WHERE id = $1{lock}"
    );
    let row = sqlx::query(&sql)
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

/// Stores the distinct verdict facts of a batch (each once, whoever wrote it first) and returns
/// their ids, in the batch's order of facts ([`rows::Prepared::fact_ids`]).
async fn store_facts(
    conn: &mut PgConnection,
    batch: &rows::Prepared<'_>,
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
    let rows = sqlx::query("SELECT id, digest FROM verdict_facts WHERE digest = ANY($1::text[])")
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

/// How a batch goes into `observations`.
#[derive(Clone, Copy)]
enum Insert {
    /// Binary COPY: fails whole on a target the scan already stored.
    Copy,
    /// INSERT … ON CONFLICT DO NOTHING: keeps what is stored, adds the rest.
    SkipStored,
}

/// The observation columns in the order both inserts write them.
const OBSERVATION_COLUMNS: &str = "scan_id, ip, port, scheme, observed_at, status, error, tls, \
     http_server, fingerprint, exchange_family, exchange_build, exchange_version_name, \
     exchange_support, exchange_verdict, exchange_cu, exchange_patch, exchange_facts_id, \
     organisation, sector, attribution, asn, country";

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
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

/// Recomputes a scan's census aggregates and folds its observations into `hosts`.
async fn refresh_census(
    conn: &mut PgConnection,
    scan: ScanId,
    state: &ScanState,
) -> Result<(), StoreError> {
    for sql in census::census_statements(&DIALECT, scan, &state.judgement) {
        execute(conn, &sql, "store the census of a scan").await?;
    }
    Ok(())
}

async fn execute(
    conn: &mut PgConnection,
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
    mut query: Query<'q, Postgres, PgArguments>,
    binds: &'q [Bind],
) -> Query<'q, Postgres, PgArguments> {
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
    row: &PgRow,
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

fn scan_from_row(row: &PgRow) -> Result<ScanRecord, StoreError> {
    let ports: Vec<i32> = get(row, "ports")?;
    StoredScan {
        id: get(row, "id")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        as_of: get(row, "as_of")?,
        targets: get(row, "targets")?,
        ports: ports.into_iter().map(i64::from).collect(),
        tool_version: get(row, "tool_version")?,
        observations: get(row, "observations")?,
        pruned_at: get(row, "pruned_at")?,
        kb_digest: get(row, "kb_digest")?,
        kb_newest_release: get(row, "kb_newest_release")?,
        judged_at: get(row, "judged_at")?,
        judged_from: get(row, "judged_from")?,
        projection: get(row, "projection")?,
        superseded_by: get(row, "superseded_by")?,
    }
    .into_model()
}

fn observation_from_row(row: &PgRow) -> Result<StoredObservation, StoreError> {
    let port: i32 = get(row, "port")?;
    Ok(StoredObservation {
        id: get(row, "id")?,
        ip: get(row, "ip")?,
        port: i64::from(port),
        scheme: get(row, "scheme")?,
        observed_at: get(row, "observed_at")?,
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
fn get<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|_| StoreError::corrupt(format!("column {column}")))
}
