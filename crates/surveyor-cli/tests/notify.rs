//! `surveyor notify` end to end: the real binary scans a test-bed attributed by its registry,
//! plans the scan's notifications into the outbox and files, sends them to a webhook receiver
//! on loopback, and reports their state; planning and sending again tells nobody twice. On
//! SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use surveyor_store::testing;
use surveyor_testbed::{Testbed, TestbedConfig};
use tokio::net::TcpListener;

const AS_OF: &str = "2026-11-23";
const SECRET: &str = "notify-test-secret";

/// One POST the receiver got: its idempotency key, signature header and body.
#[derive(Debug, Clone)]
struct Request {
    key: String,
    signature: String,
    raw: Vec<u8>,
    body: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_send_status_tell_each_affected_organisation_once() {
    let net = "127.79.9.0/24";
    let bed = Testbed::start_with(
        TestbedConfig {
            hosts: 80,
            seed: 9,
            net: net.parse().unwrap(),
            port: 0,
        },
        surveyor_testbed::FleetOptions {
            hostile_share: 0.0,
            // Enough SE servers that some are fully patched (or show only their CU) whatever
            // the newest update in the knowledge base is: the test needs servers not to tell.
            family_weights: surveyor_testbed::FamilyWeights {
                se: 30,
                ..surveyor_testbed::FamilyWeights::default()
            },
            ..surveyor_testbed::FleetOptions::default()
        },
    )
    .await
    .unwrap();
    for (backend, db) in testing::each_backend().await {
        eprintln!("backend {backend}");
        notify_round_trip(&bed, net, &db.url).await;
    }
    bed.shutdown().await;
}

async fn notify_round_trip(bed: &Testbed, net: &str, db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    surveyor_testbed::write_registry(bed.truth(), std::fs::File::create(&registry).unwrap())
        .unwrap();
    ok(&cli(&["registry", "import", &path(&registry), "--db", db]).await);
    let port = bed.port().to_string();
    let scan = cli(&[
        "scan",
        net,
        "--ports",
        &port,
        "--allow-loopback",
        "--as-of",
        AS_OF,
        "--db",
        db,
        "--network-rate",
        "0",
        "--host-rate",
        "0",
    ])
    .await;
    let expected = affected_by_organisation(&ok(&scan));
    let report = json(&cli(&["report", "--db", db, "--format", "json"]).await);
    let scan_id = report["scan"]["id"].to_string();

    let (url, received) = receiver().await;
    let out = dir.path().join("out");
    let secret = dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let plan_args = [
        "notify",
        "plan",
        "--scan",
        &scan_id,
        "--db",
        db,
        "--out",
        &path(&out),
        "--webhook",
        &url,
    ];

    // Planning: one bundle per affected organisation, each with exactly its affected servers.
    let plan = json(&cli(&plan_args).await);
    let bundles = bundles_by_organisation(&plan);
    assert_eq!(
        bundles.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{plan}"
    );
    for (org, bundle) in &bundles {
        assert_eq!(bundle["findings"], expected[org].len(), "{org}: {bundle}");
        assert_eq!(bundle["recipient"]["email"], format!("abuse@{org}"));
    }
    assert_eq!(plan["unrouted"], Value::Array(vec![]));
    assert_eq!(plan["suppressed"], 0);
    assert_eq!(plan["within_window"], 0);
    assert_eq!(plan["outbox"]["enqueued"], bundles.len(), "{plan}");
    assert_eq!(plan["outbox"]["already_queued"], 0);

    // The files: the manifest is the plan without the outbox, and names files that hold the
    // bundle's servers in every format.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let mut without_outbox = plan.clone();
    without_outbox.as_object_mut().unwrap().remove("outbox");
    assert_eq!(manifest, without_outbox);
    for (org, bundle) in &bundles {
        let files = &bundle["files"];
        let intelmq = read(&out, &files["intelmq"]);
        let ips: BTreeSet<(IpAddr, u16)> = intelmq
            .lines()
            .map(|l| {
                let e: Value = serde_json::from_str(l).unwrap();
                (
                    e["source.ip"].as_str().unwrap().parse().unwrap(),
                    e["source.port"].as_u64().unwrap() as u16,
                )
            })
            .collect();
        assert_eq!(ips, expected[org], "{org}: {intelmq}");
        let csv = read(&out, &files["scan_exchange"]);
        let mut rows = csv::Reader::from_reader(csv.as_bytes());
        let csv_ips: BTreeSet<IpAddr> = rows
            .deserialize::<BTreeMap<String, String>>()
            .map(|r| r.unwrap()["ip"].parse().unwrap())
            .collect();
        let expected_ips: BTreeSet<IpAddr> = expected[org].iter().map(|(ip, _)| *ip).collect();
        assert_eq!(csv_ips, expected_ips, "{org}: {csv}");
        let email = read(&out, &files["email"]);
        assert!(
            email.starts_with(&format!(
                "Subject: {}\n\n",
                bundle["subject"].as_str().unwrap()
            )),
            "{email}"
        );
        let language = bundle["language"].as_str().unwrap();
        assert!(
            files["email"]
                .as_str()
                .unwrap()
                .ends_with(&format!(".{language}.eml.txt")),
            "{bundle}"
        );
    }

    let status = json(&cli(&["notify", "status", "--db", db, "--format", "json"]).await);
    assert_eq!(status["counts"]["pending"], bundles.len(), "{status}");
    assert_eq!(status["counts"]["delivered"], 0);

    // Sending: every bundle arrives once, signed, and the outbox says delivered.
    let send_args = [
        "notify",
        "send",
        "--db",
        db,
        "--webhook-secret-file",
        &path(&secret),
        "--max-attempts",
        "3",
    ];
    let sent = json(&cli(&send_args).await);
    assert_eq!(sent["attempted"], bundles.len(), "{sent}");
    assert_eq!(sent["delivered"], bundles.len(), "{sent}");
    assert_eq!(sent["failed"], 0);
    let requests = received.lock().unwrap().clone();
    let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        assert_eq!(r.body["idempotency_key"], r.key.as_str());
        assert!(
            surveyor_notify::deliver::verify_signature(SECRET.as_bytes(), &r.raw, &r.signature),
            "{}",
            r.signature
        );
        let org = r.body["recipient"]["organisation"]
            .as_str()
            .unwrap()
            .to_string();
        let servers: BTreeSet<(IpAddr, u16)> = r.body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["ip"].as_str().unwrap().parse().unwrap(),
                    f["port"].as_u64().unwrap() as u16,
                )
            })
            .collect();
        assert_eq!(servers, expected[&org], "{org}");
        *arrived.entry(org).or_default() += 1;
    }
    let once: BTreeMap<String, usize> = expected.keys().map(|o| (o.clone(), 1)).collect();
    assert_eq!(arrived, once);

    let status = json(&cli(&["notify", "status", "--db", db, "--format", "json"]).await);
    assert_eq!(status["counts"]["delivered"], bundles.len(), "{status}");
    assert_eq!(status["counts"]["pending"], 0);
    for n in status["notifications"].as_array().unwrap() {
        assert_eq!(n["status"], "delivered", "{n}");
        assert_eq!(n["channel"], "webhook");
        assert_eq!(n["destination"], url.as_str());
        assert_eq!(n["attempts"], 1);
        assert_eq!(n["last_error"], Value::Null);
        let log = n["deliveries"].as_array().unwrap();
        assert_eq!(log.len(), 1, "{n}");
        assert_eq!(log[0]["outcome"], "delivered");
    }

    // Again: everything was told within the window, nothing is queued or sent.
    let again = json(&cli(&plan_args).await);
    assert_eq!(again["bundles"], Value::Array(vec![]), "{again}");
    let servers: usize = expected.values().map(BTreeSet::len).sum();
    assert_eq!(again["within_window"], servers);
    assert_eq!(again["outbox"]["enqueued"], 0);
    let resent = json(&cli(&send_args).await);
    assert_eq!(resent["attempted"], 0, "{resent}");
    assert_eq!(received.lock().unwrap().len(), requests.len());

    // A suppressed organisation is left out even when the window has passed; the others'
    // reminders go under the same idempotency keys, so the outbox takes nothing new.
    let first = expected.keys().next().unwrap();
    ok(&cli(&["notify", "suppress", first, "--reason", "asked", "--db", db]).await);
    let mut reminder_args = plan_args.to_vec();
    reminder_args.extend(["--window-days", "0"]);
    let reminders = json(&cli(&reminder_args).await);
    let reminded = bundles_by_organisation(&reminders);
    let others: Vec<&String> = expected.keys().filter(|o| *o != first).collect();
    assert_eq!(reminded.keys().collect::<Vec<_>>(), others, "{reminders}");
    assert_eq!(reminders["suppressed"], expected[first].len());
    for bundle in reminded.values() {
        assert_eq!(bundle["reminders"], bundle["findings"], "{bundle}");
    }
    assert_eq!(reminders["outbox"]["enqueued"], 0);
    assert_eq!(reminders["outbox"]["already_queued"], others.len());
    ok(&cli(&["notify", "unsuppress", first, "--db", db]).await);
    let status = json(&cli(&["notify", "status", "--db", db, "--format", "json"]).await);
    assert_eq!(status["suppressions"], Value::Array(vec![]));
}

