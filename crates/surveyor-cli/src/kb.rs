//! `surveyor kb`: what the knowledge base knows about a build, whether its data is consistent,
//! and Exchange Online's enforcement stage for a server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use surveyor_kb::{enforcement_stage, Assessment, KnowledgeBase, Sources};
use surveyor_model::observation::CveExposure;
use surveyor_model::Build;
use time::{Date, OffsetDateTime};

#[derive(Args)]
pub struct KbArgs {
    #[command(subcommand)]
    pub command: KbCommand,
}

#[derive(Subcommand)]
pub enum KbCommand {
    /// Everything the knowledge base knows about one build, as of a date.
    Show {
        /// A build, 3 parts (CU) or 4 parts (update), short or zero-padded: 15.1.2507.61.
        build: String,
        /// Judge support, patch level and CVEs as of this date (default: today, UTC).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        as_of: Option<Date>,
        /// `text` for people, `json` for programs.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Check the data files (the built-in ones, or those of --kb); fails on any problem the
    /// data does not already document.
    Check,
    /// Write the knowledge base's data files into DIR, to edit and use with --kb DIR.
    Export {
        /// The directory to write into (created if missing).
        dir: PathBuf,
        /// Overwrite files of the same names that are already there.
        #[arg(long)]
        force: bool,
    },
    /// The Exchange Online enforcement stage of a server first flagged on a date.
    Enforcement {
        /// The day Exchange Online first reported the server as persistently vulnerable.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        first_seen: Date,
        /// The day to compute the stage for.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        as_of: Date,
        /// Days the tenant paused enforcement in all (at most 90 per calendar year count).
        #[arg(long, default_value_t = 0)]
        paused_days: u32,
    },
}

pub fn run(args: KbArgs, kb_dir: Option<&Path>) -> Result<()> {
    match args.command {
        KbCommand::Show {
            build,
            as_of,
            format,
        } => show(
            &*load(kb_dir)?,
            &build,
            as_of.unwrap_or_else(today),
            &format,
        ),
        KbCommand::Check => check(kb_dir),
        KbCommand::Export { dir, force } => export(kb_dir, &dir, force),
        KbCommand::Enforcement {
            first_seen,
            as_of,
            paused_days,
        } => enforcement(first_seen, as_of, paused_days),
    }
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{s:?} is not a date of the form YYYY-MM-DD"))
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// The knowledge base every judging command uses: the files in `dir` (`--kb`,
/// `SURVEYOR_KB`), checked in full before anything is judged, or the built-in one.
pub fn load(dir: Option<&Path>) -> Result<Arc<KnowledgeBase>> {
    let Some(dir) = dir else {
        return Ok(Arc::new(KnowledgeBase::builtin().clone()));
    };
    let texts = read_dir_files(dir)?;
    let sources = sources_of(&texts)?;
    let kb = KnowledgeBase::load_checked(&sources)
        .with_context(|| format!("the knowledge base in {} is not usable", dir.display()))?;
    tracing::info!(dir = %dir.display(), kb = %kb.stamp, "knowledge base loaded");
    Ok(Arc::new(kb))
}

/// Every data file of a knowledge-base directory, by name.
fn read_dir_files(dir: &Path) -> Result<Vec<(&'static str, String)>> {
    surveyor_kb::FILES
        .iter()
        .map(|&name| {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {} (a knowledge-base directory holds {}, as `surveyor kb \
                     export DIR` writes them)",
                    path.display(),
                    surveyor_kb::FILES.join(", ")
                )
            })?;
            Ok((name, text))
        })
        .collect()
}

