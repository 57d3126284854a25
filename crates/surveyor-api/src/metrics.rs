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
use tracing::Instrument;

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

/// Counts and times every request the API answers, inside a `request` span (route template,
/// method, then status; `docs/instrumentation.md`).
async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = request.method().as_str().to_string();
    let span = tracing::info_span!(
        "request",
        http.route = %route,
        http.method = %method,
        http.status = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.status", response.status().as_u16());
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use axum::body::Body;
    use tower::ServiceExt;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    use super::*;

    type Spans = Arc<Mutex<BTreeMap<u64, (String, BTreeMap<String, String>)>>>;

    /// Keeps every span's name and fields, recorded late ones included.
    struct Capture(Spans);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            let name = attrs.metadata().name().to_string();
            self.0.lock().unwrap().insert(id.into_u64(), (name, fields));
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
            if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
                values.record(&mut Fields(fields));
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_request_runs_in_a_request_span_with_its_route_method_and_status() {
        let spans: Spans = Arc::default();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(Capture(spans.clone())),
        );
        let router = counted(
            Router::new().route("/things/{id}", get(|| async { StatusCode::ACCEPTED })),
            Metrics::new(),
        );
        for path in ["/things/7", "/nothing"] {
            let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
            router.clone().oneshot(request).await.unwrap();
        }
        let requests: Vec<BTreeMap<String, String>> = spans
            .lock()
            .unwrap()
            .values()
            .filter(|(name, _)| name == "request")
            .map(|(_, fields)| fields.clone())
            .collect();
        let expect = |route: &str, status: &str| {
            BTreeMap::from([
                ("http.method".to_string(), "GET".to_string()),
                ("http.route".to_string(), route.to_string()),
                ("http.status".to_string(), status.to_string()),
            ])
        };
        // The template, never the raw path; an unknown path is `unmatched`.
        assert_eq!(
            requests,
            vec![expect("/things/{id}", "202"), expect("unmatched", "404")]
        );
    }
}
