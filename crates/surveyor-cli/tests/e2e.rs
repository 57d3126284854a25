//! End to end: the real `surveyor` binary scans an in-process test-bed; its JSON lines and
//! census must match the test-bed's ground truth, on SQLite and on PostgreSQL.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::{Command, Output};

use serde_json::Value;
use surveyor_store::testing;
use surveyor_testbed::{Testbed, TestbedConfig, TruthHost};

const AS_OF: &str = "2026-11-23";

fn surveyor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_surveyor"))
        .args(args)
        .env_remove("SURVEYOR_DB")
        .env_remove("SURVEYOR_KB")
        .env("RUST_LOG", "error")
        .output()
        .expect("the surveyor binary runs")
}

async fn surveyor_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        surveyor(&args)
    })
    .await
    .unwrap()
}

/// What the scanner can honestly see of a truth host: the exact build when the host sends
/// X-OWA-Version, serves the ECP manifest, or (2010) puts the 4-part build in its paths;
/// otherwise only the CU.
fn expected_build(truth: &surveyor_testbed::TruthExchange) -> String {
    let exact = truth.owa_version_header
        || truth.exporttool_manifest
        || matches!(truth.family.as_str(), "2007" | "2010");
    if exact {
        truth.build.clone()
    } else {
        truth.build.rsplit_once('.').unwrap().0.to_string()
    }
}

fn check_lines(stdout: &str, truth: &[TruthHost]) {
    let lines: BTreeMap<IpAddr, Value> = stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("every line is JSON");
            (v["ip"].as_str().unwrap().parse().unwrap(), v)
        })
        .collect();
    let missing: Vec<_> = truth
        .iter()
        .filter(|h| !lines.contains_key(&h.ip))
        .map(|h| (h.ip, h.persona.as_str()))
        .collect();
    assert!(missing.is_empty(), "no line for {missing:?}");
    assert_eq!(
        lines.len(),
        truth.len(),
        "one line per live host, none for empty addresses"
    );
    for host in truth {
        let line = &lines[&host.ip];
        assert_eq!(line["port"], host.port, "{}", host.ip);
        assert_eq!(line["scheme"], "https");
        let expected = host.expected_status.as_deref().unwrap_or("success");
        assert_eq!(
            line["status"], expected,
            "{} ({}): {line}",
            host.ip, host.persona
        );
        if expected != "success" {
            assert!(line["exchange"].is_null() || host.exchange.is_some());
            continue;
        }
        assert!(line["observed_at"].as_str().unwrap().ends_with('Z'));
        let names = line["tls"]["names"].as_array().unwrap();
        assert!(
            names
                .iter()
                .any(|n| n.as_str().unwrap().ends_with(&host.domain)),
            "{line}"
        );
        match &host.exchange {
            None => assert!(
                line["exchange"].is_null(),
                "{} is {}: {line}",
                host.ip,
                host.persona
            ),
            Some(t) => {
                let ex = &line["exchange"];
                assert_eq!(ex["family"], t.family.as_str(), "{line}");
                let build = expected_build(t);
                assert_eq!(ex["build"], build.as_str(), "{line}");
                if build == t.build {
                    assert_eq!(ex["version_name"], t.version_name.as_str(), "{line}");
                } else {
                    let name = ex["version_name"].as_str().unwrap();
                    let cu = t.version_name.split(" (").next().unwrap();
                    let cu = cu.rsplit_once(' ').map_or(cu, |(head, last)| {
                        if last.contains("SU") || last.contains("HU") || last.starts_with("KB") {
                            head
                        } else {
                            cu
                        }
                    });
                    assert!(
                        cu == name || cu.starts_with(&format!("{name} ")),
                        "{name:?} should name the CU of {:?}",
                        t.version_name
                    );
                }
                let support = t.support_on(AS_OF);
                assert_eq!(ex["support"], support, "{line}");
                assert!(!ex["evidence"].as_array().unwrap().is_empty());
            }
        }
    }
}

fn check_census(report: &Value, truth: &[TruthHost]) {
    let census = &report["census"];
    let exchange: Vec<_> = truth.iter().filter_map(|h| h.exchange.as_ref()).collect();
    assert_eq!(census["servers"], exchange.len());
    let supported = exchange
        .iter()
        .filter(|e| e.support_on(AS_OF) == "supported")
        .count();
    assert_eq!(census["supported"], supported);
    assert_eq!(census["unsupported"], exchange.len() - supported);
    for row in census["families"].as_array().unwrap() {
        let family = row["family"].as_str().unwrap();
        let n = exchange.iter().filter(|e| e.family == family).count();
        assert_eq!(row["servers"], n, "family {family}");
    }
    assert_eq!(report["scan"]["as_of"], AS_OF);
    assert!(report["scan"]["finished_at"].is_string());
}

