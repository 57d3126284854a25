//! The dashboard end to end: the API serves it over a real store, headless Chromium loads it,
//! and what the page shows must be what the API answers.
//!
//! Chromium is Debian's `chromium` (`/usr/bin/chromium`, or `$CHROMIUM`). Without it the test
//! says so and passes, except under `CI=true`, where it fails. Chromium only ever loads pages
//! from the API on 127.0.0.1, and its flags stop it from calling anywhere else.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use surveyor_api::ApiConfig;
use surveyor_model::observation::Confidence;
use surveyor_model::{
    Attribution, AttributionRule, Evidence, ExchangeVerdict, Family, Fingerprint, Observation,
    Scheme, Sector, Signal, Status, Support,
};
use surveyor_store::{testing, NewScan, Role, ScanId, Store};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let db = testing::sqlite();
    let store = surveyor_store::open(&db.url).await.unwrap();
    let (older, newer) = seed(&store).await;
    let analyst = token(&store, Role::Analyst).await;
    let viewer = token(&store, Role::Viewer).await;
    let server = Server::start(
        store.clone(),
        ApiConfig {
            public_aggregates: true,
            ..ApiConfig::default()
        },
    )
    .await;

    static_assets(&server).await;

    // The unfiltered view: the latest finished scan, the census's own numbers.
    let page = browser.dom(&server.url("/")).await;
    page.assert_ready();
    let census = server.api("/api/v1/census", None).await;
    assert_eq!(census["scan"]["id"], newer.0);
    let census = &census["census"];
    assert_eq!(page.attr_of("scan-info", "data-scan"), newer.0.to_string());
    assert_eq!(page.number("kpi-servers"), census["servers"]);
    assert_eq!(page.number("kpi-supported"), census["supported"]);
    assert_eq!(page.number("kpi-unsupported"), census["unsupported"]);
    assert_eq!(
        page.number("kpi-unsupported-share"),
        census["unsupported_share"]
    );
    assert_eq!(
        census["servers"], 9,
        "the fixture: 9 servers in the newer scan"
    );
    for row in census["families"].as_array().unwrap() {
        let family = row["family"].as_str().unwrap();
        let bar = page.element(&format!("data-family=\"{family}\""));
        assert_eq!(number(&bar, "data-servers"), row["servers"], "{family}");
        assert_eq!(number(&bar, "data-supported"), row["supported"], "{family}");
        assert_eq!(
            number(&bar, "data-unsupported"),
            row["unsupported"],
            "{family}"
        );
    }
    assert_sectors(&page, &server, "").await;
    assert_trend(&page, &server, "").await;
    // Host-level data is never public: the table says a token is needed instead of listing.
    assert!(page.section("hosts-body").rows("data-ip").is_empty());
    assert_eq!(page.attr_of("hosts-note", "data-state"), "unavailable");
    assert!(
        page.text_of("hosts-note").contains("token"),
        "{}",
        page.text_of("hosts-note")
    );
    assert!(page.has_attr("host-detail", "hidden"));

    // A filtered view from the fragment shows the filtered numbers, in every chart.
    let page = browser
        .dom(&server.url("/#family=2016&support=unsupported"))
        .await;
    page.assert_ready();
    let query = "family=2016&support=unsupported";
    assert_overview(&page, &server, query).await;
    assert_eq!(page.number("kpi-servers"), 3, "the fixture's 2016 servers");
    assert_eq!(page.number("kpi-supported"), 0);
    assert_eq!(page.rows("data-family").len(), 1, "one family bar");
    assert_sectors(&page, &server, query).await;
    assert_trend(&page, &server, query).await;
    assert!(page
        .text_of("filter-summary")
        .contains("family 2016, unsupported"));

    // Another scan and a sector.
    let fragment = format!("sector=hospital&scan={}", older.0);
    let page = browser.dom(&server.url(&format!("/#{fragment}"))).await;
    page.assert_ready();
    assert_eq!(page.attr_of("scan-info", "data-scan"), older.0.to_string());
    assert_overview(&page, &server, &fragment).await;
    assert_eq!(
        page.number("kpi-servers"),
        1,
        "one hospital server in the older scan"
    );
    assert_sectors(&page, &server, &fragment).await;

    // A token in the fragment opens host-level data: the detail panel of one address.
    let page = browser
        .dom(&server.url(&format!("/#token={analyst}&host=192.0.2.11")))
        .await;
    page.assert_ready();
    assert_eq!(page.attr_of("body", "data-token"), "set");
    assert_eq!(page.attr_of("host-detail", "data-ip"), "192.0.2.11");
    let detail = server.api("/api/v1/hosts/192.0.2.11", Some(&analyst)).await;
    let expected: Vec<String> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].to_string())
        .collect();
    assert_eq!(expected.len(), 2, "seen in both scans");
    let table = page.section("host-history");
    assert_eq!(table.rows("data-scan"), expected);
    let evidence = page.section("host-evidence");
    assert_eq!(evidence.rows("data-signal"), vec!["owa-version-header"]);
    // The token never ends up in the page.
    assert!(!page.html.contains(&analyst));

    // With an analyst token the hosts table lists the API's hosts, filtered like the rest.
    let page = browser
        .dom(&server.url(&format!("/#token={analyst}&family=2016")))
        .await;
    page.assert_ready();
    let listed = server
        .api("/api/v1/hosts?family=2016", Some(&analyst))
        .await;
    let expected: Vec<String> = listed["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 3, "the fixture's 2016 servers");
    assert_eq!(page.section("hosts-body").rows("data-ip"), expected);
    assert_eq!(page.attr_of("hosts-note", "data-state"), "listed");
    assert_eq!(
        page.has_attr("hosts-more", "hidden"),
        listed["next_cursor"].is_null()
    );

    // A closed server: without a token the page says so plainly; a viewer sees aggregates
    // but is told that host detail needs an analyst.
    let closed = Server::start(store.clone(), ApiConfig::default()).await;
    let page = browser.dom(&closed.url("/")).await;
    assert_eq!(page.attr_of("body", "data-state"), "error");
    assert_eq!(page.attr_of("body", "data-error"), "401");
    assert!(!page.has_attr("message", "hidden"));
    assert!(
        page.text_of("message").contains("needs an API token"),
        "{}",
        page.text_of("message")
    );
    let page = browser
        .dom(&closed.url(&format!("/#token={viewer}&host=192.0.2.11")))
        .await;
    page.assert_ready();
    assert_overview(&page, &closed, "").await;
    let note = page.section("host-detail-body").html;
    assert!(note.contains("analyst or admin"), "{note}");

    // Pictures of the analyst's view and of a host's detail, kept for people to look at.
    for (name, fragment) in [
        ("dashboard.png", format!("token={analyst}")),
        (
            "dashboard-host.png",
            format!("token={analyst}&host=192.0.2.11"),
        ),
    ] {
        let shot = artefacts_dir().join(name);
        browser
            .screenshot(&server.url(&format!("/#{fragment}")), &shot)
            .await;
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is no PNG",
            shot.display()
        );
        eprintln!("dashboard screenshot: {}", shot.display());
    }

    // And on paper: the print stylesheet drops the controls and keeps the charts' fills.
    let pdf = artefacts_dir().join("dashboard.pdf");
    browser
        .pdf(&server.url(&format!("/#token={analyst}")), &pdf)
        .await;
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));

    closed.stop().await;
    server.stop().await;
}

