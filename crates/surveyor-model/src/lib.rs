//! Surveyor's domain types: plain Rust, no I/O.
//!
//! Everything that crosses a crate boundary (what the scanner saw, what the knowledge base
//! concluded, what the census counts) is defined here so that the scanner, the store and the API
//! agree on one vocabulary without depending on each other.

pub mod build;
pub mod census;
pub mod observation;
pub mod registry;

pub use build::{Build, BuildParseError, Family};
pub use census::{Census, CensusDiff, CensusRow, ExchangeServer, ServerChange};
pub use observation::{
    Evidence, ExchangeVerdict, Fingerprint, Observation, PatchBand, Scheme, Signal, Status,
    Support, TlsInfo,
};
pub use registry::{Attribution, AttributionRule, Organisation, Sector};
