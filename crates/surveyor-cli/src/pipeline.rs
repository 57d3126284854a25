//! The scan pipeline: engine → classification → JSON lines and the store.

use std::io::Write;

use anyhow::{Context, Result};
use surveyor_kb::BuildTable;
use surveyor_model::Observation;
use surveyor_scan::{Exclusions, Order, ScanConfig, ScanStats, TargetSpace};
use surveyor_store::{NewScan, ScanId, Store};
use time::{Date, OffsetDateTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Observations written to the store per transaction.
const BATCH: usize = 500;

/// A validated scan request.
pub struct ScanJob {
    pub space: TargetSpace,
    pub ports: Vec<u16>,
    pub order: Order,
    pub exclusions: Exclusions,
    pub as_of: Date,
    pub config: ScanConfig,
    /// How the targets were given, stored with the scan.
    pub description: String,
}

/// What a finished (or interrupted) scan produced.
pub struct ScanOutcome {
    pub scan: ScanId,
    pub stats: ScanStats,
    pub exchange: u64,
}

/// Runs a scan, classifying each observation as of `job.as_of`, writing it as one JSON line to
/// `out` and storing it. The scan is marked finished only when it walked every target, so an
/// interrupted or truncated scan never becomes "the latest census".
pub async fn run_scan(
    job: ScanJob,
    store: &Store,
    out: &mut (dyn Write + Send),
    cancel: CancellationToken,
) -> Result<ScanOutcome> {
    let scan = store
        .scans
        .begin_scan(&NewScan {
            started_at: OffsetDateTime::now_utc(),
            as_of: job.as_of,
            targets: job.description.clone(),
            ports: job.ports.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
        .context("could not record the scan in the store")?;

    let (tx, mut rx) = mpsc::channel::<Observation>(1024);
    let engine = {
        let (config, space, order) = (job.config.clone(), job.space, job.order);
        let (exclusions, cancel) = (job.exclusions.clone(), cancel.clone());
        tokio::spawn(async move {
            let targets = space.walk(order, 0).map(|(_, target)| target);
            surveyor_scan::run(&config, targets, &exclusions, tx, cancel).await
        })
    };

    let table = BuildTable::builtin();
    let mut batch = Vec::with_capacity(BATCH);
    let mut exchange = 0;
    while let Some(mut obs) = rx.recv().await {
        obs.exchange = surveyor_kb::classify(&obs.fingerprint, table, job.as_of);
        exchange += u64::from(obs.exchange.is_some());
        serde_json::to_writer(&mut *out, &obs).context("could not write output")?;
        out.write_all(b"\n").context("could not write output")?;
        batch.push(obs);
        if batch.len() == BATCH {
            store
                .scans
                .record(scan, &batch)
                .await
                .context("could not store observations")?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store
            .scans
            .record(scan, &batch)
            .await
            .context("could not store observations")?;
    }
    out.flush().context("could not write output")?;
    let stats = engine.await.context("the scan engine failed")?;
    if stats.stopped.is_none() {
        store
            .scans
            .finish_scan(scan, OffsetDateTime::now_utc())
            .await
            .context("could not finish the scan")?;
    }
    Ok(ScanOutcome {
        scan,
        stats,
        exchange,
    })
}
