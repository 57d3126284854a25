//! `surveyor rejudge`: a stored scan's observations judged again from their stored evidence
//! with the knowledge base in use, and for another day with `--as-of`, probing nothing.
//!
//! The judgement is stored as a scan of its own that names its source (`judged_from`); the
//! earlier judgement stays as it was. A re-judgement for the source's own day becomes the
//! default census of those observations; one for another day is a projection, read only when
//! asked for by id.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use surveyor_kb::KnowledgeBase;
use surveyor_model::{ExchangeVerdict, Observation};
use surveyor_store::{NewJudgement, ObservationCursor, ScanId, ScanRecord, Store};
use time::{Date, OffsetDateTime};
use tokio::sync::mpsc;

use crate::DbArg;

/// Observations read, judged and stored at a time: a page of the source and one transaction.
/// A verdict holds one entry per CVE of its family (about 150 for 2016/2019), so a page of
/// 1,000 is some 15 MB in memory.
const PAGE: u32 = 1_000;

#[derive(Args)]
pub struct RejudgeArgs {
    #[command(flatten)]
    db: DbArg,
    /// The scan whose observations to judge again (default: the latest finished one). A
    /// re-judgement stands for its source: the observations are the source's.
    #[arg(long)]
    scan: Option<i64>,
    /// Judge for this day instead of the scan's own: a projection (how many of the servers
    /// seen then are unsupported, out of ESU or below Exchange Online's bar on that day).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::parse_date)]
    as_of: Option<Date>,
    /// `text` for people, `json` for programs.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

/// What a re-judgement changed, server by server, against the judgement it was made beside.
#[derive(Debug, Default, Serialize)]
struct Changes {
    observations: u64,
    servers_before: u64,
    servers_after: u64,
    /// Servers whose verdict differs in any way the census or a notification reads.
    changed: u64,
    support: u64,
    version: u64,
    patch: u64,
    cves: u64,
    exchange_online: u64,
}

pub async fn run(args: RejudgeArgs, kb: Arc<KnowledgeBase>) -> Result<()> {
    let store = crate::open_store(&args.db.db).await?;
    let named = match args.scan {
        Some(id) => store
            .scans
            .scan(ScanId(id))
            .await?
            .with_context(|| format!("no scan with id {id}"))?,
        None => store
            .census
            .latest_finished_scan()
            .await?
            .context("no finished scan to judge again: run `surveyor scan` first")?,
    };
    let scans = store.scans.scans().await?;
    let source = match named.judged_from {
        Some(origin) => scans
            .iter()
            .find(|s| s.id == origin)
            .cloned()
            .with_context(|| format!("scan {} names a source {origin} that is gone", named.id))?,
        None => named.clone(),
    };
    if source.finished_at.is_none() {
        bail!(
            "scan {} is not finished; judge it again once it is",
            source.id
        );
    }
    let as_of = args.as_of.unwrap_or(source.as_of);
    // The judgement the census shows now: what the new one is compared with, and where the
    // evidence is read (every judgement holds a whole copy of the source's observations).
    let current = scans
        .iter()
        .filter(|s| s.source() == source.id && s.is_default())
        .max_by_key(|s| s.id)
        .cloned()
        .unwrap_or_else(|| source.clone());
    if let Some(same) = scans.iter().find(|s| {
        s.source() == source.id
            && s.as_of == as_of
            && s.finished_at.is_some()
            && s.superseded_by.is_none()
            && s.kb.as_ref().map(|k| &k.digest) == Some(&kb.stamp.digest)
    }) {
        eprintln!(
            "surveyor rejudge: scan {} already judges scan {}'s observations with knowledge \
             base {} as of {as_of}; nothing to do",
            same.id, source.id, kb.stamp
        );
        return print(&args.format, same, &source, &Changes::default(), &store).await;
    }

    let judged_at = OffsetDateTime::now_utc();
    let id = store
        .scans
        .begin_judgement(&NewJudgement {
            source: source.id,
            as_of,
            kb: crate::pipeline::kb_ref(&kb),
            judged_at,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
        .with_context(|| format!("could not begin a judgement of scan {}", source.id))?;
    eprintln!(
        "surveyor rejudge: scan {id} judges scan {}'s observations (read from scan {}) with \
         knowledge base {} as of {as_of}",
        source.id, current.id, kb.stamp
    );
    let changes = judge_all(&store, current.id, id, &kb, as_of).await?;
    let finished_at = source.finished_at.unwrap_or(judged_at);
    store
        .scans
        .finish_scan(id, finished_at)
        .await
        .context("could not finish the judgement")?;
    let record = store
        .scans
        .scan(id)
        .await?
        .context("the judgement vanished from the store")?;
    print(&args.format, &record, &current, &changes, &store).await
}

/// Reads `from` page by page (the next page while this one is judged and stored), judges every
/// observation again and records it under `into`.
async fn judge_all(
    store: &Store,
    from: ScanId,
    into: ScanId,
    kb: &KnowledgeBase,
    as_of: Date,
) -> Result<Changes> {
    // One page waits while one is judged and stored: reading overlaps writing, memory stays
    // at three pages.
    let (tx, mut rx) = mpsc::channel::<Result<Vec<Observation>>>(1);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut after: Option<ObservationCursor> = None;
            loop {
                let page = store.scans.observations_page(from, after, PAGE).await;
                let (page, next) = match page {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx
                            .send(Err(anyhow::Error::new(e).context("could not read")))
                            .await;
                        return;
                    }
                };
                if !page.is_empty() && tx.send(Ok(page)).await.is_err() {
                    return;
                }
                match next {
                    Some(cursor) => after = Some(cursor),
                    None => return,
                }
            }
        })
    };
    let mut changes = Changes::default();
    while let Some(page) = rx.recv().await {
        let mut page = page?;
        for obs in &mut page {
            let new = kb.classify(&obs.fingerprint, as_of);
            changes.count(obs.exchange.as_ref(), new.as_ref());
            obs.exchange = new;
        }
        store
            .scans
            .record(into, &page)
            .await
            .with_context(|| format!("could not store the judgement (scan {into})"))?;
    }
    reader.await.context("the reader task failed")?;
    Ok(changes)
}

