//! [`ScanStore`] for both backends: scans, judgements, recording batches and pruning.

use surveyor_model::Observation;
use time::OffsetDateTime;

use super::{
    get, is_unique_violation, refresh_census, scan_state, Exec, Insert, Native, Sql, SqlStore,
    SELECT_SCANS,
};
use crate::census;
use crate::rows;
use crate::{
    NewJudgement, NewScan, ObservationCursor, PrunePolicy, PruneReport, ScanId, ScanRecord,
    ScanStore, StoreError,
};

impl<F: Exec> SqlStore<F> {
    /// One transaction for a batch: the scan's state, the verdict facts, the rows, the kept
    /// count and, for a finished scan, its census.
    async fn record_prepared(
        &self,
        scan: ScanId,
        batch: &rows::Prepared<'_>,
        insert: Insert,
    ) -> Result<(), StoreError> {
        let action = "record observations";
        // On SQLite the transaction takes the write lock up front (BEGIN IMMEDIATE), waiting
        // up to the busy timeout: a deferred one that reads first can fail outright when it
        // later upgrades to write.
        let mut tx = self.begin(action).await?;
        // The scan is checked here once per batch, not by a foreign key per row (PostgreSQL
        // migration 0011); on PostgreSQL FOR KEY SHARE holds the row until commit.
        let state = scan_state::<F>(&mut tx, scan, F::row_lock(" FOR KEY SHARE")).await?;
        if state.pruned {
            return Err(StoreError::ScanPruned(scan));
        }
        let facts = F::store_facts(&mut tx, batch).await?;
        let inserted = F::write_observations(&mut tx, scan, batch, &facts, insert).await?;
        // Only rows that went in count: a repeated target is skipped.
        let count =
            Sql::new("UPDATE scans SET observation_count = observation_count + $2 WHERE id = $1")
                .bind(scan)
                .bind(inserted as i64);
        F::execute(&mut tx, &count, action).await?;
        // Late observations of a finished scan (a spill file ingested after the scan ended)
        // must reach its census counts and the hosts table.
        if state.finished {
            refresh_census::<F>(&mut tx, scan, &state).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query(F::BACKEND, action))
    }
}

#[async_trait::async_trait]
impl<F: Exec> ScanStore for SqlStore<F> {
    async fn begin_scan(&self, scan: &NewScan) -> Result<ScanId, StoreError> {
        rows::check_new_scan(scan)?;
        let sql = Sql::new(
            "INSERT INTO scans (started_at, as_of, targets, ports, tool_version, kb_digest, \
             kb_newest_release, judged_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $1) RETURNING id",
        )
        .bind(Native::Time(scan.started_at, "the new scan's started_at"))
        .bind(Native::Date(scan.as_of, "the new scan's as_of date"))
        .bind(scan.targets.as_str())
        .bind(Native::Ports(scan.ports.clone()))
        .bind(scan.tool_version.as_str())
        .bind(scan.kb.as_ref().map(|k| k.digest.as_str()))
        .bind(Native::OptDate(
            scan.kb.as_ref().map(|k| k.newest_release),
            "the knowledge base's newest release",
        ));
        let row = self.one(&sql, "begin a scan").await?;
        Ok(ScanId(get(&row, "id")?))
    }

    async fn begin_judgement(&self, judgement: &NewJudgement) -> Result<ScanId, StoreError> {
        let source = rows::judgement_source(judgement, self.scan(judgement.source).await?)?;
        let sql = Sql::new(
            "INSERT INTO scans (started_at, as_of, targets, ports, tool_version, kb_digest, \
             kb_newest_release, judged_at, judged_from, projection) \
             SELECT started_at, $2, targets, ports, $3, $4, $5, $6, id, $2 <> as_of \
             FROM scans WHERE id = $1 RETURNING id",
        )
        .bind(source.id)
        .bind(Native::Date(judgement.as_of, "the judgement's as_of date"))
        .bind(judgement.tool_version.as_str())
        .bind(judgement.kb.digest.as_str())
        .bind(Native::Date(
            judgement.kb.newest_release,
            "the knowledge base's newest release",
        ))
        .bind(Native::Time(
            judgement.judged_at,
            "the judgement's judged_at",
        ));
        let row = self.one(&sql, "begin a judgement").await?;
        Ok(ScanId(get(&row, "id")?))
    }