fn sources_of<'a>(texts: &'a [(&'static str, String)]) -> Result<Sources<'a>> {
    Sources::from_files(|name| {
        texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_str())
    })
    .map_err(|missing| anyhow::anyhow!("{missing} is missing"))
}

/// Writes the data files of the knowledge base in use into `dir`. Files already there are
/// kept unless `force`: an analyst's edits are not overwritten by accident.
fn export(kb_dir: Option<&Path>, dir: &Path, force: bool) -> Result<()> {
    let texts = match kb_dir {
        Some(from) => {
            load(Some(from))?;
            read_dir_files(from)?
        }
        None => Sources::BUILTIN
            .files()
            .iter()
            .map(|(name, text)| (*name, text.to_string()))
            .collect(),
    };
    if !force {
        let present: Vec<String> = texts
            .iter()
            .map(|(name, _)| dir.join(name))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !present.is_empty() {
            bail!(
                "{} already exist(s); use --force to overwrite",
                present.join(", ")
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in &texts {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let kb = KnowledgeBase::from_sources(&sources_of(&texts)?)?;
    eprintln!(
        "surveyor kb: wrote {} files to {} (knowledge base {}); edit them, check with \
         `surveyor kb check --kb {}`",
        texts.len(),
        dir.display(),
        kb.stamp,
        dir.display()
    );
    Ok(())
}

fn show(kb: &KnowledgeBase, build: &str, as_of: Date, format: &str) -> Result<()> {
    let build: Build = build.parse().context("not a build number")?;
    let Some(a) = kb.assess(build, as_of) else {
        if build.major == 15 && build.minor >= 20 {
            bail!("{build} is an Exchange Online build, never on-premises");
        }
        bail!("{build} is not a build of any on-premises Exchange generation");
    };
    let doc = document(kb, &a, as_of)?;
    if format == "json" {
        emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?))
    } else {
        emit(&render(kb, &a, as_of))
    }
}

/// The JSON form of `kb show`: the verdict's fields plus the row and CVE facts behind them.
fn document(kb: &KnowledgeBase, a: &Assessment, as_of: Date) -> Result<Value> {
    let row = a.row.as_ref().map(|r| {
        json!({
            "build": r.build.to_string(),
            "name": r.full_name(),
            "released": r.released.map(|d| d.to_string()),
            "released_month": r.released.is_none().then(|| month(r.released_between.0)),
            "source": r.source,
            "flag": (!r.flag.as_str().is_empty()).then(|| r.flag.as_str()),
        })
    });
    let lifecycle = kb.lifecycle.get(a.family).map(|l| {
        json!({
            "mainstream_end": l.mainstream_end.map(|d| d.to_string()),
            "extended_end": l.extended_end.map(|d| d.to_string()),
            "modern_lifecycle": l.modern_lifecycle,
            "source": l.source,
        })
    });
    let esu_period = kb.esu.period_on(as_of).map(|p| p.period);
    let cves: Vec<Value> = a
        .cves
        .iter()
        .map(|c| {
            let fact = cve_fact(kb, a, c);
            json!({
                "cve": c.cve,
                "status": c.status.as_str(),
                "fixed_in": c.fixed_in.map(|b| b.to_string()),
                "update": c.fixed_in.and(fact.map(|f| f.update.clone())),
                "published": fact.map(|f| f.published.to_string()),
                "severity": c.severity.as_str(),
                "exploited": c.exploited,
                "exploited_in_the_wild": fact.and_then(|f| f.exploited_in_the_wild),
                "config_dependent": fact.map(|f| f.config_dependent),
                "note": fact.map(|f| f.note.clone()),
                "source": fact.map(|f| f.source.clone()),
            })
        })
        .collect();
    Ok(json!({
        "build": a.build.to_string(),
        "family": a.family,
        "version_name": a.version_name,
        "build_precision": a.precision,
        "known_build": row,
        "as_of": as_of.to_string(),
        "support": a.support,
        "support_reason": a.support_reason,
        "lifecycle": lifecycle,
        "esu_patched": a.esu_patched,
        "esu_eligible_cu": kb.esu.is_eligible(a.build),
        "esu_period_on_as_of": esu_period,
        "patch_level": serde_json::to_value(&a.patch_level)?,
        "upgrade_path": a.upgrade_path,
        "exchange_online": a.exchange_online,
        "cves": cves,
        "knowledge_base": {
            "digest": kb.stamp.digest,
            "newest_release": kb.stamp.newest_release.to_string(),
        },
    }))
}

fn month(d: Date) -> String {
    format!("{}-{:02}", d.year(), u8::from(d.month()))
}

fn render(kb: &KnowledgeBase, a: &Assessment, as_of: Date) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:<15} {value}\n"));
    };
    line("build", a.build.to_string());
    line("name", a.version_name.clone());
    line("family", a.family.product_name().to_string());
    line("precision", a.precision.as_str().to_string());
    match &a.row {
        Some(r) => {
            let released = match r.released {
                Some(d) => d.to_string(),
                None => format!("{} (month only)", month(r.released_between.0)),
            };
            line("released", released);
            if r.build != a.build {
                line(
                    "named after",
                    format!("{} (closest lower known update)", r.build),
                );
            }
            if !r.flag.as_str().is_empty() {
                line("flag", r.flag.as_str().to_string());
            }
            line("source", r.source.clone());
        }
        None => line("released", "unknown (no exact update level)".into()),
    }
    line(
        "support",
        format!(
            "{} on {as_of} ({})",
            a.support.as_str(),
            a.support_reason.as_str()
        ),
    );
    if let Some(l) = kb.lifecycle.get(a.family) {
        let end = match (l.extended_end, l.modern_lifecycle) {
            (Some(end), _) => format!("extended support ends {end}"),
            (None, true) => "Modern Lifecycle: no fixed end, stay current".into(),
            (None, false) => "no end date recorded".into(),
        };
        line("lifecycle", end);
    }
    let esu = match (a.esu_patched, kb.esu.is_eligible(a.build)) {
        (true, _) => "ESU-only update installed".to_string(),
        (false, true) => "CU eligible for ESU; no ESU-only update seen".to_string(),
        (false, false) => "CU not eligible for ESU".to_string(),
    };
    line("esu", esu);
    let p = &a.patch_level;
    let days = |d: Option<u32>| d.map_or("unknown".to_string(), |d| format!("{d} days behind"));
    if let Some(u) = &p.newest_for_cu {
        line(
            "newest for CU",
            format!("{} {} ({})", u.build, u.name, days(p.days_behind_cu)),
        );
    }
    if let Some(u) = &p.newest_for_family {
        line(
            "newest family",
            format!("{} {} ({})", u.build, u.name, days(p.days_behind_family)),
        );
    }
    line("upgrade path", a.upgrade_path.as_str().to_string());
    if let Some(bar) = &a.exchange_online {
        let meets = match bar.meets {
            Some(true) => "meets it",
            Some(false) => "below it: Exchange Online refuses its mail",
            None => "cannot tell from the CU alone",
        };
        line(
            "Exchange Online",
            format!(
                "OnPremises connectors need {} or later since {} ({meets})",
                bar.minimum_update, bar.since
            ),
        );
    }
    line("CVEs", format!("{} published by {as_of}", a.cves.len()));
    for c in &a.cves {
        let fixed = match c.fixed_in {
            Some(b) => format!(" (fix {b})"),
            None => String::new(),
        };
        let exploited = if c.exploited { ", exploited" } else { "" };
        let facts = format!(" [{}{exploited}]", c.severity.as_str());
        out.push_str(&format!(
            "  {:<16} {}{fixed}{facts}\n",
            c.cve,
            c.status.as_str()
        ));
    }
    out.push_str(&format!("{:<15} {}\n", "knowledge base", kb.stamp));
    out
}

