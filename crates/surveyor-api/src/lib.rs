//! The HTTP API: reads the store and answers analysts' questions. It never runs scans.

mod dashboard;
mod edge;
mod error;
mod export;
mod hosts;
mod limits;
mod metrics;
mod openapi;
mod params;
mod parquet_file;
pub mod report;
pub mod text;
mod wire;

use std::future::Future;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use surveyor_model::{Census, Family, PatchBand, Sector, Support};
use surveyor_store::{CensusFilter, Dimension, Role, ScanId, ScanRecord, Store, TokenRecord};
use tokio::net::TcpListener;

pub use edge::EdgeConfig;
pub use error::ApiError;
pub use export::PseudonymKey;
pub use metrics::{metrics_router, Metrics};

use error::ErrorBody;
use params::{NoParams, Params};

/// The census of one scan, as `surveyor report --format json` prints it and
/// `GET /api/v1/census` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct CensusReport {
    pub scan: ScanRecord,
    pub census: Census,
}

/// Written in the API's wire format ([`wire::CensusBody`]), so that the report and the API
/// print the same bytes and a store change cannot alter either.
impl Serialize for CensusReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire::CensusBody {
            scan: wire::Scan::from(&self.scan),
            census: &self.census,
        }
        .serialize(serializer)
    }
}

/// The census of `scan`, or of the latest finished scan. `Ok(None)` when there is none yet.
pub async fn census_report(
    store: &Store,
    scan: Option<ScanId>,
) -> Result<Option<CensusReport>, ApiError> {
    let record = match scan {
        Some(id) => store.scans.scan(id).await?,
        None => store.census.latest_finished_scan().await?,
    };
    let Some(record) = record else {
        return Ok(None);
    };
    let groups = store
        .census
        .statistics(
            record.id,
            &[Dimension::Family, Dimension::Support],
            &CensusFilter::default(),
        )
        .await?;
    let counts = groups
        .into_iter()
        .filter_map(|g| Some((g.family?, g.support?, g.servers)));
    Ok(Some(CensusReport {
        scan: record,
        census: Census::from_counts(counts),
    }))
}

/// How the API lets callers in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiConfig {
    /// Aggregate statistics (census, scans, statistics, trends) need no token. Host-level data
    /// and per-organisation counts always need an analyst or admin token.
    pub public_aggregates: bool,
    /// Requests per minute each token may make (requests without a token share one budget);
    /// `None` for no limit.
    pub requests_per_minute: Option<std::num::NonZeroU32>,
    /// The key for keyed address pseudonyms in pseudonymised exports; without one they show
    /// the /24 or /48 instead.
    pub pseudonym_key: Option<PseudonymKey>,
}

#[derive(Clone)]
struct AppState {
    store: Store,
    config: ApiConfig,
    limits: std::sync::Arc<limits::RateLimits>,
}

/// The API's routes over a store.
pub fn router(store: Store, config: ApiConfig) -> Router {
    router_with_metrics(store, config, Metrics::new())
}

/// The API's routes, counting every request into `metrics` (served by [`metrics_router`]).
pub fn router_with_metrics(
    store: Store,
    config: ApiConfig,
    metrics: std::sync::Arc<Metrics>,
) -> Router {
    metrics::counted(routes(store, config), metrics)
}

/// The API's routes, as every request meets them past the edge's layers and the metrics.
fn routes(store: Store, config: ApiConfig) -> Router {
    Router::new()
        .merge(dashboard::routes())
        .route("/api/v1/census", get(get_census))
        .route("/api/v1/scans", get(get_scans))
        .route("/api/v1/statistics", get(get_statistics))
        .route("/api/v1/trends", get(get_trends))
        .route("/api/v1/hosts", get(hosts::get_hosts))
        .route("/api/v1/hosts/{ip}", get(get_host))
        .route("/api/v1/organisations", get(hosts::get_organisations))
        .route("/api/v1/exports", get(export::get_export_log))
        .route("/api/v1/exports/{format}", get(export::get_export))
        .route("/api/v1/openapi.json", get(openapi::get_openapi))
        .route("/healthz", get(get_health))
        .route("/readyz", get(get_ready))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(AppState {
            store,
            config,
            limits: std::sync::Arc::new(limits::RateLimits::new(config.requests_per_minute)),
        })
}

/// The process lives (and its edge lets requests in).
async fn get_health(query: Result<Params<NoParams>, ApiError>) -> Result<&'static str, ApiError> {
    query?;
    Ok("ok")
}

/// Ready when the store answers: a load balancer sends no analyst to an API whose database
/// is gone (`/healthz` only says the process lives).
/// Ready when the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = String),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
async fn get_ready(
    State(state): State<AppState>,
    query: Result<Params<NoParams>, ApiError>,
) -> Result<&'static str, ApiError> {
    query?;
    match state.store.census.latest_finished_scan().await {
        Ok(_) => Ok("ready"),
        Err(error) => {
            tracing::warn!(%error, "not ready: the store does not answer");
            Err(ApiError::Unavailable("the store does not answer".into()))
        }
    }
}