    async fn record(&self, scan: ScanId, batch: &[Observation]) -> Result<(), StoreError> {
        // In key order: concurrent batches that share targets then wait for each other in one
        // order and never deadlock, and the primary key's inserts touch neighbouring pages.
        let batch = rows::Prepared::new(batch)?;
        // The fast way first, for a batch of new targets (nearly always). PostgreSQL's COPY
        // knows no ON CONFLICT, so a batch that repeats a stored target (a resumed scan, a
        // spill file, overlapping target lists) fails whole, is rolled back and goes in again
        // skipping what is stored. SQLite's INSERT skips stored targets the first time.
        match self.record_prepared(scan, &batch, Insert::Fast).await {
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
        let mut tx = self.begin(action).await?;
        let finish = Sql::new("UPDATE scans SET finished_at = $2 WHERE id = $1")
            .bind(scan)
            .bind(Native::Time(finished_at, "the scan's finished_at"));
        if F::execute(&mut tx, &finish, action).await? == 0 {
            return Err(StoreError::UnknownScan(scan));
        }
        let state = scan_state::<F>(&mut tx, scan, "").await?;
        // A pruned scan's aggregates were computed before its observations went.
        if !state.pruned {
            refresh_census::<F>(&mut tx, scan, &state).await?;
        }
        if let Some(sql) = census::supersede_statement(&F::DIALECT, scan, &state.judgement) {
            F::execute(&mut tx, &sql, action).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query(F::BACKEND, action))
    }

    async fn scans(&self) -> Result<Vec<ScanRecord>, StoreError> {
        let sql = format!("{SELECT_SCANS} ORDER BY s.started_at DESC, s.id DESC");
        self.fetch_scans(&Sql::new(sql)).await
    }

    async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError> {
        let sql = Sql::new(format!("{SELECT_SCANS} WHERE s.id = $1")).bind(id);
        Ok(self.fetch_scans(&sql).await?.into_iter().next())
    }

    async fn observations(&self, scan: ScanId) -> Result<Vec<Observation>, StoreError> {
        let sql = Sql::new(format!(
            "{} WHERE o.scan_id = $1 ORDER BY o.ip, o.port",
            F::SELECT_OBSERVATIONS
        ))
        .bind(scan);
        let rows = self.all(&sql, "read observations").await?;
        if rows.is_empty() {
            self.readable(scan).await?;
        }
        let mut observations: Vec<Observation> = self
            .observations_of(&rows)
            .await?
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        // SQLite's text addresses do not sort numerically ("10.0.0.10" < "10.0.0.2").
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
        // A row-value comparison on the key (scan_id, ip, port), in the order of the stored
        // address (SQLite's is its text): one index descent per page.
        let cursor = if after.is_some() {
            "AND (o.ip, o.port) > ($3, $4) "
        } else {
            ""
        };
        let mut sql = Sql::new(format!(
            "{} WHERE o.scan_id = $1 {cursor}ORDER BY o.ip, o.port LIMIT $2",
            F::SELECT_OBSERVATIONS
        ))
        .bind(scan)
        .bind(i64::from(limit));
        if let Some(c) = after {
            sql = sql.bind(c.ip).bind(i32::from(c.port));
        }
        let rows = self.all(&sql, "read a page of observations").await?;
        let observations = self
            .observations_of(&rows)
            .await?
            .into_iter()
            .map(|(_, o)| o)
            .collect();
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
            let mut tx = self.begin(action).await?;
            let delete = Sql::new("DELETE FROM observations WHERE scan_id = $1").bind(scan.id);
            let deleted = F::execute(&mut tx, &delete, action).await?;
            let mark =
                Sql::new("UPDATE scans SET pruned_at = $2, observation_count = 0 WHERE id = $1")
                    .bind(scan.id)
                    .bind(Native::Time(OffsetDateTime::now_utc(), "the prune time"));
            F::execute(&mut tx, &mark, action).await?;
            tx.commit()
                .await
                .map_err(StoreError::query(F::BACKEND, action))?;
            report.observations_deleted += deleted;
        }
        Ok(report)
    }
}
