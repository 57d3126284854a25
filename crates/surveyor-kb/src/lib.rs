//! The Exchange knowledge base: build table, lifecycle and verdicts. Pure: no I/O, no clock.
//!
//! Every fact here comes from `data/exchange-builds.csv` or from the lifecycle table in
//! [`lifecycle`]; `docs/knowledge-base.md` says where each came from.

pub mod builds;
pub mod lifecycle;
mod verdict;

pub use builds::{BuildInfo, BuildTable, BuildTableError};
pub use lifecycle::{end_of_support, support_on};
pub use verdict::{classify, version_name};
