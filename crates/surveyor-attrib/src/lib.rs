//! Attribution: which organisation runs a server, and in which sector.
//!
//! A [`Registry`] is a validated list of organisations (read from CSV or JSON); an
//! [`Attributor`] indexes it (longest-prefix match over prefixes, registered domains, AS
//! numbers) and applies the rules documented in [`matcher`] and `docs/attribution.md`.
//! [`sector_info`] maps each sector to NIS2 and KRITIS; an [`AsnTable`] says which AS announces
//! an address, a [`CountryTable`] in which country it is registered. No I/O: callers bring the
//! text.

mod asn;
mod country;
mod lines;
mod lpm;
pub mod matcher;
mod names;
pub mod registry;
pub mod sectors;
mod taxonomy;

pub use asn::{AsnTable, AsnTableError};
pub use country::{CountryTable, CountryTableError};
pub use matcher::{Attributor, Evidence, PrefixMatch};
pub use registry::{Claim, Format, Location, Problem, ProblemKind, Registry, RegistryError};
pub use sectors::{sector_info, sector_table, Nis2, Nis2Annex, SectorInfo};
pub use taxonomy::{taxonomy_json, taxonomy_table};
