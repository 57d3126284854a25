//! The API's wire format: the JSON bodies `docs/output.md` documents, as types of the API's
//! own, converted from the store's. A store type may change for storage's sake; what clients
//! read changes only here, on purpose (`tests/wire.rs` holds every body byte for byte).
//!
//! Model types (`Observation`, `Census`, `Organisation`, `ExchangeServer`, the verdict's
//! enums) are the domain's documented JSON shared with `surveyor scan`'s output and are used
//! as they are.

use std::net::IpAddr;

use serde::Serialize;
use surveyor_model::{
    Census, ExchangeServer, Family, Observation, Organisation, PatchBand, Status, Support,
};
use time::{Date, OffsetDateTime};

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// A scan or a re-judgement of one (`scan` in most answers, `/scans`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Scan {
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    #[serde(with = "iso_date")]
    as_of: Date,
    targets: String,
    ports: Vec<u16>,
    tool_version: String,
    observations: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pruned_at: Option<OffsetDateTime>,
    kb: Option<Kb>,
    #[serde(with = "time::serde::rfc3339")]
    judged_at: OffsetDateTime,
    judged_from: Option<i64>,
    projection: bool,
    superseded_by: Option<i64>,
}

/// The knowledge base that judged a scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Kb {
    digest: String,
    #[serde(with = "iso_date")]
    newest_release: Date,
}

impl From<&surveyor_store::ScanRecord> for Scan {
    fn from(s: &surveyor_store::ScanRecord) -> Scan {
        Scan {
            id: s.id.0,
            started_at: s.started_at,
            finished_at: s.finished_at,
            as_of: s.as_of,
            targets: s.targets.clone(),
            ports: s.ports.clone(),
            tool_version: s.tool_version.clone(),
            observations: s.observations,
            pruned_at: s.pruned_at,
            kb: s.kb.as_ref().map(|kb| Kb {
                digest: kb.digest.clone(),
                newest_release: kb.newest_release,
            }),
            judged_at: s.judged_at,
            judged_from: s.judged_from.map(|id| id.0),
            projection: s.projection,
            superseded_by: s.superseded_by.map(|id| id.0),
        }
    }
}

/// `GET /api/v1/census` and `surveyor report --format json`.
#[derive(Debug, Serialize)]
pub(crate) struct CensusBody<'a> {
    pub(crate) scan: Scan,
    pub(crate) census: &'a Census,
}

/// A census dimension as `group_by` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Dimension {
    Family,
    Cu,
    Version,
    Support,
    Patch,
    Sector,
    Organisation,
    Asn,
    Country,
}

impl From<surveyor_store::Dimension> for Dimension {
    fn from(d: surveyor_store::Dimension) -> Dimension {
        use surveyor_store::Dimension as D;
        match d {
            D::Family => Dimension::Family,
            D::Cu => Dimension::Cu,
            D::Version => Dimension::Version,
            D::Support => Dimension::Support,
            D::Patch => Dimension::Patch,
            D::Sector => Dimension::Sector,
            D::Organisation => Dimension::Organisation,
            D::Asn => Dimension::Asn,
            D::Country => Dimension::Country,
        }
    }
}

/// One group of a census: the values of the dimensions asked for, and its servers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Group {
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<Family>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    support: Option<Support>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<PatchBand>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    organisation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    asn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    servers: u64,
}

impl From<surveyor_store::CensusGroup> for Group {
    fn from(g: surveyor_store::CensusGroup) -> Group {
        Group {
            family: g.family,
            cu: g.cu,
            version: g.version,
            support: g.support,
            patch: g.patch,
            sector: g.sector,
            organisation: g.organisation,
            asn: g.asn,
            country: g.country,
            servers: g.servers,
        }
    }
}

/// `GET /api/v1/statistics`.
#[derive(Debug, Serialize)]
pub(crate) struct Statistics {
    pub(crate) scan: Scan,
    pub(crate) group_by: Vec<Dimension>,
    pub(crate) groups: Vec<Group>,
}

/// One point of `GET /api/v1/trends`: a group in one finished scan.
#[derive(Debug, Serialize)]
pub(crate) struct TrendPoint {
    scan: i64,
    #[serde(with = "time::serde::rfc3339")]
    finished_at: OffsetDateTime,
    #[serde(with = "iso_date")]
    as_of: Date,
    #[serde(flatten)]
    group: Group,
}

impl From<surveyor_store::TrendPoint> for TrendPoint {
    fn from(p: surveyor_store::TrendPoint) -> TrendPoint {
        TrendPoint {
            scan: p.scan.0,
            finished_at: p.finished_at,
            as_of: p.as_of,
            group: p.group.into(),
        }
    }
}

