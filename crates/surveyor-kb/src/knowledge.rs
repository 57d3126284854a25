//! The whole knowledge base: build table, lifecycle, ESU periods, CVEs and Exchange Online's
//! minimum builds, loaded together, checked, and named by a stamp.

use std::fmt;
use std::sync::LazyLock;

use sha2::{Digest, Sha256};
use surveyor_model::{ExchangeVerdict, Fingerprint};
use time::Date;

use crate::builds::{BuildTable, BuildTableError};
use crate::check::Problem;
use crate::cves::CveTable;
use crate::esu::EsuTable;
use crate::exchange_online::ExchangeOnlineTable;
use crate::lifecycle::LifecycleTable;
use crate::table::TableError;

/// The knowledge base compiled into the binary. A test loads it and runs [`crate::check`] on
/// it, so a broken edit of a data file fails the tests rather than a scan.
static BUILTIN: LazyLock<KnowledgeBase> = LazyLock::new(|| {
    KnowledgeBase::from_sources(&Sources::BUILTIN)
        .expect("the built-in knowledge base loads (checked by tests)")
});

/// The data files' names, in the order [`Sources::files`] lists them.
pub const FILES: [&str; 5] = [
    crate::check::BUILDS_FILE,
    crate::lifecycle::FILE,
    crate::esu::FILE,
    crate::cves::FILE,
    crate::exchange_online::FILE,
];

/// The text of the data files.
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
    /// `exchange-online.csv`
    pub exchange_online: &'a str,
}

impl Sources<'static> {
    /// The files under `crates/surveyor-kb/data/`, as compiled in.
    pub const BUILTIN: Sources<'static> = Sources {
        builds: include_str!("../data/exchange-builds.csv"),
        lifecycle: include_str!("../data/lifecycle.csv"),
        esu: include_str!("../data/esu.csv"),
        cves: include_str!("../data/cves.csv"),
        exchange_online: include_str!("../data/exchange-online.csv"),
    };
}

impl<'a> Sources<'a> {
    /// Every file as (name, text), in the order of [`FILES`].
    pub fn files(&self) -> [(&'static str, &'a str); 5] {
        [
            (FILES[0], self.builds),
            (FILES[1], self.lifecycle),
            (FILES[2], self.esu),
            (FILES[3], self.cves),
            (FILES[4], self.exchange_online),
        ]
    }

    /// Sources from a lookup by file name; `Err` names the first file the lookup lacks.
    pub fn from_files(
        mut text_of: impl FnMut(&'static str) -> Option<&'a str>,
    ) -> Result<Sources<'a>, &'static str> {
        let mut get = |name: &'static str| text_of(name).ok_or(name);
        Ok(Sources {
            builds: get(FILES[0])?,
            lifecycle: get(FILES[1])?,
            esu: get(FILES[2])?,
            cves: get(FILES[3])?,
            exchange_online: get(FILES[4])?,
        })
    }

    /// SHA-256 over every file's name and text, line ends normalised to LF so that a checkout
    /// with CRLF line ends judges under the same name.
    fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for (name, text) in self.files() {
            let text = text.replace("\r\n", "\n");
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update((text.len() as u64).to_be_bytes());
            hash.update(text.as_bytes());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Which knowledge base judged something: a digest of its data and the newest release in it.
/// Two knowledge bases with the same digest judge every server alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KbStamp {
    /// SHA-256 (64 lower-case hex digits) of the data files.
    pub digest: String,
    /// The newest release date in the build table (a month-only row counts from its last day).
    pub newest_release: Date,
}

impl KbStamp {
    /// The first 12 hex digits: enough to tell knowledge bases apart on a screen.
    pub fn short(&self) -> &str {
        &self.digest[..12.min(self.digest.len())]
    }
}

impl fmt::Display for KbStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (newest release {})",
            self.short(),
            self.newest_release
        )
    }
}

/// Why a knowledge base did not load.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error(transparent)]
    Builds(#[from] BuildTableError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("the build table is empty")]
    Empty,
    /// [`crate::check`] found problems the data does not document.
    #[error("{}", problem_list(.0))]
    Check(Vec<Problem>),
}

fn problem_list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    format!(
        "the knowledge base has {} problem(s):\n{}",
        problems.len(),
        lines.join("\n")
    )
}