async fn scan_testbed_into(db: &str, net: &str) {
    let bed = Testbed::start(TestbedConfig {
        hosts: 120,
        seed: 7,
        net: net.parse().unwrap(),
        port: 0,
    })
    .await
    .expect("test-bed starts");
    let port = bed.port().to_string();
    let out = surveyor_async(
        [
            "scan",
            net,
            "--ports",
            &port,
            "--allow-loopback",
            "--as-of",
            AS_OF,
            "--db",
            db,
            "--target-timeout",
            "3",
            "--network-rate",
            "0",
            "--host-rate",
            "0",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_lines(&String::from_utf8(out.stdout).unwrap(), bed.truth());

    let out = surveyor_async(
        ["report", "--db", db, "--format", "json"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_census(&report, bed.truth());

    let out = surveyor_async(["report", "--db", db].map(String::from).to_vec()).await;
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("Family") && table.contains("Total"),
        "{table}"
    );
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_matches_ground_truth_on_sqlite() {
    let db = testing::sqlite();
    scan_testbed_into(&db.url, "127.78.1.0/24").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_matches_ground_truth_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    scan_testbed_into(&db.url, "127.78.2.0/24").await;
}

#[test]
fn loopback_is_refused_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let out = surveyor(&["scan", "127.0.0.1", "--ports", "1", "--db", &db]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("loopback") && err.contains("--allow-loopback"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // Private ranges stay closed even with the flag.
    let out = surveyor(&["scan", "10.0.0.0/8", "--allow-loopback", "--db", &db]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("private use"));
}

#[test]
fn malformed_target_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("targets.txt");
    std::fs::write(&list, "# loopback test\n127.0.0.1\n127.0.0.300\n").unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let out = surveyor(&[
        "scan",
        "--allow-loopback",
        "--targets-file",
        list.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("targets.txt line 3") && err.contains("127.0.0.300"),
        "{err}"
    );
}

#[test]
fn report_on_an_empty_store_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let out = surveyor(&["report", "--db", &db]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `surveyor scan` first"));
}

#[test]
fn demo_runs_end_to_end_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("demo.db").display());
    let out = surveyor(&[
        "demo",
        "--no-serve",
        "--hosts",
        "30",
        "--net",
        "127.78.3.0/24",
        "--db",
        &db,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("Total"), "{table}");
    let out = surveyor(&["report", "--db", &db, "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bed = surveyor_testbed::generate(&TestbedConfig {
        hosts: 30,
        seed: 2025,
        net: "127.78.3.0/24".parse().unwrap(),
        port: 0,
    });
    assert_eq!(
        report["census"]["servers"],
        bed.iter().filter(|h| h.exchange.is_some()).count()
    );
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_scan_resumes_without_repeating_or_skipping() {
    let bed = Testbed::start(TestbedConfig {
        hosts: 60,
        seed: 21,
        net: "127.78.4.0/24".parse().unwrap(),
        port: 0,
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("r.db").display());
    let checkpoint = dir.path().join("scan.checkpoint").display().to_string();
    let port = bed.port().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "scan",
            "127.78.4.0/24",
            "--ports",
            &port,
            "--allow-loopback",
            "--as-of",
            AS_OF,
            "--db",
            &db,
        ];
        args.extend([
            "--target-timeout",
            "3",
            "--network-rate",
            "0",
            "--host-rate",
            "0",
            "--seed",
            "5",
        ]);
        args.extend(extra);
        args.into_iter().map(String::from).collect()
    };
    let first = surveyor_async(base(&["--max-targets", "100", "--checkpoint", &checkpoint])).await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("--max-targets"));
    let out = surveyor_async(["report", "--db", &db].map(String::from).to_vec()).await;
    assert!(!out.status.success(), "a stopped scan is not a census");

    // A checkpoint for other targets is refused.
    let other = surveyor_async({
        let mut a = base(&["--resume", &checkpoint]);
        a[1] = "127.78.4.0/25".into();
        a
    })
    .await;
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("another scan"));

    let second = surveyor_async(base(&["--resume", &checkpoint])).await;
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let mut seen = BTreeMap::new();
    for line in json_lines(&first).into_iter().chain(json_lines(&second)) {
        let ip: IpAddr = line["ip"].as_str().unwrap().parse().unwrap();
        assert!(seen.insert(ip, line).is_none(), "{ip} scanned twice");
    }
    let truth: Vec<IpAddr> = bed.truth().iter().map(|h| h.ip).collect();
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        truth,
        "every live host exactly once"
    );
    let out = surveyor_async(
        ["report", "--db", &db, "--format", "json"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_census(&report, bed.truth());
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_the_work_and_csv_has_the_census_columns() {
    let bed = Testbed::start(TestbedConfig {
        hosts: 30,
        seed: 22,
        net: "127.78.5.0/25".parse().unwrap(),
        port: 0,
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = bed.port().to_string();
    let mut rows = Vec::new();
    for shard in ["0", "1", "2"] {
        let db = format!(
            "sqlite:{}",
            dir.path().join(format!("s{shard}.db")).display()
        );
        let args = [
            "scan",
            "127.78.5.0/25",
            "--ports",
            &port,
            "--allow-loopback",
            "--db",
            &db,
            "--target-timeout",
            "3",
            "--network-rate",
            "0",
            "--host-rate",
            "0",
            "--shards",
            "3",
            "--shard",
            shard,
            "--output-format",
            "csv",
        ];
        let out = surveyor_async(args.map(String::from).to_vec()).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(&headers[0], "ip");
        assert!(headers.iter().any(|h| h == "exchange_version_name"));
        for record in reader.records() {
            rows.push(record.unwrap()[0].to_string());
        }
    }
    rows.sort();
    let mut truth: Vec<String> = bed.truth().iter().map(|h| h.ip.to_string()).collect();
    truth.sort();
    assert_eq!(rows, truth, "three shards together: every host once");
    bed.shutdown().await;
}

#[test]
fn excluded_and_malformed_lists_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let block = dir.path().join("block.txt");
    std::fs::write(&block, "127.0.0.0/8\nnot a prefix\n").unwrap();
    let out = surveyor(&[
        "scan",
        "127.0.0.1",
        "--allow-loopback",
        "--blocklist-file",
        block.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("block.txt line 2"));
    let zgrab = dir.path().join("zgrab.csv");
    std::fs::write(
        &zgrab,
        "127.0.0.1, mail.example.org, t, 443\n, owa.example.org, t, 443\n",
    )
    .unwrap();
    let out = surveyor(&[
        "scan",
        "--allow-loopback",
        "--targets-file",
        zgrab.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zgrab.csv line 2"));
}

#[test]
fn testbed_command_writes_truth_and_registry_and_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let registry = dir.path().join("registry.csv");
    let child = Command::new(env!("CARGO_BIN_EXE_surveyor"))
        .args([
            "testbed",
            "--hosts",
            "20",
            "--seed",
            "3",
            "--net",
            "127.78.6.0/24",
            "--ports",
            "0/https,0/smtp",
            "--dns",
            "0",
            "--listeners",
            "shared",
        ])
        .args([
            "--truth",
            truth.to_str().unwrap(),
            "--registry",
            registry.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed on drop, so that a failed assertion never leaves a test-bed running.
    let mut child = KillOnDrop(Some(child));
    let mut line = String::new();
    std::io::BufReader::new(child.get().stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["ready"], true);
    assert!(ready["port"].as_u64().unwrap() > 0 && ready["smtp_port"].as_u64().unwrap() > 0);
    assert!(ready["http_port"].is_null());
    assert!(ready["dns"].as_str().is_some_and(|a| a.starts_with("127.")));
    assert_eq!(ready["listeners"], "shared");
    let hosts: Vec<TruthHost> = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hosts.len(), 20);
    assert!(hosts
        .iter()
        .all(|h| !h.sector.is_empty() && !h.organisation.is_empty()));
    let registry = std::fs::read_to_string(&registry).unwrap();
    assert!(
        registry.starts_with("organisation,sector,cidr,domain,abuse_contact,language"),
        "{registry}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.get().id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        child.0.take().unwrap().wait().unwrap().success(),
        "a SIGTERM stops the test-bed cleanly"
    );
}

#[test]
fn kb_commands_answer_from_the_shipped_data() {
    let out = surveyor(&[
        "kb",
        "show",
        "15.02.2562.029",
        "--as-of",
        AS_OF,
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["build"], "15.2.2562.29");
    assert_eq!(v["build_precision"], "exact");
    assert!(v["cves"].as_array().is_some_and(|c| !c.is_empty()));

    let out = surveyor(&["kb", "check"]);
    assert!(
        out.status.success(),
        "the shipped data passes its own check"
    );

    let out = surveyor(&["kb", "show", "15.9.1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a build"));

    let out = surveyor(&[
        "kb",
        "enforcement",
        "--first-seen",
        "2026-09-01",
        "--as-of",
        "2026-09-20",
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "report-only");
    let out = surveyor(&[
        "kb",
        "enforcement",
        "--first-seen",
        "2026-09-01",
        "--as-of",
        "2026-12-15",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "complete-block");
}

struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn get(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("the child is still owned")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `surveyor scan` of a test-bed into `db` as a child process and waits until the scan
/// is recorded in the store, so that the store can be taken away while the scan still runs
/// (the test-bed's tarpits hold it open for the target timeout).
async fn start_scan(bed: &Testbed, net: &str, db: &testing::TestDb, extra: &[&str]) -> KillOnDrop {
    // Migrated first, so that the scans table can be watched.
    drop(surveyor_store::open(&db.url).await.unwrap());
    let port = bed.port().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_surveyor"))
        .args([
            "scan",
            net,
            "--ports",
            &port,
            "--allow-loopback",
            "--as-of",
            AS_OF,
        ])
        .args([
            "--db",
            &db.url,
            "--target-timeout",
            "4",
            "--network-rate",
            "0",
        ])
        .args(["--host-rate", "0", "--output", "/dev/null"])
        .args(extra)
        .env_remove("SURVEYOR_DB")
        .env("RUST_LOG", "error")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop(Some(child));
    while db.scalar("SELECT count(*) FROM scans").await == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child
}

/// The fleet both store-outage tests scan: 60 hosts, tarpits among them.
async fn outage_fleet(net: &str) -> Testbed {
    Testbed::start(TestbedConfig {
        hosts: 60,
        seed: 7,
        net: net.parse().unwrap(),
        port: 0,
    })
    .await
    .unwrap()
}

/// Waits for a scan started by [`start_scan`] and returns what it printed.
async fn finish(mut child: KillOnDrop) -> Output {
    tokio::task::spawn_blocking(move || child.0.take().unwrap().wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

fn answering(bed: &Testbed) -> i64 {
    bed.truth().len() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_away_mid_scan_loses_nothing() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let net = "127.78.9.0/24";
    let bed = outage_fleet(net).await;
    assert!(bed.truth().iter().any(|h| h.persona == "tarpit"));

    // The database refuses connections for a while mid-scan: the batches wait and retry.
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill.jsonl");
    let spill_arg = spill.to_str().unwrap();
    let child = start_scan(
        &bed,
        net,
        &db,
        &["--store-retry", "60", "--spill", spill_arg],
    )
    .await;
    db.set_reachable(false).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    db.set_reachable(true).await;
    let out = finish(child).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!spill.exists(), "nothing had to be spilled");
    assert_eq!(
        db.scalar("SELECT count(*) FROM observations").await,
        answering(&bed)
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM scans WHERE finished_at IS NOT NULL")
            .await,
        1
    );
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stays_away_spills_and_ingest_loads_it() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let net = "127.78.10.0/24";
    let bed = outage_fleet(net).await;
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill.jsonl");
    let spill_arg = spill.to_str().unwrap().to_string();

    // Gone for good during the scan: after a second of retries each batch is spilled, and
    // the scan says so with a failing exit status.
    let child = start_scan(
        &bed,
        net,
        &db,
        &["--store-retry", "1", "--spill", &spill_arg],
    )
    .await;
    db.set_reachable(false).await;
    let out = finish(child).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("surveyor ingest"), "{err}");
    let lines = std::fs::read_to_string(&spill).unwrap();
    assert!(
        lines.lines().any(|l| l.contains("\"finished_at\"")),
        "{lines}"
    );

    // Back again: ingest stores everything, finishes the scan, and a second ingest of the
    // same file changes nothing.
    db.set_reachable(true).await;
    for _ in 0..2 {
        let out = surveyor_async(
            ["ingest", &spill_arg, "--db", &db.url]
                .map(String::from)
                .to_vec(),
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM observations").await,
            answering(&bed)
        );
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM scans WHERE finished_at IS NOT NULL")
            .await,
        1
    );

    // A damaged spill file is refused with its line, and stores nothing more.
    std::fs::write(&spill, format!("{lines}not json\n")).unwrap();
    let out = surveyor_async(
        ["ingest", &spill_arg, "--db", &db.url]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let bad_line = lines.lines().count() + 1;
    assert!(err.contains(&format!("line {bad_line}")), "{err}");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_brings_each_backend_to_the_newest_schema() {
    for (backend, db) in testing::each_backend().await {
        for _ in 0..2 {
            let out = surveyor_async(["migrate", "--db", &db.url].map(String::from).to_vec()).await;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{backend}: {err}");
            // The newest migration of the backend's own directory.
            let dir = format!(
                "{}/../../migrations/{}",
                env!("CARGO_MANIFEST_DIR"),
                match backend {
                    surveyor_store::Backend::Postgres => "postgres",
                    surveyor_store::Backend::Sqlite => "sqlite",
                }
            );
            let newest = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .max()
                .unwrap();
            let (version, name) = newest.trim_end_matches(".sql").split_once('_').unwrap();
            let expected = format!(
                "is at migration {} ({})",
                version.parse::<u32>().unwrap(),
                name.replace('_', " ")
            );
            assert!(err.contains(&expected), "{backend}: {expected}: {err}");
        }
    }
    let out = surveyor(&["migrate", "--db", "mysql://x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported scheme"));
    let out = surveyor(&[
        "ingest",
        "/nonexistent/spill.jsonl",
        "--db",
        "sqlite::memory:",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not read /nonexistent/spill.jsonl")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_of_two_scans_of_one_fleet_shows_no_change() {
    let db = testing::sqlite();
    let net = "127.78.11.0/24";
    let bed = friendly_fleet(net, 40, 5, false).await;
    let port = bed.port().to_string();
    for _ in 0..2 {
        let out = surveyor_async(
            [
                "scan",
                net,
                "--ports",
                &port,
                "--allow-loopback",
                "--as-of",
                AS_OF,
                "--db",
                &db.url,
                "--output",
                "/dev/null",
                "--network-rate",
                "0",
                "--host-rate",
                "0",
            ]
            .map(String::from)
            .to_vec(),
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = surveyor_async(
        ["report", "--db", &db.url, "--diff", "1", "--format", "json"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["before"].as_i64(), doc["after"].as_i64()),
        (Some(1), Some(2))
    );
    let diff = &doc["diff"];
    for list in [
        "new",
        "gone",
        "upgraded",
        "downgraded",
        "newly_supported",
        "newly_unsupported",
    ] {
        assert_eq!(
            diff[list].as_array().map(Vec::len),
            Some(0),
            "{list}: {diff}"
        );
    }
    let exchange = bed.truth().iter().filter(|h| h.exchange.is_some()).count() as u64;
    let unsupported = bed
        .truth()
        .iter()
        .filter(|h| {
            h.exchange
                .as_ref()
                .is_some_and(|e| e.support_on(AS_OF) == "unsupported")
        })
        .count();
    assert_eq!(diff["unchanged"].as_u64(), Some(exchange));
    assert_eq!(
        diff["still_unsupported"].as_array().map(Vec::len),
        Some(unsupported)
    );

    let table = surveyor_async(
        ["report", "--db", &db.url, "--diff", "1"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("scan 1 -> scan 2") && text.contains("still unsupported"),
        "{text}"
    );
    let out = surveyor_async(
        ["report", "--db", &db.url, "--diff", "99"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scan with id 99"));

    census_queries_and_prune(&db.url, bed.truth(), exchange).await;
    bed.shutdown().await;
}

async fn cli(args: &[&str]) -> Output {
    surveyor_async(args.iter().map(|a| a.to_string()).collect()).await
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Census queries over the two scans of one fleet, then a prune of the older one.
async fn census_queries_and_prune(db: &str, truth: &[TruthHost], exchange: u64) {
    let doc = json_of(
        &cli(&[
            "report",
            "--db",
            db,
            "--group-by",
            "family,support",
            "--format",
            "json",
        ])
        .await,
    );
    let groups = doc["groups"].as_array().unwrap();
    for family in ["2007", "2010", "2013", "2016", "2019", "SE"] {
        let counted: u64 = groups
            .iter()
            .filter(|g| g["family"] == family)
            .map(|g| g["servers"].as_u64().unwrap())
            .sum();
        let true_count = truth
            .iter()
            .filter(|h| h.exchange.as_ref().is_some_and(|e| e.family == family))
            .count() as u64;
        assert_eq!(counted, true_count, "{family}: {doc}");
    }
    let unsupported = json_of(
        &cli(&[
            "report",
            "--db",
            db,
            "--support",
            "unsupported",
            "--format",
            "json",
        ])
        .await,
    );
    let unsupported_truth = truth
        .iter()
        .filter(|h| {
            h.exchange
                .as_ref()
                .is_some_and(|e| e.support_on(AS_OF) == "unsupported")
        })
        .count() as u64;
    assert_eq!(
        unsupported["groups"][0]["servers"].as_u64(),
        Some(unsupported_truth)
    );
    let table = cli(&["report", "--db", db, "--group-by", "patch"]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("patch") && text.contains("share"), "{text}");

    let trend = json_of(&cli(&["report", "--db", db, "--trend", "--format", "json"]).await);
    let servers: Vec<_> = trend
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["servers"].as_u64())
        .collect();
    assert_eq!(servers, vec![Some(exchange); 2], "{trend}");
    let out = cli(&["report", "--db", db, "--as-of", "2000-01-01"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scan had finished by 2000-01-01"));
    let out = cli(&["report", "--db", db, "--group-by", "colour"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dimension"));

    let out = cli(&["prune", "--db", db]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("say what to keep"));
    let dry = cli(&["prune", "--db", db, "--keep-scans", "1", "--dry-run"]).await;
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("would delete"),
        "{dry:?}"
    );
    let out = cli(&["prune", "--db", db, "--keep-scans", "1"]).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("of 1 scans: 1"),
        "{said}"
    );
    // The pruned scan keeps its census and its place in the trend; its addresses are gone.
    let old = json_of(&cli(&["report", "--db", db, "--scan", "1", "--format", "json"]).await);
    assert_eq!(old["census"]["servers"].as_u64(), Some(exchange));
    assert!(old["scan"]["pruned_at"].is_string(), "{old}");
    let trend = json_of(&cli(&["report", "--db", db, "--trend", "--format", "json"]).await);
    assert_eq!(trend.as_array().map(Vec::len), Some(2));
    let out = cli(&["report", "--db", db, "--diff", "1"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("were pruned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answering_host_is_attributed_to_its_true_organisation_and_sector() {
    let db = testing::sqlite();
    let net = "127.78.12.0/24";
    let bed = friendly_fleet(net, 80, 12, false).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    surveyor_testbed::write_registry(bed.truth(), std::fs::File::create(&registry).unwrap())
        .unwrap();
    let path = registry.display().to_string();
    let out = cli(&["registry", "import", &path, "--db", &db.url]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = bed.port().to_string();
    let out = cli(&[
        "scan",
        net,
        "--ports",
        &port,
        "--allow-loopback",
        "--as-of",
        AS_OF,
        "--db",
        &db.url,
        "--network-rate",
        "0",
        "--host-rate",
        "0",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = json_lines(&out);
    assert_eq!(lines.len(), bed.truth().len());
    for line in &lines {
        let ip: IpAddr = line["ip"].as_str().unwrap().parse().unwrap();
        let host = bed.truth().iter().find(|h| h.ip == ip).unwrap();
        let a = &line["attribution"];
        assert_eq!(a["organisation"], host.domain.as_str(), "{ip}: {a}");
        assert_eq!(a["sector"], host.sector.as_str(), "{ip}: {a}");
        if host.exchange.is_some() {
            assert_eq!(a["rule"], "certificate-domain", "{ip}: {a}");
        }
    }

    // The census by sector is the truth's Exchange hosts by sector.
    let doc = json_of(
        &cli(&[
            "report",
            "--db",
            &db.url,
            "--group-by",
            "sector",
            "--format",
            "json",
        ])
        .await,
    );
    let mut counted = BTreeMap::new();
    for g in doc["groups"].as_array().unwrap() {
        counted.insert(
            g["sector"].as_str().unwrap().to_string(),
            g["servers"].as_u64().unwrap(),
        );
    }
    let mut truth = BTreeMap::new();
    for h in bed.truth().iter().filter(|h| h.exchange.is_some()) {
        *truth.entry(h.sector.clone()).or_insert(0u64) += 1;
    }
    assert_eq!(counted, truth);

    // Export gives back what import read, and reads again.
    let exported = cli(&["registry", "export", "--db", &db.url]).await;
    assert!(exported.status.success());
    let again = dir.path().join("again.csv");
    std::fs::write(&again, &exported.stdout).unwrap();
    let out = cli(&[
        "registry",
        "import",
        &again.display().to_string(),
        "--db",
        &db.url,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let twice = cli(&["registry", "export", "--db", &db.url, "--format", "json"]).await;
    let orgs: Value = serde_json::from_slice(&twice.stdout).unwrap();
    let domains: std::collections::BTreeSet<_> =
        bed.truth().iter().map(|h| h.domain.as_str()).collect();
    assert_eq!(orgs.as_array().map(Vec::len), Some(domains.len()), "{orgs}");

    // A broken registry is refused line by line and the stored one stays.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,name,sector\nx,X,hospitals\ny,,school\n").unwrap();
    let out = cli(&[
        "registry",
        "import",
        &bad.display().to_string(),
        "--db",
        &db.url,
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("line 2") && err.contains("line 3"), "{err}");
    let still = cli(&["registry", "export", "--db", &db.url]).await;
    assert_eq!(still.stdout, exported.stdout);

    let sectors = cli(&["registry", "sectors", "--format", "json"]).await;
    let sectors: Value = serde_json::from_slice(&sectors.stdout).unwrap();
    let hospital = sectors
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sector"] == "hospital")
        .unwrap();
    assert_eq!(hospital["nis2"]["annex"], "I", "{hospital}");
    assert_eq!(sectors.as_array().map(Vec::len), Some(18));
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_seeded_discovery_finds_every_exchange_host_and_scan_takes_its_targets() {
    let db = testing::sqlite();
    let net = "127.78.13.0/24";
    let bed = friendly_fleet(net, 60, 13, true).await;
    let dir = tempfile::tempdir().unwrap();
    let domains: std::collections::BTreeSet<_> =
        bed.truth().iter().map(|h| h.domain.clone()).collect();
    let list = dir.path().join("domains.txt");
    let mut text = String::from("# every organisation of the fleet, and one it does not have\n");
    for d in &domains {
        text.push_str(&format!("{d}\n"));
    }
    text.push_str("not-in-the-fleet.example\n");
    std::fs::write(&list, text).unwrap();
    let targets = dir.path().join("targets.csv");
    let resolver = bed.dns_addr().unwrap().to_string();
    let out = cli(&[
        "discover",
        "--domains",
        &list.display().to_string(),
        "--resolver",
        &resolver,
        "--output",
        &targets.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = bed.port().to_string();
    let out = cli(&[
        "scan",
        "--targets-file",
        &targets.display().to_string(),
        "--input-format",
        "zgrab-csv",
        "--ports",
        &port,
        "--allow-loopback",
        "--as-of",
        AS_OF,
        "--db",
        &db.url,
        "--network-rate",
        "0",
        "--host-rate",
        "0",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let recognised: std::collections::BTreeSet<IpAddr> = lines
        .iter()
        .filter(|l| !l["exchange"].is_null())
        .map(|l| l["ip"].as_str().unwrap().parse().unwrap())
        .collect();
    let exchange: std::collections::BTreeSet<IpAddr> = bed
        .truth()
        .iter()
        .filter(|h| h.exchange.is_some())
        .map(|h| h.ip)
        .collect();
    assert!(!exchange.is_empty());
    assert_eq!(recognised, exchange, "every Exchange host, and only those");

    let out = cli(&["discover", "--domains", &list.display().to_string()]).await;
    assert!(!out.status.success(), "a resolver is required");
    std::fs::write(&list, "ok.example\nnot a domain\n").unwrap();
    let out = cli(&[
        "discover",
        "--domains",
        &list.display().to_string(),
        "--resolver",
        &resolver,
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 2"), "{err}");
    bed.shutdown().await;
}

/// A registry of domains only, where each certificate names two organisations (a decoy holds
/// `autodiscover.<domain>`): neither the certificate nor a prefix decides, the PTR name does,
/// ahead of the NTLM domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptr_names_attribute_what_certificates_and_prefixes_cannot() {
    let db = testing::sqlite();
    let net = "127.78.14.0/24";
    let bed = friendly_fleet(net, 30, 14, true).await;
    let domains: std::collections::BTreeSet<_> = bed
        .truth()
        .iter()
        .filter(|h| h.exchange.is_some())
        .map(|h| (h.domain.clone(), h.sector.clone()))
        .collect();
    let mut csv = String::from("id,name,sector,domains\n");
    for (domain, sector) in &domains {
        csv.push_str(&format!("{domain},{domain},{sector},{domain}\n"));
        csv.push_str(&format!(
            "decoy-{domain},Decoy,business,autodiscover.{domain}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, csv).unwrap();
    let out = cli(&[
        "registry",
        "import",
        &registry.display().to_string(),
        "--db",
        &db.url,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = bed.port().to_string();
    let resolver = bed.dns_addr().unwrap().to_string();
    let scan = |with_ptr: bool| {
        let mut args = vec![
            "scan",
            net,
            "--ports",
            &port,
            "--allow-loopback",
            "--as-of",
            AS_OF,
            "--db",
            &db.url,
            "--network-rate",
            "0",
            "--host-rate",
            "0",
        ];
        if with_ptr {
            args.extend(["--resolver", &resolver]);
        }
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        surveyor_async(args)
    };
    let by_ip = |lines: Vec<Value>| -> BTreeMap<IpAddr, Value> {
        lines
            .into_iter()
            .map(|l| (l["ip"].as_str().unwrap().parse().unwrap(), l))
            .collect()
    };
    let without = by_ip(json_lines(&scan(false).await));
    let with = by_ip(json_lines(&scan(true).await));
    assert_eq!(without.len(), bed.truth().len());
    for (ip, after) in &with {
        let (ip, before) = (*ip, &without[ip]);
        let host = bed.truth().iter().find(|h| h.ip == ip).unwrap();
        if host.exchange.is_none() {
            continue;
        }
        // Without DNS only the weaker NTLM domain can speak (or nothing).
        let weak = &before["attribution"];
        assert!(
            weak.is_null() || weak["rule"] == "ntlm-domain",
            "{ip}: {weak}"
        );
        let a = &after["attribution"];
        assert_eq!(a["organisation"], host.domain.as_str(), "{ip}: {a}");
        assert_eq!(a["rule"], "ptr-domain", "{ip}: {a}");
        assert_eq!(a["matched"], format!("mail.{}", host.domain), "{ip}: {a}");
    }
    bed.shutdown().await;
}

/// A hoster known only by its AS: with the routing data, every server in its network is its.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_as_table_attributes_a_hosters_network_by_its_as() {
    let db = testing::sqlite();
    let net = "127.78.16.0/24";
    let bed = friendly_fleet(net, 20, 16, false).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(
        &registry,
        "id,name,sector,asns\nhoster,Hoster GmbH,ict-hosting,64500\n",
    )
    .unwrap();
    let out = cli(&[
        "registry",
        "import",
        &registry.display().to_string(),
        "--db",
        &db.url,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = dir.path().join("pfx2as.txt");
    std::fs::write(&table, "127.78.16.0\t24\t64500\n127.78.0.0\t16\t64501\n").unwrap();
    // An RIR delegation for the lower half, a more specific prefix line for the upper half.
    let countries = dir.path().join("delegated.txt");
    std::fs::write(
        &countries,
        "2|ripencc|20261122|2|19830705|20261122|+0100\n\
         ripencc|*|ipv4|*|1|summary\n\
         ripencc|DE|ipv4|127.78.16.0|256|20100101|allocated|x\n\
         127.78.16.128/25 AT\n",
    )
    .unwrap();

    let port = bed.port().to_string();
    let out = cli(&[
        "scan",
        net,
        "--ports",
        &port,
        "--allow-loopback",
        "--as-of",
        AS_OF,
        "--db",
        &db.url,
        "--network-rate",
        "0",
        "--host-rate",
        "0",
        "--asn-table",
        &table.display().to_string(),
        "--country-table",
        &countries.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), bed.truth().len());
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for line in &lines {
        assert_eq!(line["asn"], 64500, "{line}");
        let ip: std::net::Ipv4Addr = line["ip"].as_str().unwrap().parse().unwrap();
        let country = if ip.octets()[3] >= 128 { "AT" } else { "DE" };
        assert_eq!(line["country"], country, "{line}");
        if !line["exchange"].is_null() {
            *expected.entry(format!("64500 {country}")).or_default() += 1;
        }
        let a = &line["attribution"];
        assert_eq!(a["organisation"], "hoster", "{a}");
        assert_eq!(
            (a["rule"].as_str(), a["matched"].as_str()),
            (Some("asn"), Some("AS64500"))
        );
        assert_eq!(a["sector"], "ict-hosting");
    }
    // The census by AS and country, from the stored aggregates, agrees with the scan's lines.
    let out = cli(&[
        "report",
        "--group-by",
        "asn,country",
        "--format",
        "json",
        "--db",
        &db.url,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let counted: BTreeMap<String, usize> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let key = format!(
                "{} {}",
                g["asn"].as_str().unwrap(),
                g["country"].as_str().unwrap()
            );
            (key, g["servers"].as_u64().unwrap() as usize)
        })
        .collect();
    assert!(expected.len() == 2, "{expected:?}");
    assert_eq!(counted, expected);
    std::fs::write(&countries, "127.78.16.0/24 Germany\n").unwrap();
    let out = cli(&[
        "scan",
        net,
        "--ports",
        &port,
        "--allow-loopback",
        "--db",
        &db.url,
        "--country-table",
        &countries.display().to_string(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 1") && err.contains("two-letter"),
        "{err}"
    );
    std::fs::write(&table, "127.78.16.0\t24\tx\n").unwrap();
    let out = cli(&[
        "scan",
        net,
        "--ports",
        &port,
        "--allow-loopback",
        "--db",
        &db.url,
        "--asn-table",
        &table.display().to_string(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 1"), "{err}");
    bed.shutdown().await;
}

#[test]
fn tokens_are_shown_once_listed_without_secret_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let out = surveyor(&[
        "token",
        "create",
        "--role",
        "analyst",
        "--name",
        "cert-desk",
        "--db",
        &db,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("svy_") && token.len() == 68, "{token}");
    let list = String::from_utf8(surveyor(&["token", "list", "--db", &db]).stdout).unwrap();
    assert!(
        list.contains("analyst\tcert-desk") && !list.contains(&token),
        "{list}"
    );
    let out = surveyor(&[
        "token", "create", "--role", "root", "--name", "x", "--db", &db,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
    assert!(surveyor(&["token", "revoke", "1", "--db", &db])
        .status
        .success());
    let again = surveyor(&["token", "revoke", "1", "--db", &db]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active token with id 1"));
}

/// A fleet without hostile personas on `net`, with the test-bed's DNS server when `dns`.
async fn friendly_fleet(net: &str, hosts: usize, seed: u64, dns: bool) -> Testbed {
    Testbed::start_with(
        TestbedConfig {
            hosts,
            seed,
            net: net.parse().unwrap(),
            port: 0,
        },
        surveyor_testbed::FleetOptions {
            hostile_share: 0.0,
            dns_port: dns.then_some(0),
            ..surveyor_testbed::FleetOptions::default()
        },
    )
    .await
    .unwrap()
}

/// The built-in knowledge base as `kb export` writes it, and the same data as it was before
/// Microsoft's newest release (every row of that day left out, with what refers to it): the
/// knowledge base an analyst had before adding the latest update. Read from the data, so that
/// adding an update changes nothing here.
fn older_knowledge_base(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let new = dir.join("new");
    let old = dir.join("old");
    let out = surveyor(&["kb", "export", new.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb = surveyor_kb::KnowledgeBase::builtin();
    let newest: Vec<String> = kb
        .builds
        .iter()
        .filter(|r| r.available_by() == kb.stamp.newest_release)
        .map(|r| r.build.to_string())
        .collect();
    assert!(!newest.is_empty());
    std::fs::create_dir_all(&old).unwrap();
    // The column holding a build in each file; rows naming a dropped build go too.
    let build_column = |file: &str| match file {
        "exchange-builds.csv" => Some("build"),
        "cves.csv" => Some("fixed_build"),
        "exchange-online.csv" => Some("minimum_build"),
        _ => None,
    };
    for file in surveyor_kb::FILES {
        let text = std::fs::read_to_string(new.join(file)).unwrap();
        let Some(column) = build_column(file) else {
            std::fs::write(old.join(file), text).unwrap();
            continue;
        };
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let at = headers.iter().position(|h| h == column).unwrap();
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&headers).unwrap();
        for record in reader.records() {
            let record = record.unwrap();
            if !newest.iter().any(|b| b == &record[at]) {
                writer.write_record(&record).unwrap();
            }
        }
        std::fs::write(old.join(file), writer.into_inner().unwrap()).unwrap();
    }
    let out = surveyor(&["kb", "check", "--kb", old.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    (old, new)
}

fn sources(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    surveyor_kb::FILES
        .iter()
        .map(|f| (*f, std::fs::read_to_string(dir.join(f)).unwrap()))
        .collect()
}

fn load(texts: &[(&'static str, String)]) -> surveyor_kb::KnowledgeBase {
    let sources = surveyor_kb::Sources::from_files(|name| {
        texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_str())
    })
    .unwrap();
    surveyor_kb::KnowledgeBase::load_checked(&sources).unwrap()
}

/// A scan judged with an older knowledge base, judged again with the current one: every
/// verdict is what the current knowledge base says of the stored evidence, nothing else of an
/// observation changes, the census equals a fresh scan's with the current knowledge base, and
/// the original stays readable under its own knowledge base.
async fn rejudge_round_trip(db: &str, net: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = older_knowledge_base(dir.path());
    let (old_texts, new_texts) = (sources(&old_dir), sources(&new_dir));
    let (old_kb, new_kb) = (load(&old_texts), load(&new_texts));
    assert_ne!(old_kb.stamp.digest, new_kb.stamp.digest);
    let bed = friendly_fleet(net, 80, 19, false).await;
    let port = bed.port().to_string();
    let scan = |kb: Option<String>| {
        let mut args: Vec<String> = [
            "scan",
            net,
            "--ports",
            &port,
            "--allow-loopback",
            "--as-of",
            AS_OF,
            "--db",
            db,
            "--target-timeout",
            "3",
            "--network-rate",
            "0",
            "--host-rate",
            "0",
            "--output",
            "/dev/null",
        ]
        .map(String::from)
        .to_vec();
        args.extend(kb.into_iter().flat_map(|k| ["--kb".to_string(), k]));
        surveyor_async(args)
    };
    let out = scan(Some(old_dir.display().to_string())).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let doc = json_of(&cli(&["rejudge", "--scan", "1", "--db", db, "--format", "json"]).await);
    let judgement = &doc["judgement"];
    assert_eq!(judgement["id"], 2, "{doc}");
    assert_eq!(judgement["judged_from"], 1, "{doc}");
    assert_eq!(judgement["projection"], false, "{doc}");
    assert_eq!(
        judgement["kb"]["digest"],
        new_kb.stamp.digest.as_str(),
        "{doc}"
    );
    assert!(doc["changes"]["changed"].as_u64().unwrap() > 0, "{doc}");

    let store = surveyor_store::open(db).await.unwrap();
    let before = store
        .scans
        .observations(surveyor_store::ScanId(1))
        .await
        .unwrap();
    let after = store
        .scans
        .observations(surveyor_store::ScanId(2))
        .await
        .unwrap();
    assert_eq!(before.len(), after.len());
    let as_of = time::Date::parse(
        AS_OF,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .unwrap();
    let mut changed = 0;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            b.exchange,
            old_kb.classify(&b.fingerprint, as_of),
            "{}",
            b.ip
        );
        assert_eq!(
            a.exchange,
            new_kb.classify(&a.fingerprint, as_of),
            "{}",
            a.ip
        );
        let same_but_verdict = surveyor_model::Observation {
            exchange: b.exchange.clone(),
            ..a.clone()
        };
        assert_eq!(&same_but_verdict, b, "only the verdict may change");
        changed += usize::from(a.exchange != b.exchange);
    }
    assert_eq!(doc["changes"]["changed"], changed, "{doc}");

    // Both judgements readable, each named by its knowledge base; the newest is the default.
    let latest = json_of(&cli(&["report", "--db", db, "--format", "json"]).await);
    assert_eq!(latest["scan"]["id"], 2);
    let original = json_of(&cli(&["report", "--db", db, "--scan", "1", "--format", "json"]).await);
    assert_eq!(
        original["scan"]["kb"]["digest"],
        old_kb.stamp.digest.as_str()
    );
    assert_eq!(original["scan"]["superseded_by"], 2);
    let table = cli(&["report", "--db", db]).await;
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains(&new_kb.stamp.digest[..12]) && table.contains("re-judgement of scan 1"),
        "{table}"
    );
    // Judging again with the same knowledge base makes nothing new.
    let again = json_of(&cli(&["rejudge", "--scan", "1", "--db", db, "--format", "json"]).await);
    assert_eq!(again["judgement"]["id"], 2, "{again}");

    // The census of the judgement is the census a fresh scan with the new knowledge base
    // counts, dimension by dimension.
    let out = scan(None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dims = "family,cu,version,support,patch,sector";
    let census = |scan: &'static str| {
        let db = db.to_string();
        async move {
            json_of(
                &cli(&[
                    "report",
                    "--db",
                    &db,
                    "--scan",
                    scan,
                    "--group-by",
                    dims,
                    "--format",
                    "json",
                ])
                .await,
            )["groups"]
                .clone()
        }
    };
    assert_eq!(census("2").await, census("3").await);

    // A projection for another day is stored and named, and the default stays the newest
    // same-day judgement (now the fresh scan 3).
    let projected = json_of(
        &cli(&[
            "rejudge",
            "--scan",
            "2",
            "--as-of",
            "2031-01-01",
            "--db",
            db,
            "--format",
            "json",
        ])
        .await,
    );
    assert_eq!(projected["judgement"]["projection"], true, "{projected}");
    assert_eq!(projected["judgement"]["judged_from"], 1, "{projected}");
    assert_eq!(projected["compared_with"], 2, "{projected}");
    let latest = json_of(&cli(&["report", "--db", db, "--format", "json"]).await);
    assert_eq!(latest["scan"]["id"], 3);
    let trend = json_of(&cli(&["report", "--db", db, "--trend", "--format", "json"]).await);
    let scans: Vec<&Value> = trend
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["scan"])
        .collect();
    assert_eq!(scans, [2, 3]);
    let trend = json_of(
        &cli(&[
            "report",
            "--db",
            db,
            "--trend",
            "--judgements",
            "original",
            "--format",
            "json",
        ])
        .await,
    );
    let scans: Vec<&Value> = trend
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["scan"])
        .collect();
    assert_eq!(scans, [1, 3]);
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejudging_with_newer_knowledge_changes_what_the_data_changed_on_sqlite() {
    let db = testing::sqlite();
    rejudge_round_trip(&db.url, "127.78.40.0/24").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejudging_with_newer_knowledge_changes_what_the_data_changed_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    rejudge_round_trip(&db.url, "127.78.41.0/24").await;
}

#[test]
fn a_broken_knowledge_base_is_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("kb");
    let out = surveyor(&["kb", "export", kb.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Exporting again over the files keeps an analyst's edits unless told otherwise.
    let again = surveyor(&["kb", "export", kb.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let cves = kb.join("cves.csv");
    let mut text = std::fs::read_to_string(&cves).unwrap();
    let line = text.lines().count() + 1;
    text.push_str("CVE-2099-0001,15.1.9999.1,Jan99SU,2099-01-01,unknown,unknown,false,,x\n");
    std::fs::write(&cves, text).unwrap();
    let db = testing::sqlite();
    for args in [
        vec!["kb", "show", "15.1.2507.6"],
        vec!["scan", "127.0.0.1", "--allow-loopback", "--db", &db.url],
        vec!["rejudge", "--db", &db.url],
    ] {
        let mut args = args.clone();
        args.extend(["--kb", kb.to_str().unwrap()]);
        let out = surveyor(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("cves.csv line {line}")),
            "{args:?}: {err}"
        );
    }
    // Nothing was judged, so nothing was stored.
    let out = surveyor(&["report", "--db", &db.url]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no finished scan"));
    // The environment variable names the directory as --kb does; a missing file is named.
    std::fs::remove_file(kb.join("esu.csv")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_surveyor"))
        .args(["kb", "show", "15.1.2507.6"])
        .env("SURVEYOR_KB", &kb)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("esu.csv"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_security_update_added_as_data_is_named_without_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("kb");
    let out = surveyor(&["kb", "export", kb.to_str().unwrap()]);
    assert!(out.status.success());
    // The next update on the CU of the newest build, the day after the newest release.
    let builtin = surveyor_kb::KnowledgeBase::builtin();
    let newest = builtin
        .builds
        .iter()
        .filter(|r| r.family == surveyor_model::Family::Se)
        .max_by_key(|r| r.build)
        .unwrap();
    let next = surveyor_model::Build {
        revision: newest.build.revision.map(|r| r + 2),
        ..newest.build
    };
    let day = builtin.stamp.newest_release + time::Duration::days(1);
    let cu = newest.name.split_whitespace().next().unwrap();
    let row = format!("Exchange Server SE,{cu} Test99SU,{next},{day},test row,\n");
    let builds = kb.join("exchange-builds.csv");
    let text = std::fs::read_to_string(&builds).unwrap() + &row;
    std::fs::write(&builds, text).unwrap();
    let out = surveyor(&[
        "kb",
        "show",
        &next.to_string(),
        "--as-of",
        &day.to_string(),
        "--format",
        "json",
        "--kb",
        kb.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["version_name"],
        format!("Exchange Server SE {cu} Test99SU")
    );
    assert_eq!(v["known_build"]["released"], day.to_string());
    assert_eq!(v["knowledge_base"]["newest_release"], day.to_string());
    assert_eq!(v["patch_level"]["days_behind_cu"], 0);
}

/// Where `benches/dark/testbed.sh` is, when this machine can make a private network
/// namespace with nftables in it (root, `unshare`, `ip`, `nft`). Otherwise `None` after a
/// note on stderr, except under `CI=true`, where it panics: CI must run the dark-space test.
fn dark_space() -> Option<std::path::PathBuf> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/dark/testbed.sh");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let missing: Vec<&str> = ["unshare", "ip", "nft"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    let why = if !root {
        "it needs root".to_string()
    } else if !missing.is_empty() {
        format!(
            "{} missing (Debian: nftables, iproute2, util-linux)",
            missing.join(", ")
        )
    } else {
        return Some(script);
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the dark-space test cannot run: {why} (CI=true: it must run)");
    }
    eprintln!("note: skipping the dark-space test: {why}");
    None
}

/// The count before `label` in the scan's summary line (`…, 0 refused, 981 timed out, …`).
fn summary_count(summary: &str, label: &str) -> u64 {
    let end = summary
        .find(&format!(" {label}"))
        .unwrap_or_else(|| panic!("no {label:?} in {summary:?}"));
    let start = summary[..end].rfind(' ').map_or(0, |i| i + 1);
    summary[start..end].parse().unwrap()
}

/// Dark space and distance (docs/testbed.md): in a private network namespace where a /22 is
/// dark but for 40 test-bed hosts 20 to 100 ms away, some of whose HTTPS connections stall,
/// a connect-mode scan finds every answering host as the truth describes it (every Exchange
/// host with its build), records the stalling ones as io-timeout, and sees every dark address
/// time out: none is refused, as none would be on the Internet.
#[test]
fn a_scan_of_dark_space_finds_every_far_host_and_hears_nothing_from_the_dark() {
    let Some(script) = dark_space() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let db = format!("sqlite:{}", dir.path().join("dark.db").display());
    let net = "127.91.0.0/22";
    let scan = r#"exec "$SURVEYOR" scan "$NET" --ports "$PORT" --allow-loopback --as-of "$AS_OF" \
        --db "$DB" --connect-timeout 1 --target-timeout 10 --concurrency 1024 --rate 0 \
        --network-rate 0 --host-rate 0 --network-backoff 0"#;
    let out = Command::new(script)
        .args([
            "--hosts",
            "40",
            "--seed",
            "2",
            "--net",
            net,
            "--hostile-share",
            "0",
        ])
        .args([
            "--rtt",
            "20-100",
            "--stall-share",
            "0.1",
            "--listeners",
            "per-host",
        ])
        .args(["--", "sh", "-c", scan])
        .env("SURVEYOR", env!("CARGO_BIN_EXE_surveyor"))
        .env("TRUTH", &truth)
        .env("NET", net)
        .env("AS_OF", AS_OF)
        .env("DB", &db)
        .env_remove("DARK")
        .env_remove("SURVEYOR_DB")
        .env_remove("SURVEYOR_KB")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let truth: Vec<TruthHost> = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(truth.len(), 40);
    assert!(truth
        .iter()
        .all(|h| h.rtt_ms.is_some_and(|r| (20..=100).contains(&r))));
    let stalls: std::collections::BTreeSet<&str> =
        truth.iter().filter_map(|h| h.stall.as_deref()).collect();
    assert_eq!(stalls.len(), 3, "the seed stalls in every way: {stalls:?}");
    assert!(
        truth
            .iter()
            .filter(|h| h.exchange.is_some() && h.stall.is_none())
            .count()
            >= 20
    );
    // One line per live host with what the truth expects, Exchange builds included.
    check_lines(&String::from_utf8(out.stdout).unwrap(), &truth);

    let summary = stderr
        .lines()
        .find(|l| l.starts_with("surveyor: scan "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let targets = summary_count(summary, "targets in");
    assert!(targets >= 1022, "{summary}");
    assert_eq!(summary_count(summary, "refused"), 0, "{summary}");
    assert_eq!(summary_count(summary, "unreachable"), 0, "{summary}");
    assert_eq!(
        summary_count(summary, "timed out"),
        targets - truth.len() as u64,
        "every dark address times out: {summary}"
    );
}

/// `zmap … | surveyor scan --targets-file -`: the real binary probes the first line while its
/// stdin is still open; a bad line stops the scan, which drains, names the line, keeps its
/// checkpoint and exits non-zero; the corrected input piped again resumes it without
/// probing the first line twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_stdin_is_probed_as_it_comes_and_a_bad_line_stops_it_resumably() {
    use std::io::{BufRead, Read, Write};
    use std::process::Stdio;

    let bed = Testbed::start(TestbedConfig {
        hosts: 40,
        seed: 3,
        net: "127.78.42.0/24".parse().unwrap(),
        port: 0,
    })
    .await
    .unwrap();
    let live: Vec<&TruthHost> = bed
        .truth()
        .iter()
        .filter(|h| h.expected_status.as_deref().is_none_or(|s| s == "success"))
        .take(3)
        .collect();
    assert_eq!(live.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let checkpoint = dir.path().join("stream.checkpoint");
    let port = bed.port().to_string();
    let scan = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_surveyor"));
        command
            .args(["scan", "--targets-file", "-", "--ports", &port])
            .args(["--allow-loopback", "--as-of", AS_OF, "--db", &db])
            .args(["--target-timeout", "3"])
            .args(extra)
            .env_remove("SURVEYOR_DB")
            .env_remove("SURVEYOR_KB")
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        KillOnDrop(Some(command.spawn().unwrap()))
    };

    let mut child = scan(&["--checkpoint", checkpoint.to_str().unwrap()]);
    let mut stdin = child.get().stdin.take().unwrap();
    let stdout = child.get().stdout.take().unwrap();
    writeln!(stdin, "# zmap output\n{}", live[0].ip).unwrap();
    stdin.flush().unwrap();
    // The first line's observation comes out while stdin is still open: a scanner that read
    // its input whole would wait here for ever (the bound only keeps a failure from hanging).
    let reading = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (line, reader)
    });
    let (first, mut stdout) = tokio::time::timeout(std::time::Duration::from_secs(120), reading)
        .await
        .expect("an observation while stdin is still open")
        .unwrap();
    let first: Value = serde_json::from_str(&first).expect("an observation");
    assert_eq!(first["ip"], live[0].ip.to_string());

    // A bad line, then a good one that must not be probed: the reading stops at the bad one.
    writeln!(stdin, "{}.7\n{}", live[1].ip, live[2].ip).unwrap();
    drop(stdin);
    let out = finish(child).await;
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("stdin line 3: \"{}.7\"", live[1].ip)) && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(rest, "", "nothing after the bad line was probed");
    let kept: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(kept["targets"], "stdin (stream)");
    assert_eq!(
        (&kept["next"], &kept["pending"]),
        (&Value::from("1"), &Value::Array(vec![]))
    );
    let report = surveyor_async(["report", "--db", &db].map(String::from).to_vec()).await;
    assert!(!report.status.success(), "the stopped scan is not a census");

    // The corrected input again: the checkpoint skips the first line's target.
    let mut child = scan(&["--resume", checkpoint.to_str().unwrap()]);
    let mut stdin = child.get().stdin.take().unwrap();
    writeln!(
        stdin,
        "# zmap output\n{}\n{}\n{}",
        live[0].ip, live[1].ip, live[2].ip
    )
    .unwrap();
    drop(stdin);
    let out = finish(child).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ips: Vec<String> = json_lines(&out)
        .iter()
        .map(|l| l["ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    for host in &live[1..] {
        assert!(ips.contains(&host.ip.to_string()), "{ips:?}");
    }
    let out = surveyor_async(
        ["report", "--db", &db, "--format", "json"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let truth: Vec<TruthHost> = live.into_iter().cloned().collect();
    check_census(&report, &truth);
    bed.shutdown().await;
}