/// `GET /api/v1/hosts`: one page of servers and where the next one starts.
#[derive(Debug, Serialize)]
pub(crate) struct HostsPage {
    pub(crate) scan: Scan,
    /// The servers as the scan recorded them (the observation JSON of `docs/output.md`).
    pub(crate) hosts: Vec<Observation>,
    /// Hand back as `cursor` for the next page; `null` on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// `GET /api/v1/hosts/{ip}`.
#[derive(Debug, Serialize)]
pub(crate) struct Host {
    ip: IpAddr,
    ports: Vec<HostPort>,
    /// `[scan, observation]` pairs, oldest scan first.
    history: Vec<(i64, Observation)>,
}

/// The latest state of one port of a host.
#[derive(Debug, Serialize)]
struct HostPort {
    port: u16,
    #[serde(with = "time::serde::rfc3339")]
    first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_seen: OffsetDateTime,
    last_scan: i64,
    status: Status,
    exchange: Option<ExchangeServer>,
}

impl From<surveyor_store::HostDetail> for Host {
    fn from(h: surveyor_store::HostDetail) -> Host {
        Host {
            ip: h.ip,
            ports: h
                .ports
                .into_iter()
                .map(|p| HostPort {
                    port: p.port,
                    first_seen: p.first_seen,
                    last_seen: p.last_seen,
                    last_scan: p.last_scan.0,
                    status: p.status,
                    exchange: p.exchange,
                })
                .collect(),
            history: h
                .history
                .into_iter()
                .map(|(scan, observation)| (scan.0, observation))
                .collect(),
        }
    }
}

/// One organisation of the registry with its servers in the scan.
#[derive(Debug, Serialize)]
pub(crate) struct OrganisationServers {
    #[serde(flatten)]
    pub(crate) organisation: Organisation,
    pub(crate) servers: u64,
    /// Of those, how many run a build out of support.
    pub(crate) unsupported: u64,
}

/// `GET /api/v1/organisations`.
#[derive(Debug, Serialize)]
pub(crate) struct Organisations {
    /// The scan the counts come from; `null` before the first finished scan (counts are 0).
    pub(crate) scan: Option<Scan>,
    pub(crate) organisations: Vec<OrganisationServers>,
}

/// One entry of `GET /api/v1/exports`, the export audit log.
#[derive(Debug, Serialize)]
pub(crate) struct ExportEntry {
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    token_id: i64,
    token_name: String,
    role: Role,
    scan: i64,
    format: String,
    pseudonymised: bool,
    filter: Filter,
    /// `null` while the export runs.
    rows: Option<u64>,
    outcome: Outcome,
}

/// A token's role as the audit log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Viewer,
    Analyst,
    Researcher,
    Admin,
}

/// How an export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Running,
    Complete,
    Aborted,
}

/// The census filter an export was made with; every field is present, `null` when unset.
#[derive(Debug, Serialize)]
struct Filter {
    family: Option<Family>,
    cu: Option<String>,
    version: Option<String>,
    support: Option<Support>,
    patch: Option<PatchBand>,
    sector: Option<String>,
    organisation: Option<String>,
    asn: Option<String>,
    country: Option<String>,
}

impl From<surveyor_store::ExportRecord> for ExportEntry {
    fn from(e: surveyor_store::ExportRecord) -> ExportEntry {
        let f = e.filter;
        ExportEntry {
            id: e.id,
            started_at: e.started_at,
            finished_at: e.finished_at,
            token_id: e.token_id,
            token_name: e.token_name,
            role: match e.role {
                surveyor_store::Role::Viewer => Role::Viewer,
                surveyor_store::Role::Analyst => Role::Analyst,
                surveyor_store::Role::Researcher => Role::Researcher,
                surveyor_store::Role::Admin => Role::Admin,
            },
            scan: e.scan.0,
            format: e.format,
            pseudonymised: e.pseudonymised,
            filter: Filter {
                family: f.family,
                cu: f.cu,
                version: f.version,
                support: f.support,
                patch: f.patch,
                sector: f.sector,
                organisation: f.organisation,
                asn: f.asn,
                country: f.country,
            },
            rows: e.rows,
            outcome: match e.outcome {
                surveyor_store::ExportOutcome::Running => Outcome::Running,
                surveyor_store::ExportOutcome::Complete => Outcome::Complete,
                surveyor_store::ExportOutcome::Aborted => Outcome::Aborted,
            },
        }
    }
}
