//! The API over a real store, on SQLite and on PostgreSQL.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use surveyor_model::{
    Build, Evidence, ExchangeVerdict, Family, Fingerprint, Observation, Scheme, Signal, Status,
    Support,
};
use surveyor_store::{testing, NewScan, ScanId, Store};
use time::macros::{date, datetime};
use tower::ServiceExt;

fn observation(ip: &str, verdict: Option<(Family, &str, Support)>) -> Observation {
    let exchange = verdict.map(|(family, build, support)| ExchangeVerdict {
        family,
        build: build.parse::<Build>().unwrap(),
        version_name: format!("{} test", family.product_name()),
        cu: None,
        support,
        evidence: vec![Evidence {
            signal: Signal::OwaVersionHeader,
            source: "GET /owa/".into(),
            value: build.into(),
        }],
        build_precision: None,
        confidence: None,
        support_reason: None,
        esu_patched: false,
        patch_level: Default::default(),
        upgrade_path: None,
        cves: Vec::new(),
        inconsistencies: Vec::new(),
    });
    Observation {
        ip: ip.parse().unwrap(),
        port: 443,
        scheme: Scheme::Https,
        observed_at: datetime!(2026-11-23 06:00:00 UTC),
        status: Status::Success,
        error: None,
        tls: None,
        http_server: Some("Microsoft-IIS/10.0".into()),
        fingerprint: Fingerprint::default(),
        exchange,
        attribution: None,
    }
}

async fn seed_scan(store: &Store, observations: &[Observation], finished: bool) -> ScanId {
    let id = store
        .scans
        .begin_scan(&NewScan {
            started_at: datetime!(2026-11-23 05:59:00 UTC),
            as_of: date!(2026 - 11 - 23),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
        })
        .await
        .unwrap();
    store.scans.record(id, observations).await.unwrap();
    if finished {
        store
            .scans
            .finish_scan(id, datetime!(2026-11-23 06:01:00 UTC))
            .await
            .unwrap();
    }
    id
}

async fn get(store: &Store, uri: &str) -> (StatusCode, Value) {
    let response = surveyor_api::router(store.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

async fn census_endpoint(store: Store) {
    let (status, body) = get(&store, "/api/v1/census").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no finished scan"));

    let first = seed_scan(
        &store,
        &[
            observation(
                "192.0.2.1",
                Some((Family::E2016, "15.1.2507.61", Support::Unsupported)),
            ),
            observation(
                "192.0.2.2",
                Some((Family::E2019, "15.2.1748", Support::Unsupported)),
            ),
            observation(
                "192.0.2.3",
                Some((Family::Se, "15.2.2562.29", Support::Supported)),
            ),
            observation(
                "192.0.2.4",
                Some((Family::E2019, "15.2.1544.36", Support::Unsupported)),
            ),
            observation("192.0.2.5", None),
        ],
        true,
    )
    .await;
    // An unfinished, newer scan is not the census.
    let unfinished = seed_scan(&store, &[observation("192.0.2.9", None)], false).await;

    let (status, body) = get(&store, "/api/v1/census").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scan"]["id"], first.0);
    let census = &body["census"];
    assert_eq!(census["servers"], 4);
    assert_eq!(census["supported"], 1);
    assert_eq!(census["unsupported"], 3);
    assert_eq!(census["unsupported_share"], 0.75);
    let families = census["families"].as_array().unwrap();
    assert_eq!(families.len(), 6);
    let row = |f: &str| families.iter().find(|r| r["family"] == f).unwrap().clone();
    assert_eq!(row("2019")["servers"], 2);
    assert_eq!(row("2019")["share"], 0.5);
    assert_eq!(row("SE")["supported"], 1);
    assert_eq!(row("2010")["servers"], 0);

    let (status, body) = get(&store, &format!("/api/v1/census?scan={}", unfinished.0)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["census"]["servers"], 0);

    let (status, body) = get(&store, "/api/v1/census?scan=999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("999999"));

    let (status, body) = get(&store, "/api/v1/census?scan=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request");

    let (status, body) = get(&store, "/api/v1/scans").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(body[0]["id"], unfinished.0, "newest first");

    let (status, _) = get(&store, "/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn census_endpoint_on_sqlite() {
    let db = testing::sqlite();
    census_endpoint(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn census_endpoint_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    census_endpoint(surveyor_store::open(&db.url).await.unwrap()).await;
}