/// The CVE row a status rests on: the host CU's row, else the newest row of its family (the
/// one a newer CU inherits), else any.
fn cve_fact<'a>(
    kb: &'a KnowledgeBase,
    a: &Assessment,
    c: &'a CveExposure,
) -> Option<&'a surveyor_kb::CveFix> {
    c.fixed_in
        .and_then(|b| kb.cves.find(&c.cve, b))
        .or_else(|| {
            kb.cves
                .rows_of(&c.cve)
                .filter(|f| f.family() == Some(a.family))
                .max_by_key(|f| f.fixed)
        })
        .or_else(|| kb.cves.rows_of(&c.cve).next())
}

fn check(kb_dir: Option<&Path>) -> Result<()> {
    let texts = kb_dir.map(read_dir_files).transpose()?;
    let sources = match &texts {
        Some(texts) => sources_of(texts)?,
        None => Sources::BUILTIN,
    };
    let problems = surveyor_kb::check(&sources);
    let mut out = String::new();
    for p in &problems {
        out.push_str(&format!("{p}\n"));
    }
    let undocumented = problems.iter().filter(|p| !p.documented).count();
    out.push_str(&format!(
        "{} problems, {undocumented} undocumented\n",
        problems.len()
    ));
    emit(&out)?;
    if undocumented > 0 {
        bail!("the knowledge base has {undocumented} undocumented problems");
    }
    Ok(())
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write to stdout"),
    }
}

fn enforcement(first_seen: Date, as_of: Date, paused_days: u32) -> Result<()> {
    let s = enforcement_stage(first_seen, as_of, paused_days);
    let doc = json!({
        "first_seen": first_seen.to_string(),
        "as_of": as_of.to_string(),
        "stage": s.number,
        "kind": s.kind.as_str(),
        "enforcement_day": s.enforcement_day,
        "paused_days_counted": s.paused_days_counted,
        "smtp_replies": s.smtp_replies,
        "next_stage_on": s.next_stage_on.map(|d| d.to_string()),
        "note": "minutes throttled or blocked per stage are not published in our sources",
    });
    emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?))
}