/// The page, script and stylesheet: right types, a strict policy, nothing from elsewhere.
async fn static_assets(server: &Server) {
    for (path, content_type) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let response = server.get(path, None).await;
        assert_eq!(response.status, 200, "{path}");
        assert!(
            response.header("content-type").starts_with(content_type),
            "{path}: {}",
            response.header("content-type")
        );
        let policy = response.header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(response.header("x-content-type-options"), "nosniff");
        let body = String::from_utf8(response.body).unwrap();
        // No other origin: the only absolute URL is the SVG namespace, which is never fetched.
        let foreign = body
            .replace("http://www.w3.org/2000/svg", "")
            .contains("://");
        assert!(!foreign, "{path} names another origin");
    }
    let page = String::from_utf8(server.get("/", None).await.body).unwrap();
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script src=").count(),
        "no inline script"
    );
}

/// The key numbers equal `/statistics` under the same filters.
async fn assert_overview(page: &Dom, server: &Server, query: &str) {
    let token = page.token.as_deref();
    let sep = if query.is_empty() { "" } else { "&" };
    let total = server
        .api(&format!("/api/v1/statistics?{query}"), token)
        .await;
    let by_support = server
        .api(
            &format!("/api/v1/statistics?group_by=support{sep}{query}"),
            token,
        )
        .await;
    let count = |support: &str| -> u64 {
        by_support["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["support"] == support)
            .map(|g| g["servers"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(page.number("kpi-servers"), total["groups"][0]["servers"]);
    assert_eq!(page.number("kpi-supported"), count("supported"));
    assert_eq!(page.number("kpi-unsupported"), count("unsupported"));
    assert_eq!(
        page.attr_of("scan-info", "data-scan"),
        total["scan"]["id"].to_string()
    );
}

/// One bar per sector the API counts, with its counts.
async fn assert_sectors(page: &Dom, server: &Server, query: &str) {
    let sep = if query.is_empty() { "" } else { "&" };
    let answer = server
        .api(
            &format!("/api/v1/statistics?group_by=sector,support{sep}{query}"),
            page.token.as_deref(),
        )
        .await;
    let groups = answer["groups"].as_array().unwrap();
    let mut sectors: Vec<String> = groups
        .iter()
        .map(|g| g["sector"].as_str().unwrap().to_string())
        .collect();
    sectors.dedup();
    let mut shown = page.section("chart-sector").rows("data-sector");
    shown.sort();
    sectors.sort();
    assert_eq!(shown, sectors);
    for sector in sectors {
        let bar = page.element(&format!("data-sector=\"{sector}\""));
        for support in ["supported", "unsupported"] {
            let servers: u64 = groups
                .iter()
                .filter(|g| g["sector"] == sector.as_str() && g["support"] == support)
                .map(|g| g["servers"].as_u64().unwrap())
                .sum();
            assert_eq!(
                number(&bar, &format!("data-{support}")),
                servers,
                "{sector} {support}"
            );
        }
    }
}

/// One column per finished scan, with the API's trend counts.
async fn assert_trend(page: &Dom, server: &Server, query: &str) {
    let sep = if query.is_empty() { "" } else { "&" };
    let points = server
        .api(
            &format!("/api/v1/trends?group_by=support{sep}{query}"),
            page.token.as_deref(),
        )
        .await;
    let points = points.as_array().unwrap();
    let mut scans: Vec<String> = points.iter().map(|p| p["scan"].to_string()).collect();
    scans.dedup();
    let chart = page.section("chart-trend");
    assert_eq!(chart.rows("data-scan"), scans);
    for scan in scans {
        let column = chart.element(&format!("data-scan=\"{scan}\""));
        let id: Value = serde_json::from_str(&scan).unwrap();
        for support in ["supported", "unsupported"] {
            let servers: u64 = points
                .iter()
                .filter(|p| p["scan"] == id && p["support"] == support)
                .map(|p| p["servers"].as_u64().unwrap())
                .sum();
            assert_eq!(number(&column, &format!("data-{support}")), servers);
        }
    }
}

// ---- the fixture ------------------------------------------------------------------------

/// Two finished scans half a year apart: one server upgraded to SE, several new ones, four
/// sectors and an unattributed server, and an address that is no Exchange server.
async fn seed(store: &Store) -> (ScanId, ScanId) {
    use Family::*;
    use Support::*;
    let h = Some(Sector::Hospital);
    let s = Some(Sector::School);
    let m = Some(Sector::Municipality);
    let older = [
        ("192.0.2.11", Some((E2016, "15.1.2507.61", Unsupported)), h),
        ("192.0.2.12", Some((E2019, "15.2.1748.10", Unsupported)), s),
        ("192.0.2.13", Some((Se, "15.2.2562.17", Supported)), m),
        (
            "192.0.2.14",
            Some((E2013, "15.0.1497.48", Unsupported)),
            None,
        ),
        ("192.0.2.15", None, None),
    ];
    let newer = [
        ("192.0.2.11", Some((E2016, "15.1.2507.61", Unsupported)), h),
        ("192.0.2.12", Some((Se, "15.2.2562.17", Supported)), s),
        ("192.0.2.13", Some((Se, "15.2.2562.17", Supported)), m),
        (
            "192.0.2.14",
            Some((E2013, "15.0.1497.48", Unsupported)),
            None,
        ),
        ("192.0.2.15", None, None),
        ("192.0.2.16", Some((E2016, "15.1.2507.39", Unsupported)), h),
        ("192.0.2.17", Some((E2019, "15.2.1544.36", Unsupported)), m),
        ("192.0.2.18", Some((E2016, "15.1.2507.61", Unsupported)), s),
        ("192.0.2.19", Some((Se, "15.2.2562.17", Supported)), h),
        ("192.0.2.20", Some((E2010, "14.3.513.0", Unsupported)), m),
    ];
    let older = scan(
        store,
        datetime!(2026-05-01 06:00 UTC),
        date!(2026 - 05 - 01),
        &older,
    )
    .await;
    let newer = scan(
        store,
        datetime!(2026-11-23 06:00 UTC),
        date!(2026 - 11 - 23),
        &newer,
    )
    .await;
    (older, newer)
}

type Seen = (
    &'static str,
    Option<(Family, &'static str, Support)>,
    Option<Sector>,
);

async fn scan(store: &Store, at: OffsetDateTime, as_of: Date, servers: &[Seen]) -> ScanId {
    let id = store
        .scans
        .begin_scan(&NewScan {
            started_at: at,
            as_of,
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: None,
        })
        .await
        .unwrap();
    let observations: Vec<Observation> = servers
        .iter()
        .map(|&(ip, verdict, sector)| observation(ip, at, verdict, sector))
        .collect();
    store.scans.record(id, &observations).await.unwrap();
    store
        .scans
        .finish_scan(id, at + time::Duration::minutes(5))
        .await
        .unwrap();
    id
}

fn observation(
    ip: &str,
    at: OffsetDateTime,
    verdict: Option<(Family, &str, Support)>,
    sector: Option<Sector>,
) -> Observation {
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
        observed_at: at,
        status: Status::Success,
        error: None,
        tls: None,
        http_server: Some("Microsoft-IIS/10.0".into()),
        fingerprint: Fingerprint::default(),
        exchange,
        attribution: sector.map(|sector| Attribution {
            organisation: format!("{sector}-{}", ip.rsplit('.').next().unwrap()),
            sector,
            rule: AttributionRule::Cidr,
            confidence: Confidence::High,
            matched: format!("{ip}/32"),
        }),
        asn: None,
        country: None,
    }
}

/// Makes a token of `role` and returns it.
async fn token(store: &Store, role: Role) -> String {
    let token = format!("svy_dashboard_{}", role.as_str());
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

// ---- the API over loopback ------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> String {
        self.head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }
}

impl Server {
    async fn start(store: Store, config: ApiConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(surveyor_api::serve(
            listener,
            store,
            config,
            surveyor_api::EdgeConfig::default(),
            surveyor_api::Metrics::new(),
            async {
                let _ = stopped.await;
            },
        ));
        Server { addr, stop, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One HTTP/1.1 request on its own connection, read to the end.
    async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
            .await
            .expect("the API answers within 30 s")
            .unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response head");
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let response = Response {
            status,
            body: raw[split + 4..].to_vec(),
            head,
        };
        assert!(
            !response.header("transfer-encoding").contains("chunked"),
            "this little client reads whole bodies only"
        );
        response
    }

    /// A JSON answer that must be 200.
    async fn api(&self, path: &str, token: Option<&str>) -> Value {
        let response = self.get(path, token).await;
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(response.status, 200, "{path}: {body}");
        body
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

// ---- Chromium ---------------------------------------------------------------------------

struct Browser {
    binary: PathBuf,
}

impl Browser {
    fn find() -> Option<Browser> {
        let binary = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        if binary.exists() {
            return Some(Browser { binary });
        }
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{} is missing: CI must run the dashboard test (apt-get install chromium)",
                binary.display()
            );
        }
        eprintln!(
            "skipping the dashboard test: no Chromium at {} (apt-get install chromium, or set \
             CHROMIUM)",
            binary.display()
        );
        None
    }

    /// The page's DOM once its scripts ran and its requests were answered.
    async fn dom(&self, url: &str) -> Dom {
        let token = url
            .split_once("token=")
            .map(|(_, rest)| rest.split('&').next().unwrap().to_string());
        let (out, log) = self.run(url, &["--dump-dom"]).await;
        // The page's console, as Chromium logs it: a policy violation or an uncaught
        // exception is a bug even when the numbers came out right.
        let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
        for line in &console {
            assert!(
                !line.contains("Content Security Policy") && !line.contains("Uncaught"),
                "{url}: {line}"
            );
        }
        Dom {
            html: String::from_utf8(out).unwrap(),
            token,
        }
    }

    /// The page as printed (A4 by default), through the print stylesheet.
    async fn pdf(&self, url: &str, path: &Path) {
        let _ = std::fs::remove_file(path);
        let arg = format!("--print-to-pdf={}", path.display());
        self.run(url, &[&arg, "--no-pdf-header-footer"]).await;
    }

    async fn screenshot(&self, url: &str, path: &Path) {
        let _ = std::fs::remove_file(path);
        let arg = format!("--screenshot={}", path.display());
        self.run(url, &[&arg, "--window-size=1280,2400", "--hide-scrollbars"])
            .await;
    }
}

/// The flags of every Chromium run: headless, a fresh profile, nothing but loopback.
fn chromium_flags(profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        // Nothing but the page: no first-run, sync, updates, metrics upload or
        // component downloads, and no name resolves, so nothing leaves loopback.
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-breakpad",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=MediaRouter,OptimizationHints,Translate,\
         AutofillServerCommunication,CertificateTransparencyComponentUpdater,\
         NetworkTimeServiceQuerying",
        "--metrics-recording-only",
        "--no-pings",
        "--password-store=basic",
        // The page's console goes to stderr, where `dom` reads it.
        "--enable-logging=stderr",
        "--v=0",
        // Even IP literals go through the rules: loopback stays reachable, nothing else.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// A new, empty Chromium profile directory.
fn fresh_profile() -> PathBuf {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let profile = std::env::temp_dir().join(format!(
        "surveyor-dashboard-chromium-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&profile).unwrap();
    profile
}

impl Browser {
    /// Runs Chromium on `url` in a fresh profile and returns its standard output and log.
    async fn run(&self, url: &str, extra: &[&str]) -> (Vec<u8>, String) {
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "loopback pages only: {url}"
        );
        let profile = fresh_profile();
        let mut args = chromium_flags(&profile);
        // Virtual time waits for pending requests, so the DOM is dumped once the page's
        // API answers arrived and were drawn.
        args.push("--virtual-time-budget=15000".into());
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(url.to_string());
        let binary = self.binary.clone();
        let dir = profile.clone();
        let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
            let stdout_path = dir.join("stdout");
            let stderr_path = dir.join("stderr");
            let mut child = Command::new(&binary)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_path).unwrap())
                .stderr(std::fs::File::create(&stderr_path).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
            // A hung browser must not hang the suite.
            let deadline = Instant::now() + Duration::from_secs(120);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("Chromium did not finish within 120 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            (
                status,
                std::fs::read(&stdout_path).unwrap(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default(),
            )
        })
        .await
        .unwrap();
        let _ = std::fs::remove_dir_all(&profile);
        assert!(status.success(), "Chromium failed ({status}): {stderr}");
        (stdout, stderr)
    }
}

/// Where test artefacts go: `$CARGO_TARGET_DIR/test-artifacts`, or the workspace's
/// `target/test-artifacts`.
fn artefacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- reading the dumped DOM -----------------------------------------------------------

/// Chromium's serialisation of the page, read by ids and data attributes the page keeps
/// stable for this purpose.
struct Dom {
    html: String,
    /// The token the page was given, to ask the API the same question.
    token: Option<String>,
}

impl Dom {
    fn assert_ready(&self) {
        assert_eq!(
            self.attr_of("body", "data-state"),
            "ready",
            "the page did not finish loading; message: {:?}",
            self.text_of("message")
        );
    }

    /// The opening tag of the first element whose tag contains `needle`.
    fn element(&self, needle: &str) -> String {
        opening_tags(&self.html, needle)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element with {needle}"))
    }

    fn tag_of(&self, id: &str) -> String {
        if id == "body" {
            return self.element("<body");
        }
        self.element(&format!(" id=\"{id}\""))
    }

    fn has_attr(&self, id: &str, name: &str) -> bool {
        attribute(&self.tag_of(id), name).is_some()
    }

    /// An attribute of the element with `id` ("" when absent).
    fn attr_of(&self, id: &str, name: &str) -> String {
        attribute(&self.tag_of(id), name).unwrap_or_default()
    }

    /// The `data-value` of a key number, parsed as JSON so it compares with the API's.
    fn number(&self, id: &str) -> Value {
        let text = self.attr_of(id, "data-value");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{id} has no number: {text:?}"))
    }

    /// The text directly inside the element with `id`.
    fn text_of(&self, id: &str) -> String {
        let tag = self.tag_of(id);
        let start = self.html.find(&tag).unwrap() + tag.len();
        let end = self.html[start..]
            .find('<')
            .map_or(self.html.len(), |i| start + i);
        unescape(&self.html[start..end])
    }

    /// The element with `id` and everything in it (up to its closing tag of the same name,
    /// good enough for this page's elements, which do not nest their own kind).
    fn section(&self, id: &str) -> Dom {
        let tag = self.tag_of(id);
        let start = self.html.find(&tag).unwrap();
        let name: String = tag[1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let close = format!("</{name}>");
        let end = self.html[start..]
            .find(&close)
            .map_or(self.html.len(), |i| start + i + close.len());
        Dom {
            html: self.html[start..end].to_string(),
            token: self.token.clone(),
        }
    }

    /// The values of attribute `name` on every element that has it, in document order.
    fn rows(&self, name: &str) -> Vec<String> {
        opening_tags(&self.html, &format!(" {name}=\""))
            .iter()
            .filter_map(|tag| attribute(tag, name))
            .collect()
    }
}

fn opening_tags(html: &str, needle: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut from = 0;
    while let Some(i) = html[from..].find(needle) {
        let at = from + i;
        let start = html[..at].rfind('<').unwrap_or(0);
        let end = html[at..].find('>').map_or(html.len(), |j| at + j + 1);
        tags.push(html[start..end].to_string());
        from = end;
    }
    tags
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    // Chromium serialises every attribute with a quoted value, `hidden` as `hidden=""`.
    let rest = &tag[tag.find(&key)? + key.len()..];
    Some(unescape(&rest[..rest.find('"')?]))
}

fn number(tag: &str, name: &str) -> Value {
    let text = attribute(tag, name).unwrap_or_else(|| panic!("no {name} in {tag}"));
    serde_json::from_str(&text).unwrap()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

// ---- driving the page: clicks and choices through the DevTools protocol ------------------

/// The dashboard as an analyst uses it: choosing a filter, paging with "Load more hosts",
/// clearing the filters and opening a host, with real mouse clicks in one page that stays
/// open, and the numbers checked against the API after each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_filters_and_paging_by_clicking() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let db = testing::sqlite();
    let store = surveyor_store::open(&db.url).await.unwrap();
    // More servers than one page of the hosts table (100).
    const SERVERS: usize = 250;
    let at = datetime!(2026-11-23 06:00 UTC);
    let scan = store
        .scans
        .begin_scan(&NewScan {
            started_at: at,
            as_of: date!(2026 - 11 - 23),
            targets: "198.18.0.0/23".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: None,
        })
        .await
        .unwrap();
    let observations: Vec<Observation> = (0..SERVERS)
        .map(|i| {
            let verdict = if i % 3 == 0 {
                (Family::Se, "15.2.2562.17", Support::Supported)
            } else {
                (Family::E2016, "15.1.2507.61", Support::Unsupported)
            };
            let sector = if i % 2 == 0 {
                Sector::Hospital
            } else {
                Sector::School
            };
            let ip = format!("198.18.{}.{}", i / 200, i % 200 + 1);
            observation(&ip, at, Some(verdict), Some(sector))
        })
        .collect();
    store.scans.record(scan, &observations).await.unwrap();
    store
        .scans
        .finish_scan(scan, at + time::Duration::minutes(5))
        .await
        .unwrap();
    let analyst = token(&store, Role::Analyst).await;
    let server = Server::start(store.clone(), ApiConfig::default()).await;

    // What the API says, to hold the page against.
    let all_hosts = hosts_in_order(&server, "", &analyst).await;
    assert_eq!(all_hosts.len(), SERVERS);
    let hospital_hosts = hosts_in_order(&server, "sector=hospital", &analyst).await;
    let hospitals = server
        .api("/api/v1/statistics?sector=hospital", Some(&analyst))
        .await["groups"][0]["servers"]
        .clone();
    assert_eq!(hospitals, (SERVERS / 2) as u64);

    let url = server.url(&format!("/#token={analyst}"));
    let shot = artefacts_dir().join("dashboard-clicked.png");
    let seen = {
        let binary = browser.binary.clone();
        tokio::task::spawn_blocking(move || drive(&binary, &url, &shot))
            .await
            .unwrap()
    };

    assert_eq!(seen.first_page, all_hosts[..100].to_vec());
    assert_eq!(seen.after_clicks, all_hosts);
    assert!(
        seen.more_hidden_at_end,
        "no more to load after the last page"
    );
    assert_eq!(seen.filtered_servers, hospitals);
    assert!(
        seen.filtered_hash.contains("sector=hospital"),
        "{}",
        seen.filtered_hash
    );
    assert_eq!(seen.filtered_page, hospital_hosts[..100].to_vec());
    assert_eq!(seen.cleared_servers, SERVERS as u64);
    assert_eq!(seen.detail_ip, all_hosts[0]);
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    server.stop().await;
}

/// Every host of the latest scan in the API's order, page by page.
async fn hosts_in_order(server: &Server, query: &str, token: &str) -> Vec<String> {
    let mut ips = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = server
            .api(
                &format!("/api/v1/hosts?limit=1000&{query}{cursor}"),
                Some(token),
            )
            .await;
        for h in page["hosts"].as_array().unwrap() {
            ips.push(h["ip"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ips,
        }
    }
}

/// What the page showed along the way.
struct Clicked {
    first_page: Vec<String>,
    after_clicks: Vec<String>,
    more_hidden_at_end: bool,
    filtered_hash: String,
    filtered_servers: Value,
    filtered_page: Vec<String>,
    cleared_servers: u64,
    detail_ip: String,
    /// Uncaught exceptions and policy violations the page reported.
    problems: Vec<String>,
}

const HOST_IPS: &str = "[...document.querySelectorAll('#hosts-body tr')].map((r) => r.dataset.ip)";

fn drive(binary: &Path, url: &str, shot: &Path) -> Clicked {
    assert!(url.starts_with("http://127.0.0.1:"), "loopback pages only");
    let mut page = Cdp::open(binary, url);
    let ready = "document.body.dataset.state === 'ready' \
                 && document.getElementById('hosts-note').dataset.state === 'listed'";
    page.wait_for(ready);
    let first_page = page.strings(HOST_IPS);

    // "Load more hosts" until it hides.
    while !page
        .eval("document.getElementById('hosts-more').hidden")
        .as_bool()
        .unwrap()
    {
        let before = page.eval("document.querySelectorAll('#hosts-body tr').length");
        page.click("#hosts-more");
        page.wait_for(&format!(
            "document.querySelectorAll('#hosts-body tr').length > {before}"
        ));
    }
    let after_clicks = page.strings(HOST_IPS);
    let more_hidden_at_end = page.eval("document.getElementById('hosts-more').hidden") == true;

    // A sector chosen in the filter bar, as a choice in a <select> is made (its value set
    // and its change event fired, as Playwright's selectOption does).
    page.eval(
        "(() => { const s = document.getElementById('f-sector'); s.value = 'hospital'; \
         s.dispatchEvent(new Event('change', { bubbles: true })); return true; })()",
    );
    page.wait_for(&format!(
        "location.hash.includes('sector=hospital') && {ready} \
         && document.getElementById('kpi-servers').dataset.value !== '' \
         && document.querySelectorAll('#hosts-body tr').length === 100"
    ));
    let filtered_hash = page.eval("location.hash").as_str().unwrap().to_string();
    let filtered_servers =
        page.eval("Number(document.getElementById('kpi-servers').dataset.value)");
    let filtered_page = page.strings(HOST_IPS);

    // "Clear filters" by a click: every server again.
    page.click("#f-reset");
    page.wait_for(&format!(
        "!location.hash.includes('sector=') && {ready} \
         && document.getElementById('f-sector').value === ''"
    ));
    let cleared_servers = page
        .eval("Number(document.getElementById('kpi-servers').dataset.value)")
        .as_u64()
        .unwrap();

    // The first address in the table, clicked: its detail panel opens.
    page.click("#hosts-body tr:first-child a");
    page.wait_for(
        "!document.getElementById('host-detail').hidden \
         && document.querySelectorAll('#host-history tr[data-scan]').length > 0",
    );
    let detail_ip = page
        .eval("document.getElementById('host-detail').dataset.ip")
        .as_str()
        .unwrap()
        .to_string();
    page.screenshot(shot);
    let problems = page.close();
    Clicked {
        first_page,
        after_clicks,
        more_hidden_at_end,
        filtered_hash,
        filtered_servers,
        filtered_page,
        cleared_servers,
        detail_ip,
        problems,
    }
}

/// One Chromium page driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// commands in on fd 3, answers and events out on fd 4, each message ended by a NUL byte).
struct Cdp {
    child: std::process::Child,
    to_browser: std::process::ChildStdin,
    from_browser: std::sync::mpsc::Receiver<Value>,
    session: String,
    next_id: u64,
    problems: Vec<String>,
    profile: PathBuf,
}

/// How long one step may take before the test gives up on a hung page (not a speed check).
const STEP: Duration = Duration::from_secs(30);

impl Cdp {
    fn open(binary: &Path, url: &str) -> Cdp {
        let profile = fresh_profile();
        let mut args = chromium_flags(&profile);
        args.extend([
            "--remote-debugging-pipe".into(),
            "--window-size=1280,1600".into(),
        ]);
        // The shell hands Chromium our pipes as fds 3 and 4, without unsafe code here.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 </dev/null >/dev/null")
            .arg(binary)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(profile.join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
        let to_browser = child.stdin.take().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, from_browser) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut message = Vec::new();
            while out.read_until(0, &mut message).unwrap_or(0) > 0 {
                message.pop_if(|b| *b == 0);
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        let mut cdp = Cdp {
            child,
            to_browser,
            from_browser,
            session: String::new(),
            next_id: 0,
            problems: Vec::new(),
            profile,
        };
        let target = cdp.browser_call(
            "Target.createTarget",
            serde_json::json!({ "url": "about:blank" }),
        );
        let attached = cdp.browser_call(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target["targetId"], "flatten": true }),
        );
        cdp.session = attached["sessionId"].as_str().unwrap().to_string();
        cdp.call("Runtime.enable", serde_json::json!({}));
        cdp.call("Log.enable", serde_json::json!({}));
        cdp.call("Page.enable", serde_json::json!({}));
        cdp.call("Page.navigate", serde_json::json!({ "url": url }));
        cdp
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(session))
    }

    fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        use std::io::Write;
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = Value::from(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        self.to_browser.flush().unwrap();
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} within {STEP:?}"));
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
            self.note_event(&reply);
        }
    }

    /// Keeps what the page reports that is a bug even when the numbers come out right.
    fn note_event(&mut self, event: &Value) {
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self
                .problems
                .push(event["params"]["exceptionDetails"].to_string()),
            Some("Log.entryAdded") => {
                let text = event["params"]["entry"]["text"].as_str().unwrap_or("");
                if text.contains("Content Security Policy") {
                    self.problems.push(text.to_string());
                }
            }
            _ => {}
        }
    }

    /// The value of a JavaScript expression in the page (awaited if it is a promise).
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({
                "expression": expression,
                "returnByValue": true,
                "awaitPromise": true,
            }),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    fn strings(&mut self, expression: &str) -> Vec<String> {
        self.eval(expression)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until `condition` holds in the page. While the page is still loading the
    /// condition may throw (no `document.body` yet): that counts as not yet.
    fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + STEP;
        let probe = format!(
            "(() => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }})()"
        );
        while self.eval(&probe) != true {
            assert!(
                Instant::now() < deadline,
                "the page never got to: {condition}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A left click in the middle of the element, as the mouse gives it.
    fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); \
             if (!e) return null; e.scrollIntoView({{ block: 'center' }}); \
             const r = e.getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        let (x, y) = (at[0].as_f64(), at[1].as_f64());
        let (Some(x), Some(y)) = (x, y) else {
            panic!("nothing to click at {selector}");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                serde_json::json!({
                    "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1,
                }),
            );
        }
    }

    fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let shot = self.call(
            "Page.captureScreenshot",
            serde_json::json!({ "format": "png" }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        std::fs::write(path, png).unwrap();
        eprintln!("dashboard screenshot: {}", path.display());
    }

    /// Closes the browser; the problems the page reported.
    fn close(mut self) -> Vec<String> {
        let _ = self.browser_call("Browser.close", serde_json::json!({}));
        let deadline = Instant::now() + STEP;
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(event) = self.from_browser.try_recv() {
            self.note_event(&event);
        }
        let _ = std::fs::remove_dir_all(&self.profile);
        std::mem::take(&mut self.problems)
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        // A failed step must not leave a browser behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
