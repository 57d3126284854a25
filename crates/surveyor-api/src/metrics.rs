//! Prometheus metrics of the API, served on their own listener so that scraping needs no
//! token and the metrics never share a port with analysts' data.
//!
//! Names follow Prometheus conventions (`docs/output.md` lists them): `surveyor_api_` prefix,
//! base units, `_total` on counters; labels are route templates, never raw paths, so that a
//! scan of `/api/v1/hosts/{ip}` cannot blow up the series count.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::params::{NoParams, Params};
use crate::ApiError;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template (`/api/v1/hosts/{ip}`), or `unmatched`.
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The API's metrics: one per process, shared by the API router and the metrics listener.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("surveyor_api");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        // 0.5 ms to about 8 s: census queries take milliseconds, exports seconds.
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 15))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route template (a streamed export's body goes on)",
            durations.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            durations,
        })
    }

    /// The registry in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `router` with every request it answers counted and timed into `metrics`.
pub(crate) fn counted(router: Router, metrics: Arc<Metrics>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(metrics, track))
}

/// Counts and times every request the API answers.
async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .durations
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The metrics listener's routes: `GET /metrics`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(metrics): State<Arc<Metrics>>, query: Result<Params<NoParams>, ApiError>| async move {
                query?;
                Ok::<_, ApiError>((
                    StatusCode::OK,
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.encode(),
                )
                    .into_response())
            }),
        )
        .with_state(metrics)
}
