//! `surveyor rejudge`: flags into `surveyor_run::rejudge`, which judges a stored scan's
//! observations again (with the knowledge base in use, and for another day with `--as-of`,
//! probing nothing), and its changes and census printed here.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use surveyor_kb::KnowledgeBase;
use surveyor_run::rejudge::{Changes, Rejudged};
use surveyor_store::{ScanId, ScanRecord, Store};
use time::Date;

use crate::DbArg;

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

pub async fn run(args: RejudgeArgs, kb: Arc<KnowledgeBase>) -> Result<()> {
    let store = crate::open_store(&args.db.db).await?;
    let started = |id: ScanId, source: &ScanRecord, current: &ScanRecord| {
        eprintln!(
            "surveyor rejudge: scan {id} judges scan {}'s observations (read from scan {}) \
             with knowledge base {} as of {}",
            source.id,
            current.id,
            kb.stamp,
            args.as_of.unwrap_or(source.as_of)
        );
    };
    let scan = args.scan.map(ScanId);
    match surveyor_run::rejudge::rejudge(&store, &kb, scan, args.as_of, started).await? {
        Rejudged::Already {
            judgement,
            source,
            as_of,
        } => {
            eprintln!(
                "surveyor rejudge: scan {} already judges scan {}'s observations with \
                 knowledge base {} as of {as_of}; nothing to do",
                judgement.id, source.id, kb.stamp
            );
            print(
                &args.format,
                &judgement,
                &source,
                &Changes::default(),
                &store,
            )
            .await
        }
        Rejudged::Judged {
            judgement,
            compared,
            changes,
            ..
        } => print(&args.format, &judgement, &compared, &changes, &store).await,
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
    print!("{}", changes.text(judgement));
    if let Some(after) = after {
        print!("{}", surveyor_api::text::render(&after));
    }
    Ok(())
}
