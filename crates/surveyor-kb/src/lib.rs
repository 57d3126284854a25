//! The Exchange knowledge base: builds, lifecycle, ESU, CVEs, verdicts, and Exchange Online's
//! enforcement stages. Pure: no I/O, no clock (the as-of date is always a parameter).
//!
//! Every fact comes from a data file under `data/` (compiled in); `docs/knowledge-base.md`
//! says where each came from and how to update them, `docs/methodology.md` how verdicts are
//! reached.

pub mod builds;
mod check;
pub mod cves;
pub mod enforcement;
pub mod esu;
mod knowledge;
pub mod lifecycle;
mod table;
mod verdict;

pub use builds::{BuildInfo, BuildTable, BuildTableError, Flag};
pub use check::{check, Problem, BUILDS_FILE};
pub use cves::{CveFix, CveTable, Severity};
pub use enforcement::{enforcement_stage, Stage, StageKind};
pub use esu::{EsuPeriod, EsuTable};
pub use knowledge::{KbError, KnowledgeBase, Sources};
pub use lifecycle::{end_of_support, support_on, Lifecycle, LifecycleTable};
pub use table::TableError;
pub use verdict::{classify, version_name, Assessment};
