//! The HTTP API: reads the store and answers analysts' questions. It never runs scans.

mod error;

use std::future::Future;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use surveyor_model::Census;
use surveyor_store::{CensusFilter, Dimension, ScanId, ScanRecord, Store};
use tokio::net::TcpListener;

pub use error::ApiError;

/// The census of one scan, as `surveyor report --format json` prints it and
/// `GET /api/v1/census` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CensusReport {
    pub scan: ScanRecord,
    pub census: Census,
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

/// The API's routes over a store.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/v1/census", get(get_census))
        .route("/api/v1/scans", get(get_scans))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(store)
}

/// Serves the API on a listener the binary bound, until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}

#[derive(Debug, Deserialize)]
struct CensusQuery {
    scan: Option<i64>,
}

async fn get_census(
    State(store): State<Store>,
    query: Result<Query<CensusQuery>, QueryRejection>,
) -> Result<Json<CensusReport>, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::BadRequest("`scan` must be a scan id (an integer)".into()))?;
    let scan = query.scan.map(ScanId);
    match census_report(&store, scan).await? {
        Some(report) => Ok(Json(report)),
        None => match scan {
            Some(id) => Err(ApiError::NotFound(format!("no scan with id {}", id.0))),
            None => Err(ApiError::NotFound(
                "no finished scan yet: run `surveyor scan` first".into(),
            )),
        },
    }
}

async fn get_scans(State(store): State<Store>) -> Result<Json<Vec<ScanRecord>>, ApiError> {
    Ok(Json(store.scans.scans().await?))
}