/// Serves the API on a listener the binary bound, behind the edge's limits, until
/// `shutdown` completes and the open connections have drained (or the drain deadline passed).
pub async fn serve(
    listener: TcpListener,
    store: Store,
    config: ApiConfig,
    edge: EdgeConfig,
    metrics: std::sync::Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The edge's request layers sit inside the metrics, so that their 503s and 413s count.
    let app = metrics::counted(edge::layers(routes(store, config), &edge), metrics);
    edge::serve(listener, app, &edge, shutdown).await
}

/// Serves `GET /metrics` on a listener of its own, behind the same edge, until `shutdown`
/// completes.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: std::sync::Arc<Metrics>,
    edge: EdgeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = edge::layers(metrics_router(metrics), &edge);
    edge::serve(listener, app, &edge, shutdown).await
}

/// The SHA-256 (hex) the store keeps of a bearer token.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new bearer token: `svy_` and 32 bytes of the system's randomness in hex. Only its
/// [`token_hash`] is stored; `None` when the system has no randomness to give.
pub fn new_token() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut secret).ok()?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("svy_{hex}"))
}

impl PseudonymKey {
    /// The key of a secret of any length (32 bytes or more make a good one): its SHA-256.
    pub fn from_secret(secret: &[u8]) -> PseudonymKey {
        use sha2::Digest;
        PseudonymKey(sha2::Sha256::digest(secret).into())
    }
}

/// What a request may see or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Counts over many servers.
    Aggregates,
    /// Anything that names a server or an organisation.
    HostLevel,
    /// Bulk exports of host-level rows (pseudonymised for researchers).
    Export,
    /// The export audit log and other administration.
    Admin,
}

impl Access {
    fn allows(self, role: Role) -> bool {
        match self {
            Access::Aggregates => true,
            Access::HostLevel => matches!(role, Role::Analyst | Role::Admin),
            Access::Export => matches!(role, Role::Analyst | Role::Researcher | Role::Admin),
            Access::Admin => role == Role::Admin,
        }
    }

    fn refusal(self, role: Role) -> String {
        match self {
            Access::Aggregates => unreachable!("every role may see aggregates"),
            Access::HostLevel => format!(
                "a {} token may not see host-level data (analyst or admin may)",
                role.as_str()
            ),
            Access::Export => format!(
                "a {} token may not export (researcher, analyst or admin may)",
                role.as_str()
            ),
            Access::Admin => format!("a {} token is not an admin token", role.as_str()),
        }
    }
}

/// Who is asking: the token, or `None` for a request public aggregates let in without one.
#[derive(Debug, Clone)]
struct Caller {
    token: Option<TokenRecord>,
}

/// Lets the request in, or says why not: 401 without a valid token where one is needed, 403
/// for a token whose role may not see this, 429 past the token's rate.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    access: Access,
) -> Result<Caller, ApiError> {
    let header = headers.get(axum::http::header::AUTHORIZATION);
    if header.is_none() && access == Access::Aggregates && state.config.public_aggregates {
        state.limits.check(None)?;
        return Ok(Caller { token: None });
    }
    let unauthorized = || {
        ApiError::Unauthorized("this needs a bearer token: `Authorization: Bearer <token>`".into())
    };
    let token = header
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let record = state
        .store
        .tokens
        .token_by_hash(&token_hash(token))
        .await?
        .filter(|t| t.revoked_at.is_none())
        .ok_or_else(unauthorized)?;
    state.limits.check(Some(record.id))?;
    if access.allows(record.role) {
        Ok(Caller {
            token: Some(record),
        })
    } else {
        Err(ApiError::Forbidden(access.refusal(record.role)))
    }
}

/// The scan a request names by id or by day, else the latest finished one.
async fn resolve_scan(
    store: &Store,
    scan: Option<i64>,
    as_of: Option<&str>,
) -> Result<ScanRecord, ApiError> {
    let scan = match (scan, as_of) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `scan` or `as_of`, not both".into(),
            ))
        }
        (Some(id), None) => store.scans.scan(ScanId(id)).await?,
        (None, Some(day)) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let day = time::Date::parse(day, format).map_err(|_| {
                ApiError::BadRequest(format!("`as_of` {day:?} is not a date YYYY-MM-DD"))
            })?;
            return surveyor_store::scan_as_of(store.scans.as_ref(), day)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no scan had finished by {day}")));
        }
        (None, None) => store.census.latest_finished_scan().await?,
    };
    scan.ok_or_else(|| ApiError::NotFound("no such scan, or none finished yet".into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CensusQuery {
    scan: Option<i64>,
    /// YYYY-MM-DD: the newest scan finished by that day, as `surveyor report --as-of`.
    as_of: Option<String>,
}

/// The census table of one scan (the latest finished one by default).
#[utoipa::path(get, path = "/api/v1/census", tag = "census", params(CensusQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The census of the scan", body = Object),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
    ))]
