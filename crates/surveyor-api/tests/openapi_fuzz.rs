//! The OpenAPI document drives a fuzzer: every documented endpoint gets thousands of requests
//! with parameters drawn from hostile and plausible values, with and without tokens, on both
//! backends. No answer may be a 5xx, and every error must be the documented error body.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use surveyor_api::ApiConfig;
use surveyor_model::{ExchangeVerdict, Family, Fingerprint, Observation, Scheme, Status};
use surveyor_store::{testing, NewScan, Role, Store};
use time::macros::{date, datetime};
use tower::ServiceExt;

/// Requests per documented operation and backend.
const REQUESTS_PER_OPERATION: usize = 400;

/// Values a parameter may get: plausible ones (so that requests get past validation and reach
/// the store), and hostile ones.
const VALUES: &[&str] = &[
    "",
    "1",
    "2",
    "0",
    "-1",
    "999999999999999999999",
    "1.5",
    "NaN",
    "true",
    "false",
    "2016",
    "2019",
    "SE",
    "2007",
    "unsupported",
    "supported",
    "current",
    "behind-1y",
    "family",
    "family,support",
    "sector,patch",
    "organisation",
    "cu,version",
    ",,,",
    "hospital",
    "municipality",
    "2026-11-23",
    "2026-02-30",
    "1900-01-01",
    "9999-12-31",
    "o1",
    "o0",
    "o999999999999",
    "192.0.2.1",
    "::1",
    "2001:db8::1",
    "256.1.1.1",
    "csv",
    "jsonl",
    "shadowserver",
    "parquet",
    "1000",
    "1001",
    "100000",
    "' OR 1=1 --",
    "\"; DROP TABLE scans; --",
    "%00",
    "\u{0}",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "ünïcødé",
    "\u{202e}rtl",
    "a b",
    "a&b=c",
];

fn observation(
    i: u8,
    family: Family,
    build: &str,
    support: surveyor_model::Support,
) -> Observation {
    Observation {
        ip: format!("192.0.2.{i}").parse().unwrap(),
        port: 443,
        scheme: Scheme::Https,
        observed_at: datetime!(2026-11-23 06:00:00 UTC),
        status: Status::Success,
        error: None,
        tls: None,
        http_server: None,
        fingerprint: Fingerprint::default(),
        exchange: Some(ExchangeVerdict {
            version_name: "test".into(),
            cu: Some("CU23".into()),
            ..common::verdict(family, build, support)
        }),
        attribution: None,
        asn: None,
        country: None,
    }
}

async fn seed(store: &Store) {
    let scan = store
        .scans
        .begin_scan(&NewScan {
            started_at: datetime!(2026-11-23 05:59:00 UTC),
            as_of: date!(2026 - 11 - 23),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: None,
        })
        .await
        .unwrap();
    let batch: Vec<Observation> = (1..=5)
        .map(|i| {
            observation(
                i,
                Family::E2016,
                "15.1.2507.61",
                surveyor_model::Support::Unsupported,
            )
        })
        .collect();
    store.scans.record(scan, &batch).await.unwrap();
    store
        .scans
        .finish_scan(scan, datetime!(2026-11-23 06:01 UTC))
        .await
        .unwrap();
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

struct Operation {
    path: String,
    params: Vec<(String, String)>, // (name, in)
}

fn operations(doc: &Value) -> Vec<Operation> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(path, item)| {
            let get = item.get("get")?;
            let params = get["parameters"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|p| {
                            (
                                p["name"].as_str().unwrap().to_string(),
                                p["in"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Operation {
                path: path.clone(),
                params,
            })
        })
        .collect()
}

async fn fuzz(store: Store, seed_value: u64) {
    seed(&store).await;
    let mut tokens = vec![None];
    for role in Role::ALL {
        let token = format!("svy_fuzz_{}", role.as_str());
        store
            .tokens
            .create_token(
                role.as_str(),
                role,
                &surveyor_api::token_hash(&token),
                datetime!(2026-11-23 06:00 UTC),
            )
            .await
            .unwrap();
        tokens.push(Some(token));
    }
    tokens.push(Some("not-a-token".into()));
    let config = ApiConfig {
        public_aggregates: true,
        ..ApiConfig::default()
    };
    let api = surveyor_api::router(store, config);

    let response = api
        .clone()
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let ops = operations(&doc);
    let mut documented: Vec<&str> = ops.iter().map(|o| o.path.as_str()).collect();
    documented.sort();
    assert_eq!(
        documented,
        [
            "/api/v1/census",
            "/api/v1/exports",
            "/api/v1/exports/{format}",
            "/api/v1/hosts",
            "/api/v1/hosts/{ip}",
            "/api/v1/organisations",
            "/api/v1/scans",
            "/api/v1/statistics",
            "/api/v1/trends",
            "/readyz",
        ]
    );

    let mut rng = ChaCha8Rng::seed_from_u64(seed_value);
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for op in &ops {
        for _ in 0..REQUESTS_PER_OPERATION {
            let mut path = op.path.clone();
            let mut query = Vec::new();
            for (name, place) in &op.params {
                let value = VALUES.choose(&mut rng).unwrap();
                if place == "path" {
                    path = path.replace(&format!("{{{name}}}"), &encode(value));
                } else if rng.gen_bool(0.5) {
                    query.push(format!("{}={}", encode(name), encode(value)));
                }
            }
            // Now and then a parameter no operation documents.
            if rng.gen_bool(0.05) {
                query.push("unknown=1".into());
            }
            let uri = if query.is_empty() {
                path
            } else {
                format!("{path}?{}", query.join("&"))
            };
            let mut request = Request::get(&uri);
            if let Some(token) = tokens.choose(&mut rng).unwrap() {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = api
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            assert!(
                !status.is_server_error(),
                "{uri}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
            if !status.is_success() {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    panic!("{uri}: {status} without the error body");
                });
                assert!(
                    body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                    "{uri}: {body}"
                );
            }
            *by_status.entry(status.as_u16()).or_default() += 1;
        }
    }
    // The fuzzer must reach past validation too, or it tests only the 400 path.
    for expected in [200, 400, 401, 403, 404] {
        assert!(
            by_status.get(&expected).copied().unwrap_or(0) > 0,
            "no {expected} in {by_status:?}"
        );
    }
}

#[tokio::test]
async fn documented_endpoints_never_answer_5xx_on_sqlite() {
    let db = testing::sqlite();
    fuzz(surveyor_store::open(&db.url).await.unwrap(), 1).await;
}

#[tokio::test]
async fn documented_endpoints_never_answer_5xx_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    fuzz(surveyor_store::open(&db.url).await.unwrap(), 2).await;
}