/// Everything Surveyor knows about Exchange releases.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    pub builds: BuildTable,
    pub lifecycle: LifecycleTable,
    pub esu: EsuTable,
    pub cves: CveTable,
    pub exchange_online: ExchangeOnlineTable,
    pub stamp: KbStamp,
}

impl KnowledgeBase {
    /// The knowledge base shipped with Surveyor.
    pub fn builtin() -> &'static KnowledgeBase {
        &BUILTIN
    }

    /// Loads each file strictly (the first bad row is an error). Consistency between files is
    /// [`crate::check`]'s job; [`KnowledgeBase::load_checked`] runs both.
    pub fn from_sources(sources: &Sources<'_>) -> Result<KnowledgeBase, KbError> {
        let builds = BuildTable::from_csv(sources.builds)?;
        let newest_release = builds
            .iter()
            .map(|r| r.available_by())
            .max()
            .ok_or(KbError::Empty)?;
        Ok(KnowledgeBase {
            builds,
            lifecycle: LifecycleTable::from_csv(sources.lifecycle)?,
            esu: EsuTable::from_csv(sources.esu)?,
            cves: CveTable::from_csv(sources.cves)?,
            exchange_online: ExchangeOnlineTable::from_csv(sources.exchange_online)?,
            stamp: KbStamp {
                digest: sources.digest(),
                newest_release,
            },
        })
    }

    /// What a knowledge base from outside the binary must pass before it judges anything:
    /// [`crate::check`] (every problem it does not document is an error, all listed at once)
    /// and then the strict load. Nothing is judged with a half-loaded knowledge base.
    pub fn load_checked(sources: &Sources<'_>) -> Result<KnowledgeBase, KbError> {
        let problems: Vec<Problem> = crate::check(sources)
            .into_iter()
            .filter(|p| !p.documented)
            .collect();
        if !problems.is_empty() {
            return Err(KbError::Check(problems));
        }
        KnowledgeBase::from_sources(sources)
    }

    /// [`crate::classify`] with this knowledge base's tables.
    pub fn classify(&self, fingerprint: &Fingerprint, as_of: Date) -> Option<ExchangeVerdict> {
        crate::verdict::classify_with(fingerprint, &self.builds, self, as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_names_the_data() {
        let builtin = KnowledgeBase::builtin();
        assert_eq!(builtin.stamp.digest.len(), 64);
        let newest = builtin.builds.iter().map(|r| r.available_by()).max();
        assert_eq!(Some(builtin.stamp.newest_release), newest);
        // The same data with CRLF line ends is the same knowledge base; one changed byte is not.
        let crlf: Vec<String> = Sources::BUILTIN
            .files()
            .iter()
            .map(|(_, t)| t.replace('\n', "\r\n"))
            .collect();
        let sources = Sources::from_files(|name| {
            FILES
                .iter()
                .position(|f| *f == name)
                .map(|i| crlf[i].as_str())
        })
        .unwrap();
        assert_eq!(sources.digest(), builtin.stamp.digest);
        let edited = Sources {
            lifecycle: &Sources::BUILTIN.lifecycle.replacen("2017", "2018", 1),
            ..Sources::BUILTIN
        };
        assert_ne!(edited.digest(), builtin.stamp.digest);
    }

    #[test]
    fn a_checked_load_refuses_data_with_problems() {
        let cves = format!(
            "{}CVE-2099-0001,15.1.9999.1,Jan99SU,2099-01-01,unknown,unknown,false,,x\n",
            Sources::BUILTIN.cves
        );
        let broken = Sources {
            cves: &cves,
            ..Sources::BUILTIN
        };
        // The strict load alone would take it; the check names the file and line.
        assert!(KnowledgeBase::from_sources(&broken).is_ok());
        let err = KnowledgeBase::load_checked(&broken)
            .unwrap_err()
            .to_string();
        let line = cves.lines().count();
        assert!(
            err.contains(&format!("cves.csv line {line}: CVE-2099-0001: fixed build")),
            "{err}"
        );
        assert!(KnowledgeBase::load_checked(&Sources::BUILTIN).is_ok());
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Sources::from_files(|name| (name != "esu.csv").then_some("")).unwrap_err();
        assert_eq!(err, "esu.csv");
    }
}