async fn get_census(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Params<CensusQuery>, ApiError>,
) -> Result<Json<CensusReport>, ApiError> {
    authorize(&state, &headers, Access::Aggregates).await?;
    let store = &state.store;
    let Params(query) = query?;
    let scan = match (query.scan, query.as_of.as_deref()) {
        (scan, None) => scan.map(ScanId),
        (scan, as_of) => Some(resolve_scan(store, scan, as_of).await?.id),
    };
    match census_report(store, scan).await? {
        Some(report) => Ok(Json(report)),
        None => match scan {
            Some(id) => Err(ApiError::NotFound(format!("no scan with id {}", id.0))),
            None => Err(ApiError::NotFound(
                "no finished scan yet: run `surveyor scan` first".into(),
            )),
        },
    }
}

/// Every stored scan, newest first.
#[utoipa::path(get, path = "/api/v1/scans", tag = "census", security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The scans", body = Vec<Object>),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
    ))]
async fn get_scans(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Params<NoParams>, ApiError>,
) -> Result<Json<Vec<wire::Scan>>, ApiError> {
    authorize(&state, &headers, Access::Aggregates).await?;
    query?;
    let scans = state.store.scans.scans().await?;
    Ok(Json(scans.iter().map(wire::Scan::from).collect()))
}

/// The census dimensions and filters of `/statistics` and `/trends`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CensusParams {
    scan: Option<i64>,
    as_of: Option<String>,
    group_by: Option<String>,
    family: Option<String>,
    cu: Option<String>,
    version: Option<String>,
    support: Option<String>,
    patch: Option<String>,
    sector: Option<String>,
    organisation: Option<String>,
    asn: Option<String>,
    country: Option<String>,
    /// `/trends` only: `newest` (the default) or `original`, the judgement made while each
    /// scan ran.
    judgements: Option<String>,
}

impl CensusParams {
    fn group_by(&self) -> Result<Vec<Dimension>, ApiError> {
        let Some(list) = &self.group_by else {
            return Ok(Vec::new());
        };
        list.split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.trim().parse::<Dimension>().map_err(ApiError::BadRequest))
            .collect()
    }

    fn filter(&self) -> Result<CensusFilter, ApiError> {
        census_filter!(self)
    }

    /// Per-organisation counts name organisations, and so can per-AS counts (many an
    /// organisation announces its own AS): host-level access.
    fn access(&self, group_by: &[Dimension]) -> Access {
        let naming = [Dimension::Organisation, Dimension::Asn];
        if self.organisation.is_some()
            || self.asn.is_some()
            || group_by.iter().any(|d| naming.contains(d))
        {
            Access::HostLevel
        } else {
            Access::Aggregates
        }
    }
}

/// The census filter's parameters as a request gave them, checked in one place for every
/// endpoint that takes them.
#[derive(Debug, Default)]
struct FilterFields<'a> {
    family: Option<&'a str>,
    cu: Option<&'a str>,
    version: Option<&'a str>,
    support: Option<&'a str>,
    patch: Option<&'a str>,
    sector: Option<&'a str>,
    organisation: Option<&'a str>,
    asn: Option<&'a str>,
    country: Option<&'a str>,
}

impl FilterFields<'_> {
    fn filter(&self) -> Result<CensusFilter, ApiError> {
        let bad =
            |what: &str, value: &str| ApiError::BadRequest(format!("unknown {what} {value:?}"));
        Ok(CensusFilter {
            family: self
                .family
                .map(|f| f.parse::<Family>().map_err(|_| bad("family", f)))
                .transpose()?,
            cu: self.cu.map(str::to_string),
            version: self.version.map(str::to_string),
            support: self
                .support
                .map(|v| Support::parse(v).ok_or_else(|| bad("support status", v)))
                .transpose()?,
            patch: self
                .patch
                .map(|v| PatchBand::parse(v).ok_or_else(|| bad("patch band", v)))
                .transpose()?,
            sector: self
                .sector
                .map(|v| {
                    v.parse::<Sector>()
                        .map(|s| s.as_str().to_string())
                        .map_err(|_| bad("sector", v))
                })
                .transpose()?,
            organisation: self.organisation.map(str::to_string),
            asn: self
                .asn
                .map(|v| parse_asn(v).ok_or_else(|| bad("AS number", v)))
                .transpose()?,
            country: self
                .country
                .map(|v| parse_country(v).ok_or_else(|| bad("country", v)))
                .transpose()?,
        })
    }
}

