//! `surveyor kb`: what the knowledge base knows about a build, whether its data is consistent,
//! and Exchange Online's enforcement stage for a server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use surveyor_kb::{KnowledgeBase, Sources};
use surveyor_model::Build;
use time::Date;

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
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::parse_date)]
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
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::parse_date)]
        first_seen: Date,
        /// The day to compute the stage for.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::parse_date)]
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
            as_of.unwrap_or_else(crate::today),
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
    let shown = kb.show(build, as_of)?;
    let doc = shown.document()?;
    if format == "json" {
        emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?))
    } else {
        emit(&shown.text())
    }
}

fn check(kb_dir: Option<&Path>) -> Result<()> {
    let texts = kb_dir.map(read_dir_files).transpose()?;
    let sources = match &texts {
        Some(texts) => sources_of(texts)?,
        None => Sources::BUILTIN,
    };
    let problems = surveyor_kb::check(&sources);
    emit(&surveyor_kb::check_summary(&problems))?;
    let undocumented = problems.iter().filter(|p| !p.documented).count();
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
    let doc = surveyor_kb::enforcement_document(first_seen, as_of, paused_days);
    emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?))
}