/// The affected Exchange servers of a scan's JSON lines, by attributed organisation: those
/// unsupported, on an ESU-only build, or vulnerable to a CVE. Asserts the fleet also has
/// Exchange servers that are none of these, which must not be told.
fn affected_by_organisation(stdout: &str) -> BTreeMap<String, BTreeSet<(IpAddr, u16)>> {
    let mut affected: BTreeMap<String, BTreeSet<(IpAddr, u16)>> = BTreeMap::new();
    let mut fine = 0;
    for line in stdout.lines() {
        let o: Value = serde_json::from_str(line).unwrap();
        let ex = &o["exchange"];
        if ex.is_null() {
            continue;
        }
        let vulnerable = ex["cves"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "vulnerable");
        if ex["support"] == "unsupported" || ex["esu_patched"] == true || vulnerable {
            let org = o["attribution"]["organisation"].as_str().unwrap();
            affected.entry(org.to_string()).or_default().insert((
                o["ip"].as_str().unwrap().parse().unwrap(),
                o["port"].as_u64().unwrap() as u16,
            ));
        } else {
            fine += 1;
        }
    }
    assert!(
        affected.len() >= 2,
        "too few affected organisations: {affected:?}"
    );
    assert!(fine > 0, "the fleet has no supported, patched server");
    affected
}

fn bundles_by_organisation(plan: &Value) -> BTreeMap<String, Value> {
    plan["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["recipient"]["organisation"].as_str().unwrap().to_string(),
                b.clone(),
            )
        })
        .collect()
}

/// A webhook receiver on 127.0.0.1 that answers 200 to every POST and keeps it.
async fn receiver() -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let shared = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let received = received.clone();
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap().to_string())
                                .unwrap_or_default()
                        };
                        let key = header("idempotency-key");
                        let signature = header("x-surveyor-signature");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        received.lock().unwrap().push(Request {
                            key,
                            signature,
                            body: serde_json::from_slice(&body).unwrap(),
                            raw: body.to_vec(),
                        });
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

async fn cli(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_surveyor"))
            .args(&args)
            .env_remove("SURVEYOR_DB")
            .env("RUST_LOG", "error")
            .output()
            .expect("the surveyor binary runs")
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn read(dir: &Path, name: &Value) -> String {
    std::fs::read_to_string(dir.join(name.as_str().unwrap())).unwrap()
}
