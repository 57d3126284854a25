//! The API over a real store, on SQLite and on PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use surveyor_api::ApiConfig;
use surveyor_model::{
    Evidence, ExchangeVerdict, Family, Fingerprint, Observation, Scheme, Signal, Status, Support,
};
use surveyor_store::{testing, NewScan, Role, ScanId, Store};
use time::macros::{date, datetime};
use tower::ServiceExt;

fn observation(ip: &str, verdict: Option<(Family, &str, Support)>) -> Observation {
    let exchange = verdict.map(|(family, build, support)| ExchangeVerdict {
        evidence: vec![Evidence {
            signal: Signal::OwaVersionHeader,
            source: "GET /owa/".into(),
            value: build.into(),
        }],
        ..common::verdict(family, build, support)
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
        asn: None,
        country: None,
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
            kb: None,
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
    let public = ApiConfig {
        public_aggregates: true,
        ..ApiConfig::default()
    };
    request(store, public, uri, None).await
}

async fn request(
    store: &Store,
    config: ApiConfig,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut builder = Request::get(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let response = surveyor_api::router(store.clone(), config)
        .oneshot(builder.body(Body::empty()).unwrap())
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

/// Makes a token of `role` and returns it.
async fn token(store: &Store, role: Role) -> String {
    let token = format!("svy_test_{}", role.as_str());
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
    token
}

async fn access_control(store: Store) {
    seed_scan(
        &store,
        &[
            observation(
                "192.0.2.1",
                Some((Family::E2016, "15.1.2507.61", Support::Unsupported)),
            ),
            observation("192.0.2.5", None),
        ],
        true,
    )
    .await;
    let closed = ApiConfig::default();
    let viewer = token(&store, Role::Viewer).await;
    let analyst = token(&store, Role::Analyst).await;
    let researcher = token(&store, Role::Researcher).await;
    let aggregate = [
        "/api/v1/census",
        "/api/v1/scans",
        "/api/v1/statistics?group_by=family,support",
        "/api/v1/trends?group_by=support",
    ];
    let host_level = [
        "/api/v1/hosts/192.0.2.1",
        "/api/v1/statistics?group_by=organisation",
        "/api/v1/trends?organisation=x",
    ];
    for uri in aggregate.iter().chain(&host_level) {
        let (status, body) = request(&store, closed, uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
        let (status, _) = request(&store, closed, uri, Some("svy_not_a_token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    for uri in aggregate {
        for t in [&viewer, &analyst, &researcher] {
            let (status, body) = request(&store, closed, uri, Some(t)).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        }
        // Public aggregates need no token.
        let public = ApiConfig {
            public_aggregates: true,
            ..ApiConfig::default()
        };
        let (status, _) = request(&store, public, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    for uri in host_level {
        for t in [&viewer, &researcher] {
            let (status, body) = request(&store, closed, uri, Some(t)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        }
        // Host-level data is never public.
        let public = ApiConfig {
            public_aggregates: true,
            ..ApiConfig::default()
        };
        let (status, _) = request(&store, public, uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, body) = request(&store, closed, "/api/v1/hosts/192.0.2.1", Some(&analyst)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ports"][0]["exchange"]["family"], "2016");
    let (status, body) = request(
        &store,
        closed,
        "/api/v1/statistics?group_by=family",
        Some(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["groups"][0]["family"], "2016");
    assert_eq!(body["groups"][0]["servers"], 1);

    // Bad parameters are 400s that say what is wrong; a revoked token stops working.
    for (uri, says) in [
        ("/api/v1/statistics?group_by=colour", "unknown dimension"),
        ("/api/v1/statistics?famly=2016", "famly"),
        ("/api/v1/statistics?family=2099", "unknown family"),
        ("/api/v1/statistics?as_of=yesterday", "YYYY-MM-DD"),
        ("/api/v1/trends?scan=1", "every finished scan"),
        ("/api/v1/hosts/not-an-ip", "not an IP address"),
    ] {
        let (status, body) = request(&store, closed, uri, Some(&analyst)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{uri}: {message}");
    }
    let (status, _) = request(&store, closed, "/api/v1/hosts/198.51.100.9", Some(&analyst)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let id = store.tokens.tokens().await.unwrap()[0].id;
    store
        .tokens
        .revoke_token(id, datetime!(2026-11-23 07:00 UTC))
        .await
        .unwrap();
    let (status, _) = request(&store, closed, "/api/v1/census", Some(&viewer)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn access_control_on_sqlite() {
    let db = testing::sqlite();
    access_control(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn access_control_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    access_control(surveyor_store::open(&db.url).await.unwrap()).await;
}

/// One endpoint: its path in the OpenAPI document (or the route), a request to it with
/// parameters it does not know, and those parameters.
struct Unknown {
    route: &'static str,
    uri: &'static str,
    unknown: &'static [&'static str],
}

/// Refused with a 400 that names each unknown parameter.
async fn check_refused(store: &Store, token: &str, case: &Unknown) {
    let (status, body) = request(store, ApiConfig::default(), case.uri, Some(token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {body}", case.uri);
    assert_eq!(body["error"]["code"], "bad_request", "{}", case.uri);
    let message = body["error"]["message"].as_str().unwrap();
    for name in case.unknown {
        assert!(
            message.contains(&format!("{name:?}")),
            "{}: {message}",
            case.uri
        );
    }
}

async fn unknown_parameters(store: Store) {
    seed_scan(
        &store,
        &[observation(
            "192.0.2.1",
            Some((Family::E2016, "15.1.2507.61", Support::Unsupported)),
        )],
        true,
    )
    .await;
    let admin = token(&store, Role::Admin).await;
    let cases = [
        Unknown {
            route: "/api/v1/census",
            uri: "/api/v1/census?as_of=2026-11-23&foo=1",
            unknown: &["foo"],
        },
        Unknown {
            route: "/api/v1/scans",
            uri: "/api/v1/scans?limit=5&order=asc",
            unknown: &["limit", "order"],
        },
        Unknown {
            route: "/api/v1/statistics",
            uri: "/api/v1/statistics?group_by=family&fmaily=2016&x",
            unknown: &["fmaily", "x"],
        },
        Unknown {
            route: "/api/v1/trends",
            uri: "/api/v1/trends?group_by=support&since=2026-01-01",
            unknown: &["since"],
        },
        Unknown {
            route: "/api/v1/hosts",
            uri: "/api/v1/hosts?page=2",
            unknown: &["page"],
        },
        Unknown {
            route: "/api/v1/hosts/{ip}",
            uri: "/api/v1/hosts/192.0.2.1?verbose=1",
            unknown: &["verbose"],
        },
        Unknown {
            route: "/api/v1/organisations",
            uri: "/api/v1/organisations?sector=hospital",
            unknown: &["sector"],
        },
        Unknown {
            route: "/api/v1/exports/{format}",
            uri: "/api/v1/exports/csv?format=csv",
            unknown: &["format"],
        },
        Unknown {
            route: "/api/v1/exports",
            uri: "/api/v1/exports?offset=10",
            unknown: &["offset"],
        },
        Unknown {
            route: "/readyz",
            uri: "/readyz?probe=1",
            unknown: &["probe"],
        },
        Unknown {
            route: "/healthz",
            uri: "/healthz?probe=1",
            unknown: &["probe"],
        },
        Unknown {
            route: "/api/v1/openapi.json",
            uri: "/api/v1/openapi.json?v=3",
            unknown: &["v"],
        },
    ];
    for case in &cases {
        check_refused(&store, &admin, case).await;
    }
    // Every documented operation is among the cases.
    let (_, doc) = get(&store, "/api/v1/openapi.json").await;
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(
            cases.iter().any(|c| c.route == path),
            "{path} has no unknown-parameter case"
        );
    }
}

#[tokio::test]
async fn unknown_parameters_on_sqlite() {
    let db = testing::sqlite();
    unknown_parameters(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn unknown_parameters_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    unknown_parameters(surveyor_store::open(&db.url).await.unwrap()).await;
}

/// `/census?as_of=DAY` reads the newest scan finished by that day, as `report --as-of` does.
async fn census_as_of(store: Store) {
    let first = seed_scan(
        &store,
        &[observation(
            "192.0.2.1",
            Some((Family::E2016, "15.1.2507.61", Support::Unsupported)),
        )],
        true,
    )
    .await;
    let (status, body) = get(&store, "/api/v1/census?as_of=2026-11-23").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scan"]["id"], first.0);
    assert_eq!(body["census"]["servers"], 1);
    for (uri, expected, says) in [
        (
            "/api/v1/census?as_of=2020-01-01",
            StatusCode::NOT_FOUND,
            "2020-01-01",
        ),
        (
            "/api/v1/census?as_of=yesterday",
            StatusCode::BAD_REQUEST,
            "YYYY-MM-DD",
        ),
        (
            "/api/v1/census?as_of=2026-11-23&scan=1",
            StatusCode::BAD_REQUEST,
            "not both",
        ),
    ] {
        let (status, body) = get(&store, uri).await;
        assert_eq!(status, expected, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{uri}: {message}");
    }
}

#[tokio::test]
async fn census_as_of_on_sqlite() {
    let db = testing::sqlite();
    census_as_of(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn census_as_of_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    census_as_of(surveyor_store::open(&db.url).await.unwrap()).await;
}
