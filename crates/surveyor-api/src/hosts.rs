//! Host-level reads: the servers of a scan page by page, and the organisations they belong to.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use surveyor_model::Support;
use surveyor_store::{CensusFilter, Dimension, ServerCursor};

use crate::error::ErrorBody;
use crate::params::Params;
use crate::wire::{self, HostsPage, OrganisationServers, Organisations};
use crate::{authorize, census_filter, resolve_scan, Access, ApiError, AppState};

/// The most servers one page of `/hosts` holds.
pub(crate) const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostsParams {
    scan: Option<i64>,
    as_of: Option<String>,
    family: Option<String>,
    cu: Option<String>,
    version: Option<String>,
    support: Option<String>,
    patch: Option<String>,
    sector: Option<String>,
    organisation: Option<String>,
    asn: Option<String>,
    country: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/hosts`: a scan's Exchange servers with filters, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", params(HostsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of servers and the next cursor", body = Object),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
        (status = 410, description = "The scan's observations were pruned", body = ErrorBody),
    ))]
pub(crate) async fn get_hosts(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Params<HostsParams>, ApiError>,
) -> Result<Json<HostsPage>, ApiError> {
    authorize(&state, &headers, Access::HostLevel).await?;
    let Params(params) = query?;
    let filter = census_filter!(params)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be 1 to {MAX_PAGE}, not {limit}"
        )));
    }
    let after = params.cursor.as_deref().map(parse_cursor).transpose()?;
    let scan = resolve_scan(&state.store, params.scan, params.as_of.as_deref()).await?;
    let page = state
        .store
        .census
        .servers_page(scan.id, &filter, after, limit)
        .await?;
    Ok(Json(HostsPage {
        scan: wire::Scan::from(&scan),
        hosts: page.servers,
        next_cursor: page.next.map(ServerCursor::token),
    }))
}

pub(crate) fn parse_cursor(token: &str) -> Result<ServerCursor, ApiError> {
    ServerCursor::from_token(token).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`cursor` {token:?} is not one this API handed out; take `next_cursor` of the \
             previous page"
        ))
    })
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganisationsParams {
    scan: Option<i64>,
    as_of: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/organisations", tag = "hosts", params(OrganisationsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The registry with server counts", body = Object),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
    ))]
/// `GET /api/v1/organisations`: the registry, each organisation with its servers. Contacts are
/// in it, so it is host-level data.
pub(crate) async fn get_organisations(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Params<OrganisationsParams>, ApiError>,
) -> Result<Json<Organisations>, ApiError> {
    authorize(&state, &headers, Access::HostLevel).await?;
    let Params(params) = query?;
    let store = &state.store;
    let scan = match resolve_scan(store, params.scan, params.as_of.as_deref()).await {
        Ok(scan) => Some(scan),
        // No scan asked for and none finished yet: the registry alone.
        Err(ApiError::NotFound(_)) if params.scan.is_none() && params.as_of.is_none() => None,
        Err(e) => return Err(e),
    };
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    if let Some(scan) = &scan {
        let groups = store
            .census
            .statistics(
                scan.id,
                &[Dimension::Organisation, Dimension::Support],
                &CensusFilter::default(),
            )
            .await?;
        for g in groups {
            let entry = counts
                .entry(g.organisation.unwrap_or_default())
                .or_default();
            entry.0 += g.servers;
            if g.support == Some(Support::Unsupported) {
                entry.1 += g.servers;
            }
        }
    }
    let organisations = store
        .registry
        .organisations()
        .await?
        .into_iter()
        .map(|organisation| {
            let (servers, unsupported) = counts.get(&organisation.id).copied().unwrap_or_default();
            OrganisationServers {
                organisation,
                servers,
                unsupported,
            }
        })
        .collect();
    Ok(Json(Organisations {
        scan: scan.as_ref().map(wire::Scan::from),
        organisations,
    }))
}