/// An AS number as the census stores it: decimal, `AS` prefix optional; "" for unknown.
fn parse_asn(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some(String::new());
    }
    let digits = value
        .strip_prefix("AS")
        .or_else(|| value.strip_prefix("as"))
        .unwrap_or(value);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().map(|n| n.to_string())
}

/// An ISO 3166-1 alpha-2 code in upper case; "" for unknown.
fn parse_country(value: &str) -> Option<String> {
    let ok =
        value.is_empty() || (value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()));
    ok.then(|| value.to_ascii_uppercase())
}

/// The census filter of any parameters struct with the nine filter fields.
macro_rules! census_filter {
    ($params:expr) => {
        $crate::FilterFields {
            family: $params.family.as_deref(),
            cu: $params.cu.as_deref(),
            version: $params.version.as_deref(),
            support: $params.support.as_deref(),
            patch: $params.patch.as_deref(),
            sector: $params.sector.as_deref(),
            organisation: $params.organisation.as_deref(),
            asn: $params.asn.as_deref(),
            country: $params.country.as_deref(),
        }
        .filter()
    };
}
pub(crate) use census_filter;

/// One scan's servers counted by the dimensions in `group_by`, with filters.
#[utoipa::path(get, path = "/api/v1/statistics", tag = "census", params(CensusParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The groups and their counts", body = Object),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
        (status = 410, description = "The scan's observations were pruned", body = ErrorBody),
    ))]
async fn get_statistics(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Params<CensusParams>, ApiError>,
) -> Result<Json<wire::Statistics>, ApiError> {
    let Params(params) = query?;
    let group_by = params.group_by()?;
    authorize(&state, &headers, params.access(&group_by)).await?;
    if params.judgements.is_some() {
        return Err(ApiError::BadRequest(
            "`judgements` is for /trends; name a judgement here with `scan`".into(),
        ));
    }
    let filter = params.filter()?;
    let store = &state.store;
    let scan = resolve_scan(store, params.scan, params.as_of.as_deref()).await?;
    let groups = store.census.statistics(scan.id, &group_by, &filter).await?;
    Ok(Json(wire::Statistics {
        scan: wire::Scan::from(&scan),
        group_by: group_by.into_iter().map(wire::Dimension::from).collect(),
        groups: groups.into_iter().map(wire::Group::from).collect(),
    }))
}

/// The census of every finished scan, oldest first.
#[utoipa::path(get, path = "/api/v1/trends", tag = "census", params(CensusParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "One point per scan and group", body = Vec<Object>),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
    ))]
async fn get_trends(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Params<CensusParams>, ApiError>,
) -> Result<Json<Vec<wire::TrendPoint>>, ApiError> {
    let Params(params) = query?;
    let group_by = params.group_by()?;
    authorize(&state, &headers, params.access(&group_by)).await?;
    if params.scan.is_some() || params.as_of.is_some() {
        return Err(ApiError::BadRequest(
            "a trend covers every finished scan: no `scan` or `as_of`".into(),
        ));
    }
    let filter = params.filter()?;
    let which = match params.judgements.as_deref() {
        None => surveyor_store::Judgements::Newest,
        Some(text) => surveyor_store::Judgements::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "judgements: {text:?} is neither newest nor original"
            ))
        })?,
    };
    let points = state
        .store
        .census
        .trend_of(&group_by, &filter, which)
        .await?;
    Ok(Json(
        points.into_iter().map(wire::TrendPoint::from).collect(),
    ))
}

/// What the store knows of one address: latest state per port and its history.
#[utoipa::path(get, path = "/api/v1/hosts/{ip}", tag = "hosts",
    params(("ip" = String, Path, description = "An IPv4 or IPv6 address")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The host", body = Object),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
    ))]
async fn get_host(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(ip): Path<String>,
    query: Result<Params<NoParams>, ApiError>,
) -> Result<Json<wire::Host>, ApiError> {
    authorize(&state, &headers, Access::HostLevel).await?;
    query?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{ip:?} is not an IP address")))?;
    let detail = state.store.census.host(ip).await?;
    if detail.ports.is_empty() && detail.history.is_empty() {
        return Err(ApiError::NotFound(format!("no scan has seen {ip}")));
    }
    Ok(Json(wire::Host::from(detail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_fresh_randomness_and_only_its_hash_is_kept() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        let hex = a.strip_prefix("svy_").unwrap();
        assert!(hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn a_pseudonym_key_is_the_sha256_of_its_secret() {
        let key = PseudonymKey::from_secret(b"");
        assert_eq!(key.0[..4], [0xe3, 0xb0, 0xc4, 0x42]);
        assert_ne!(PseudonymKey::from_secret(b"a"), key);
    }
}
