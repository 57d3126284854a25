//! The Exchange knowledge base: builds, lifecycle, ESU, CVEs, verdicts, and Exchange Online's
//! enforcement stages and minimum builds. Pure: no I/O, no clock (the as-of date is always a
//! parameter).
//!
//! Every fact comes from a data file under `data/`, compiled in, or handed over as text by the
//! binary, which reads it from a directory (`--kb`) and has it checked before use.
//! `docs/knowledge-base.md` says where each fact came from and how to update them,
//! `docs/methodology.md` how verdicts are reached.

pub mod builds;
mod check;
pub mod cves;
pub mod enforcement;
pub mod esu;
pub mod exchange_online;
mod knowledge;
pub mod lifecycle;
mod show;
mod table;
mod verdict;

pub use builds::{BuildInfo, BuildTable, BuildTableError, Flag};
pub use check::{check, Problem, BUILDS_FILE};
pub use cves::{CveFix, CveTable, Severity};
pub use enforcement::{enforcement_stage, Stage, StageKind};
pub use esu::{EsuPeriod, EsuTable};
pub use exchange_online::{ExchangeOnlineTable, MinimumBuild};
pub use knowledge::{KbError, KbStamp, KnowledgeBase, Sources, FILES};
pub use lifecycle::{end_of_support, support_on, Lifecycle, LifecycleTable};
pub use show::{check_summary, enforcement_document, ShowError, Shown};
pub use table::TableError;
pub use verdict::{classify, version_name, Assessment};