impl Changes {
    fn count(&mut self, before: Option<&ExchangeVerdict>, after: Option<&ExchangeVerdict>) {
        self.observations += 1;
        self.servers_before += u64::from(before.is_some());
        self.servers_after += u64::from(after.is_some());
        match (before, after) {
            (Some(b), Some(a)) => {
                let support = b.support != a.support || b.support_reason != a.support_reason;
                let version = b.version_name != a.version_name || b.cu != a.cu;
                let patch = b.patch_level != a.patch_level || b.esu_patched != a.esu_patched;
                let cves = b.cves != a.cves;
                let exo = b.exchange_online != a.exchange_online;
                self.support += u64::from(support);
                self.version += u64::from(version);
                self.patch += u64::from(patch);
                self.cves += u64::from(cves);
                self.exchange_online += u64::from(exo);
                self.changed += u64::from(support || version || patch || cves || exo || b != a);
            }
            (None, None) => {}
            _ => self.changed += 1,
        }
    }
}

async fn print(
    format: &str,
    judgement: &ScanRecord,
    compared: &ScanRecord,
    changes: &Changes,
    store: &Store,
) -> Result<()> {
    let before = surveyor_api::census_report(store, Some(compared.id)).await?;
    let after = surveyor_api::census_report(store, Some(judgement.id)).await?;
    if format == "json" {
        let doc = serde_json::json!({
            "judgement": judgement,
            "compared_with": compared.id,
            "changes": changes,
            "census_before": before.map(|r| r.census),
            "census_after": after.map(|r| r.census),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "scan {}: {} observations judged again, {} Exchange servers before and {} after; {} \
         changed (support {}, version {}, patch level {}, CVEs {}, Exchange Online bar {})",
        judgement.id,
        changes.observations,
        changes.servers_before,
        changes.servers_after,
        changes.changed,
        changes.support,
        changes.version,
        changes.patch,
        changes.cves,
        changes.exchange_online
    );
    if let Some(after) = after {
        print!("{}", crate::report::render(&after));
    }
    Ok(())
}
