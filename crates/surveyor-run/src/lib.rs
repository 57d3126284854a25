//! Running the work the commands ask for: a scan through the pipeline (engine → enrichment →
//! output and store, with checkpoints and spill files), a distributed census (create, status,
//! and the worker with its leases, heartbeats and rate split), and re-judgements of stored
//! scans. Typed configuration in ([`ScanSpec`], [`ScanJob`], [`WorkerConfig`]), typed results
//! and events out (and as text, `show.rs`); it never reads argv or the environment and never
//! prints.

pub mod census;
pub mod checkpoint;
pub mod enrich;
mod error;
pub mod input;
pub mod output;
pub mod pipeline;
pub mod rejudge;
pub mod request;
mod show;
pub mod spec;
pub mod spill;

pub use census::{WorkerConfig, WorkerEvent};
pub use checkpoint::Checkpoint;
pub use error::RunError;
pub use output::OutputFormat;
pub use pipeline::{run_scan, run_stream_scan, Discovery, Durability, ScanJob, ScanOutcome};
pub use request::{CensusRequest, PreparedScan, ScanRequest};
pub use show::stale_judgement;
pub use spec::{ScanSpec, SpecError};
