//! The whole knowledge base: build table, lifecycle, ESU periods and CVEs, loaded together.

use std::sync::LazyLock;

use surveyor_model::{ExchangeVerdict, Fingerprint};
use time::Date;

use crate::builds::{BuildTable, BuildTableError};
use crate::cves::CveTable;
use crate::esu::EsuTable;
use crate::lifecycle::LifecycleTable;
use crate::table::TableError;

/// The knowledge base compiled into the binary. A test loads it and runs [`crate::check`] on
/// it, so a broken edit of a data file fails the tests rather than a scan.
static BUILTIN: LazyLock<KnowledgeBase> = LazyLock::new(|| {
    KnowledgeBase::from_sources(&Sources::BUILTIN)
        .expect("the built-in knowledge base loads (checked by tests)")
});

/// The text of the four data files.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// `exchange-builds.csv`
    pub builds: &'a str,
    /// `lifecycle.csv`
    pub lifecycle: &'a str,
    /// `esu.csv`
    pub esu: &'a str,
    /// `cves.csv`
    pub cves: &'a str,
}

impl Sources<'static> {
    /// The files under `crates/surveyor-kb/data/`, as compiled in.
    pub const BUILTIN: Sources<'static> = Sources {
        builds: include_str!("../data/exchange-builds.csv"),
        lifecycle: include_str!("../data/lifecycle.csv"),
        esu: include_str!("../data/esu.csv"),
        cves: include_str!("../data/cves.csv"),
    };
}

/// Why a knowledge base did not load.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error(transparent)]
    Builds(#[from] BuildTableError),
    #[error(transparent)]
    Table(#[from] TableError),
}

/// Everything Surveyor knows about Exchange releases.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    pub builds: BuildTable,
    pub lifecycle: LifecycleTable,
    pub esu: EsuTable,
    pub cves: CveTable,
}

impl KnowledgeBase {
    /// The knowledge base shipped with Surveyor.
    pub fn builtin() -> &'static KnowledgeBase {
        &BUILTIN
    }

    /// Loads each file strictly (the first bad row is an error). Consistency between files is
    /// [`crate::check`]'s job.
    pub fn from_sources(sources: &Sources<'_>) -> Result<KnowledgeBase, KbError> {
        Ok(KnowledgeBase {
            builds: BuildTable::from_csv(sources.builds)?,
            lifecycle: LifecycleTable::from_csv(sources.lifecycle)?,
            esu: EsuTable::from_csv(sources.esu)?,
            cves: CveTable::from_csv(sources.cves)?,
        })
    }

    /// [`crate::classify`] with this knowledge base's tables.
    pub fn classify(&self, fingerprint: &Fingerprint, as_of: Date) -> Option<ExchangeVerdict> {
        crate::verdict::classify_with(fingerprint, &self.builds, self, as_of)
    }
}
