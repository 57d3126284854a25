//! `surveyor registry`: the organisations registry attribution reads — import, export, and the
//! sector taxonomy.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use surveyor_attrib::{Format, Registry};
use surveyor_store::Store;

use crate::DbArg;
use time::OffsetDateTime;

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Replace the registry with FILE (CSV or JSON). Every bad line is reported with its
    /// number and nothing changes; a good file replaces the whole registry at once.
    Import {
        #[command(flatten)]
        db: DbArg,
        file: PathBuf,
        /// csv, json, or auto (JSON when the file starts with `[` or `{`).
        #[arg(long, default_value = "auto")]
        format: Format,
    },
    /// The sectors a registry may name, with their NIS2 annex and sector and KRITIS sector.
    Sectors {
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Print the registry as stored, in the canonical CSV or JSON that `import` reads.
    Export {
        #[command(flatten)]
        db: DbArg,
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
    },
}

impl RegistryCommand {
    /// The store URL the command works on.
    pub fn db(&self) -> &str {
        match self {
            RegistryCommand::Import { db, .. } | RegistryCommand::Export { db, .. } => &db.db,
            // Needs no store; opening the default one would create a file for nothing.
            RegistryCommand::Sectors { .. } => "sqlite::memory:",
        }
    }
}

pub async fn run(command: RegistryCommand, store: &Store) -> Result<()> {
    match command {
        RegistryCommand::Import { file, format, .. } => {
            let registry = Registry::parse(&crate::read(&file)?, format)
                .with_context(|| format!("{} is not a valid registry", file.display()))?;
            store
                .registry
                .replace_registry(
                    registry.organisations(),
                    &file.display().to_string(),
                    OffsetDateTime::now_utc(),
                )
                .await
                .context("could not store the registry")?;
            eprintln!(
                "surveyor registry: imported {} organisations from {}; the previous registry is replaced",
                registry.len(),
                file.display()
            );
            Ok(())
        }
        RegistryCommand::Sectors { format } if format == "json" => {
            let json = serde_json::to_string_pretty(&surveyor_attrib::taxonomy_json())?;
            println!("{json}");
            Ok(())
        }
        RegistryCommand::Sectors { .. } => {
            print!("{}", surveyor_attrib::taxonomy_table());
            Ok(())
        }
        RegistryCommand::Export { format, .. } => {
            let registry = surveyor_run::pipeline::load_registry(store).await?;
            if format == "json" {
                println!("{}", registry.to_json());
            } else {
                print!("{}", registry.to_csv());
            }
            Ok(())
        }
    }
}
