//! The engine against the test-bed and against servers that misbehave, all on loopback.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use surveyor_model::{Observation, Signal, Status};
use surveyor_scan::targets::Entry;
use surveyor_scan::{Exclusions, Order, ProbeConfig, ScanConfig, ScanStats, TargetSpace};
use surveyor_testbed::{Testbed, TestbedConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn scan<P: Into<surveyor_scan::PortSpec> + Copy>(
    nets: &[IpNet],
    ports: &[P],
    config: ScanConfig,
) -> (ScanStats, Vec<Observation>) {
    let (tx, mut rx) = mpsc::channel(16);
    let exclusions = Exclusions::builtin(true);
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some((_, o)) = rx.recv().await {
            all.push(o);
        }
        all
    });
    let space = TargetSpace::new(nets.iter().map(|n| Entry::Net(*n)).collect(), ports);
    let targets = space.walk(Order::default(), 0);
    let stats =
        surveyor_scan::run(&config, targets, &exclusions, tx, CancellationToken::new()).await;
    (stats, collect.await.unwrap())
}

fn quick() -> ScanConfig {
    ScanConfig {
        probe: ProbeConfig {
            connect_timeout: Duration::from_millis(500),
            target_timeout: Duration::from_millis(1500),
            ..ProbeConfig::default()
        },
        concurrency: 32,
        rate: None,
        network_rate: None,
        host_rate: None,
        ..ScanConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_tls_and_exchange_signals_from_the_testbed() {
    let bed = Testbed::start(TestbedConfig {
        hosts: 120,
        seed: 11,
        net: "127.79.1.0/24".parse().unwrap(),
        port: 0,
    })
    .await
    .unwrap();
    let (stats, observations) = scan(&[IpNet::V4(bed.net())], &[bed.port()], quick()).await;
    assert_eq!(stats.targets, 256);
    assert_eq!(stats.connected, 120);
    assert_eq!(stats.refused, 136);
    assert_eq!(stats.stopped, None);
    let by_ip: BTreeMap<IpAddr, &Observation> = observations.iter().map(|o| (o.ip, o)).collect();
    for host in bed.truth() {
        let obs = by_ip[&host.ip];
        let expected = host.expected_status.as_deref().unwrap_or("success");
        assert_eq!(
            obs.status.as_str(),
            expected,
            "{} ({})",
            host.ip,
            host.persona
        );
        if obs.status == Status::TlsError {
            continue;
        }
        let tls = obs.tls.as_ref().expect("TLS recorded");
        assert_eq!(tls.cert_sha256.as_ref().map(String::len), Some(64));
        assert!(
            tls.names.iter().all(|n| n.ends_with(&host.domain)),
            "{:?}",
            tls.names
        );
        assert!(tls.version.starts_with("TLSv1."));
        assert!(tls.not_after > tls.not_before);
        if obs.status != Status::Success {
            continue;
        }
        let fp = &obs.fingerprint;
        let builds = |signal| fp.of(signal).map(|e| e.value.clone()).collect::<Vec<_>>();
        match (&host.exchange, host.persona.as_str()) {
            // Fronts and copies have their own test below.
            (_, persona) if HIDDEN_OR_COPIED.contains(&persona) => {}
            (Some(t), _) => {
                let header = builds(Signal::OwaVersionHeader);
                if t.owa_version_header {
                    assert!(header.contains(&t.build), "{header:?} vs {}", t.build);
                } else {
                    assert!(header.is_empty());
                }
                let path = builds(Signal::OwaResourcePath);
                assert!(
                    path.len() == 1 && t.build.starts_with(&path[0]),
                    "{path:?} vs {}",
                    t.build
                );
                assert!(fp.of(Signal::LogonPageMarker).count() >= 2);
                let manifest = builds(Signal::ExportToolManifest);
                // The manifest is only asked for when nothing else gave the exact build.
                if t.exporttool_manifest && !t.owa_version_header && path[0] != t.build {
                    assert_eq!(manifest, std::slice::from_ref(&t.build));
                }
                if t.owa_version_header || !t.exporttool_manifest {
                    assert!(manifest.is_empty(), "no manifest build here: {manifest:?}");
                }
            }
            (None, "exchange-online-like") => {
                assert!(fp.of(Signal::ExchangeOnline).count() > 0, "{fp:?}");
            }
            (None, persona) => {
                // Look-alikes may show logon-page markers, never a build of their own.
                for signal in [
                    Signal::OwaVersionHeader,
                    Signal::OwaResourcePath,
                    Signal::ExportToolManifest,
                ] {
                    assert!(
                        builds(signal).is_empty(),
                        "{} ({persona}) showed {fp:?}",
                        host.ip
                    );
                }
            }
        }
    }
    bed.shutdown().await;
}

/// Personas that hide Exchange behind a front or copy its logon page.
const HIDDEN_OR_COPIED: [&str; 5] = [
    "exchange-behind-portal",
    "exchange-owa-blocked",
    "exchange-stripped-headers",
    "owa-phishing-copy",
    "owa-honeypot",
];

/// The scanner against every front and copy of the test-bed: it finds the build that Exchange
/// still shows (through a portal, past a block), and records for every copy the evidence that
/// gives it away, while a real server behind a header-stripping proxy keeps what vouches for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_exchange_is_found_and_copies_show_what_betrays_them() {
    use surveyor_testbed::{try_generate_with, FleetOptions};
    let options = FleetOptions {
        hostile_share: 0.0,
        ..FleetOptions::default()
    };
    let config = |seed| TestbedConfig {
        hosts: 250,
        seed,
        net: "127.79.14.0/24".parse().unwrap(),
        port: 0,
    };
    // Every class, every portal product and every kit stack, found from the plan.
    let wanted = [
        "big-ip-apm",
        "netscaler",
        "kemp-esp",
        "oauth2-proxy",
        "php",
        "express",
    ];
    let seed = (1..2000)
        .find(|&seed| {
            let plan = try_generate_with(&config(seed), &options).unwrap();
            HIDDEN_OR_COPIED
                .iter()
                .all(|p| plan.iter().any(|h| h.persona == *p))
                && wanted
                    .iter()
                    .all(|w| plan.iter().any(|h| h.served_by.as_deref() == Some(*w)))
        })
        .expect("a seed with every class");
    let bed = Testbed::start_with(config(seed), options).await.unwrap();
    let (_, observations) = scan(&[IpNet::V4(bed.net())], &[bed.port()], quick()).await;
    let by_ip: BTreeMap<IpAddr, &Observation> = observations.iter().map(|o| (o.ip, o)).collect();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    for host in bed.truth() {
        let persona = host.persona.as_str();
        if !HIDDEN_OR_COPIED.contains(&persona) {
            continue;
        }
        let obs = by_ip[&host.ip];
        assert_eq!(obs.status, Status::Success, "{} {persona}", host.ip);
        let fp = &obs.fingerprint;
        let values = |signal| fp.of(signal).map(|e| e.value.clone()).collect::<Vec<_>>();
        let what = format!("{} {persona} {:?}: {fp:?}", host.ip, host.served_by);
        let from_endpoints = [
            Signal::OwaVersionHeader,
            Signal::FeServerHeader,
            Signal::ExportToolManifest,
            Signal::NtlmDnsDomain,
        ]
        .iter()
        .any(|s| fp.of(*s).next().is_some());
        let redirect = values(Signal::OwaRedirect);
        let to_logon = redirect.iter().any(|l| l.contains("/owa/auth/logon.aspx"));
        match (persona, &host.exchange) {
            ("exchange-behind-portal", Some(t)) => {
                // The portal's redirect, then the build from Exchange's own 401s.
                assert!(!redirect.is_empty() && !to_logon, "{what}");
                assert!(
                    values(Signal::OwaVersionHeader).contains(&t.build),
                    "{what}"
                );
                assert!(values(Signal::OwaResourcePath).is_empty(), "{what}");
                assert_eq!(
                    values(Signal::NtlmDnsDomain),
                    Vec::from_iter(t.ad_domain.clone())
                );
            }
            ("exchange-owa-blocked", Some(t)) => {
                assert_eq!(
                    values(Signal::ExportToolManifest),
                    [t.build.as_str()],
                    "{what}"
                );
                for s in [
                    Signal::OwaVersionHeader,
                    Signal::OwaResourcePath,
                    Signal::FeServerHeader,
                ] {
                    assert!(values(s).is_empty(), "{what}");
                }
            }
            ("exchange-stripped-headers", Some(t)) => {
                let path = values(Signal::OwaResourcePath);
                assert!(path.len() == 1 && t.build.starts_with(&path[0]), "{what}");
                let action = match t.family.as_str() {
                    "2007" | "2010" => "/owa/auth/owaauth.dll",
                    _ => "/owa/auth.owa",
                };
                assert_eq!(values(Signal::LogonFormAction), [action], "{what}");
                assert!(to_logon, "{what}");
                assert_eq!(values(Signal::ServerHeader), ["nginx"], "{what}");
                assert!(values(Signal::FeServerHeader).is_empty(), "{what}");
                assert_eq!(
                    values(Signal::NtlmDnsDomain),
                    Vec::from_iter(t.ad_domain.clone())
                );
                if t.exporttool_manifest {
                    assert_eq!(values(Signal::ExportToolManifest), [t.build.as_str()]);
                }
            }
            ("owa-phishing-copy", None) => {
                assert!(!from_endpoints, "{what}");
                let action = values(Signal::LogonFormAction);
                assert_eq!(action.len(), 1, "{what}");
                let posts_elsewhere = !action[0].ends_with("/owa/auth.owa");
                let powered = values(Signal::PoweredByHeader);
                let stack = powered
                    .iter()
                    .any(|p| p.starts_with("PHP/") || p == "Express");
                let server = values(Signal::ServerHeader);
                let foreign = server.iter().any(|v| !v.starts_with("Microsoft-IIS/"));
                assert!(posts_elsewhere || stack || (foreign && !to_logon), "{what}");
                match host.served_by.as_deref() {
                    Some("php") => assert!(powered.contains(&"PHP/8.2.20".to_owned())),
                    Some("express") => assert_eq!(powered, ["Express"], "{what}"),
                    _ => assert!(server.contains(&"nginx/1.24.0".to_owned()), "{what}"),
                }
            }
            ("owa-honeypot", None) => {
                assert!(!from_endpoints, "{what}");
                assert_eq!(values(Signal::OwaResourcePath), ["15.1.1466"], "{what}");
                let server = values(Signal::ServerHeader);
                assert!(server.iter().any(|v| v.starts_with("Werkzeug/")), "{what}");
                assert!(server.contains(&"Microsoft-IIS/7.5".to_owned()), "{what}");
            }
            other => panic!("unexpected truth {other:?}"),
        }
        *checked.entry(persona).or_default() += 1;
    }
    assert_eq!(checked.len(), HIDDEN_OR_COPIED.len(), "{checked:?}");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_servers_are_data_not_errors() {
    // A plain-text server on an HTTPS port, a tarpit that accepts and never speaks, and two
    // that accept and hang up without a word (one closes, one resets).
    let plain = TcpListener::bind("127.79.2.1:0").await.unwrap();
    let port = plain.local_addr().unwrap().port();
    let tarpit = TcpListener::bind(("127.79.2.2", port)).await.unwrap();
    let closer = TcpListener::bind(("127.79.2.4", port)).await.unwrap();
    let resetter = TcpListener::bind(("127.79.2.5", port)).await.unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                Ok((mut s, _)) = plain.accept() => {
                    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
                }
                Ok((s, _)) = tarpit.accept() => held.push(s),
                Ok((s, _)) = closer.accept() => drop(s),
                Ok((s, _)) = resetter.accept() => {
                    let _ = s.set_zero_linger();
                }
                () = c.cancelled() => break,
            }
        }
    });
    let nets: Vec<IpNet> = [
        "127.79.2.1",
        "127.79.2.2",
        "127.79.2.3",
        "127.79.2.4",
        "127.79.2.5",
    ]
    .iter()
    .map(|ip| format!("{ip}/32").parse().unwrap())
    .collect();
    let (stats, observations) = scan(&nets, &[port], quick()).await;
    cancel.cancel();
    assert_eq!(stats.targets, 5);
    assert_eq!(stats.connected, 2);
    assert_eq!(stats.refused, 1);
    assert_eq!(stats.closed, 2, "{stats:?}");
    let status: BTreeMap<String, Status> = observations
        .iter()
        .map(|o| (o.ip.to_string(), o.status))
        .collect();
    assert_eq!(status["127.79.2.1"], Status::TlsError);
    assert_eq!(status["127.79.2.2"], Status::IoTimeout);
    assert!(observations
        .iter()
        .all(|o| o.error.is_some() && o.exchange.is_none()));
}

#[tokio::test]
async fn cancellation_stops_the_scan() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (tx, _rx) = mpsc::channel(1);
    let exclusions = Exclusions::builtin(true);
    let space = TargetSpace::new(vec![Entry::Net("127.79.3.0/24".parse().unwrap())], &[9]);
    let targets = space.walk(Order::default(), 0);
    let stats = surveyor_scan::run(&quick(), targets, &exclusions, tx, cancel).await;
    assert_eq!(stats.stopped, Some(surveyor_scan::StopReason::Cancelled));
    assert_eq!(stats.targets, 0);
}

#[tokio::test]
async fn max_targets_stops_early_and_says_so() {
    let (tx, _rx) = mpsc::channel(64);
    let exclusions = Exclusions::builtin(true);
    let space = TargetSpace::new(vec![Entry::Net("127.79.5.0/24".parse().unwrap())], &[9]);
    let targets = space.walk(Order::default(), 0);
    let config = ScanConfig {
        max_targets: Some(10),
        ..quick()
    };
    let stats =
        surveyor_scan::run(&config, targets, &exclusions, tx, CancellationToken::new()).await;
    assert_eq!(stats.stopped, Some(surveyor_scan::StopReason::MaxTargets));
    assert_eq!(stats.targets, 10);
    assert_eq!(stats.refused, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_and_smtp_disclose_what_the_truth_says() {
    use surveyor_scan::PortSpec;
    use surveyor_testbed::FleetOptions;
    let options = FleetOptions {
        smtp_port: Some(0),
        hostile_share: 0.0,
        ..FleetOptions::default()
    };
    let config = TestbedConfig {
        hosts: 40,
        seed: 12,
        net: "127.79.6.0/24".parse().unwrap(),
        port: 0,
    };
    let bed = Testbed::start_with(config, options).await.unwrap();
    let smtp = bed.smtp_port().expect("SMTP enabled");
    let ports = [
        PortSpec::from(bed.port()),
        PortSpec::parse(&format!("{smtp}/smtp")).unwrap(),
    ];
    let (_, observations) = scan(&[IpNet::V4(bed.net())], &ports, quick()).await;
    let value = |o: &Observation, s: Signal| o.fingerprint.of(s).next().map(|e| e.value.clone());
    let mut ntlm_checked = 0;
    let mut smtp_checked = 0;
    for host in bed.truth() {
        let https = observations
            .iter()
            .find(|o| o.ip == host.ip && o.port == bed.port())
            .unwrap();
        if let Some(t) = host.exchange.as_ref().filter(|t| t.ad_domain.is_some()) {
            assert_eq!(
                value(https, Signal::NtlmDnsDomain),
                t.ad_domain,
                "{} {:?}",
                host.ip,
                https.fingerprint
            );
            assert_eq!(
                value(https, Signal::NtlmNetbiosComputer),
                t.netbios_computer
            );
            let build = value(https, Signal::NtlmWindowsVersion).unwrap();
            assert_eq!(
                build.rsplit('.').next().unwrap().parse::<u32>().ok(),
                t.windows_build
            );
            ntlm_checked += 1;
        }
        let on_smtp = observations
            .iter()
            .find(|o| o.ip == host.ip && o.port == smtp);
        match host.smtp.as_deref() {
            Some(kind) => {
                let o = on_smtp.expect("SMTP answered");
                assert_eq!(o.status, Status::Success, "{o:?}");
                let banner = value(o, Signal::SmtpBanner).unwrap();
                let ehlo = value(o, Signal::SmtpEhlo).unwrap();
                if kind == "exchange" {
                    assert!(
                        banner.contains("Microsoft ESMTP MAIL Service ready at"),
                        "{banner}"
                    );
                    assert!(
                        ehlo.contains("X-EXPS") && ehlo.contains("STARTTLS"),
                        "{ehlo}"
                    );
                    let tls = o.tls.as_ref().expect("STARTTLS certificate");
                    assert!(tls.names.iter().any(|n| n.ends_with(&host.domain)));
                } else {
                    assert!(banner.contains("Postfix"), "{banner}");
                }
                smtp_checked += 1;
            }
            None => assert!(on_smtp.is_none(), "{} answered SMTP", host.ip),
        }
    }
    assert!(
        ntlm_checked >= 10 && smtp_checked >= 10,
        "{ntlm_checked} NTLM, {smtp_checked} SMTP checks"
    );
    bed.shutdown().await;
}

/// Survival: a fleet of nothing but hostile personas. Every target ends in the status the
/// test-bed's truth names, within its deadline, and the scan itself finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_end_in_the_right_status_within_the_deadline() {
    use surveyor_testbed::FleetOptions;
    let options = FleetOptions {
        hostile_share: 1.0,
        ..FleetOptions::default()
    };
    let config = TestbedConfig {
        hosts: 60,
        seed: 13,
        net: "127.79.7.0/24".parse().unwrap(),
        port: 0,
    };
    let bed = Testbed::start_with(config, options).await.unwrap();
    let personas: std::collections::BTreeSet<&str> =
        bed.truth().iter().map(|h| h.persona.as_str()).collect();
    assert!(
        personas.len() >= 10,
        "most hostile personas are in the fleet: {personas:?}"
    );
    let deadline = Duration::from_secs(2);
    let config = ScanConfig {
        probe: ProbeConfig {
            connect_timeout: Duration::from_millis(500),
            target_timeout: deadline,
            ..ProbeConfig::default()
        },
        ..quick()
    };
    let (stats, observations) = scan(&[IpNet::V4(bed.net())], &[bed.port()], config).await;
    // No timing assertion: a slow-drip host that outlived its deadline would hang this test
    // for minutes instead, and its status would not be io-timeout.
    assert_eq!(stats.connected, 60);
    let by_ip: BTreeMap<IpAddr, &Observation> = observations.iter().map(|o| (o.ip, o)).collect();
    for host in bed.truth() {
        let obs = by_ip[&host.ip];
        let expected = host.expected_status.as_deref().unwrap_or("success");
        assert_eq!(
            obs.status.as_str(),
            expected,
            "{} ({}): {:?}",
            host.ip,
            host.persona,
            obs.error
        );
        // Bodies stay within the bound whatever the server sends.
        assert!(obs
            .fingerprint
            .evidence
            .iter()
            .all(|e| e.value.len() < 4096));
    }
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_plan_asks_for_the_root_page_only() {
    let bed = Testbed::start_with(
        TestbedConfig {
            hosts: 30,
            seed: 12,
            net: "127.79.12.0/24".parse().unwrap(),
            port: 0,
        },
        surveyor_testbed::FleetOptions {
            hostile_share: 0.0,
            ..surveyor_testbed::FleetOptions::default()
        },
    )
    .await
    .unwrap();
    let config = ScanConfig {
        probe: ProbeConfig {
            plan: surveyor_scan::ProbePlan::Banner,
            ..quick().probe
        },
        ..quick()
    };
    let (stats, observations) = scan(&[IpNet::V4(bed.net())], &[bed.port()], config).await;
    assert_eq!(stats.connected, 30);
    for obs in &observations {
        assert_eq!(obs.status, Status::Success, "{}", obs.ip);
        assert!(obs.tls.as_ref().is_some_and(|t| t.cert_sha256.is_some()));
        // Every signal comes from the one request, and the logon page was never fetched.
        let fp = &obs.fingerprint;
        assert!(fp.evidence.iter().all(|e| e.source == "GET /"), "{fp:?}");
        assert_eq!(fp.of(Signal::OwaResourcePath).count(), 0);
    }
    assert!(observations
        .iter()
        .any(|o| o.fingerprint.of(Signal::ServerHeader).count() == 1));
    bed.shutdown().await;
}

/// Answers each request on a kept-alive plain-HTTP connection with `answer(path)`, and
/// records every path asked for.
async fn scripted_http_server(
    listener: TcpListener,
    answer: fn(&str, u16) -> String,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::AsyncReadExt;
    let port = listener.local_addr().unwrap().port();
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let asked = asked.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                buf.drain(..end);
                let path = head.split(' ').nth(1).unwrap_or("").to_string();
                asked.lock().unwrap().push(path.clone());
                if s.write_all(answer(&path, port).as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn redirect(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nX-FEServer: EXCH01\r\nContent-Length: 0\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_only_on_the_same_host_and_not_forever() {
    use std::sync::{Arc, Mutex};
    use surveyor_scan::PortSpec;
    // Host 1: the logon page moves twice on the same host (absolute, then relative), and the
    // manifest moves to another host, which is not followed.
    fn proxied(path: &str, port: u16) -> String {
        let logon = "<!-- OwaPage = ASP.auth_logon_aspx --><link rel=\"shortcut icon\" href=\"/owa/auth/15.2.1544/themes/resources/favicon.ico\">";
        match path {
            "/owa/" => redirect("/owa/auth/logon.aspx?url=x"),
            "/owa/auth/logon.aspx" => {
                redirect(&format!("http://127.79.8.1:{port}/owa/auth/start.aspx"))
            }
            "/owa/auth/start.aspx" => redirect("logon.aspx?replaceCurrent=1"),
            "/owa/auth/logon.aspx?replaceCurrent=1" => format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{logon}",
                logon.len()
            ),
            p if p.starts_with("/ecp/") => redirect(&format!("http://elsewhere.example:{port}{p}")),
            _ => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_string(),
        }
    }
    // Host 2: the logon page redirects to itself for ever.
    fn looping(path: &str, _port: u16) -> String {
        match path {
            "/owa/auth/logon.aspx" => redirect("/owa/auth/logon.aspx"),
            _ => redirect("/owa/auth/logon.aspx"),
        }
    }
    let first = TcpListener::bind("127.79.8.1:0").await.unwrap();
    let port = first.local_addr().unwrap().port();
    let second = TcpListener::bind(("127.79.8.2", port)).await.unwrap();
    let asked_first = Arc::new(Mutex::new(Vec::new()));
    let asked_second = Arc::new(Mutex::new(Vec::new()));
    let servers = [
        tokio::spawn(scripted_http_server(first, proxied, asked_first.clone())),
        tokio::spawn(scripted_http_server(second, looping, asked_second.clone())),
    ];
    let nets: Vec<IpNet> = vec![
        "127.79.8.1/32".parse().unwrap(),
        "127.79.8.2/32".parse().unwrap(),
    ];
    let spec = PortSpec::parse(&format!("{port}/http")).unwrap();
    let (stats, observations) = scan(&nets, &[spec], quick()).await;
    for server in servers {
        server.abort();
    }
    assert_eq!(stats.connected, 2);

    let one = observations
        .iter()
        .find(|o| o.ip.to_string() == "127.79.8.1")
        .unwrap();
    assert_eq!(one.status, Status::Success);
    let resource: Vec<_> = one.fingerprint.of(Signal::OwaResourcePath).collect();
    assert_eq!(resource.len(), 1, "{:?}", one.fingerprint);
    assert_eq!(resource[0].value, "15.2.1544");
    assert_eq!(
        resource[0].source,
        "GET /owa/auth/logon.aspx?replaceCurrent=1"
    );
    let asked = asked_first.lock().unwrap().clone();
    assert!(asked.iter().all(|p| !p.contains("elsewhere")), "{asked:?}");
    assert_eq!(
        asked.iter().filter(|p| p.starts_with("/ecp/")).count(),
        1,
        "the off-host redirect was followed: {asked:?}"
    );

    let two = observations
        .iter()
        .find(|o| o.ip.to_string() == "127.79.8.2")
        .unwrap();
    assert_eq!(two.status, Status::Success);
    let asked = asked_second.lock().unwrap().clone();
    let logon = asked
        .iter()
        .filter(|p| *p == "/owa/auth/logon.aspx")
        .count();
    // The logon request and three hops, then the manifest's redirect and three hops to the
    // same looping page: 7. Besides: /owa/, autodiscover, the manifest, three NTLM paths.
    assert_eq!(logon, 7, "{asked:?}");
    assert_eq!(asked.len(), 13, "{asked:?}");
}

/// What each kind of host costs: a plain web server and one that hangs up after every answer
/// get the two requests every host gets; a host whose `/owa/` answers 401 gets autodiscover and
/// the manifest as well; behind a portal that closes after each answer (BIG-IP APM), the probe
/// reconnects and reaches Exchange's own 401s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_hosts_with_a_reason_are_asked_more() {
    use std::sync::{Arc, Mutex};
    use surveyor_scan::PortSpec;
    fn plain(_: &str, _: u16) -> String {
        "HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n".to_string()
    }
    fn hangs_up(_: &str, _: u16) -> String {
        "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_string()
    }
    fn everything_401(_: &str, _: u16) -> String {
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n"
            .to_string()
    }
    fn apm(path: &str, _: u16) -> String {
        let close = "Server: BigIP\r\nConnection: Close\r\nContent-Length";
        match path {
            "/my.policy" => format!("HTTP/1.0 200 OK\r\n{close}: 6\r\n\r\nlog on"),
            "/autodiscover/autodiscover.xml"
            | "/EWS/Exchange.asmx"
            | "/rpc/rpcproxy.dll"
            | "/mapi/" => "HTTP/1.1 401 Unauthorized\r\nServer: Microsoft-IIS/10.0\r\n\
                 X-OWA-Version: 15.2.1748.39\r\nX-FEServer: EX19-01\r\n\
                 WWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n"
                .to_string(),
            _ => format!("HTTP/1.0 302 Found\r\nLocation: /my.policy\r\n{close}: 0\r\n\r\n"),
        }
    }
    let answers: [fn(&str, u16) -> String; 4] = [plain, hangs_up, everything_401, apm];
    let first = TcpListener::bind("127.79.15.1:0").await.unwrap();
    let port = first.local_addr().unwrap().port();
    let mut listeners = vec![first];
    for i in 2..=4 {
        listeners.push(
            TcpListener::bind((format!("127.79.15.{i}").as_str(), port))
                .await
                .unwrap(),
        );
    }
    let asked: Vec<_> = (0..4).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let servers: Vec<_> = listeners
        .into_iter()
        .zip(answers)
        .zip(&asked)
        .map(|((l, answer), asked)| tokio::spawn(scripted_http_server(l, answer, asked.clone())))
        .collect();
    let nets: Vec<IpNet> = (1..=4)
        .map(|i| format!("127.79.15.{i}/32").parse().unwrap())
        .collect();
    let spec = PortSpec::parse(&format!("{port}/http")).unwrap();
    let (_, observations) = scan(&nets, &[spec], quick()).await;
    for server in servers {
        server.abort();
    }
    let asked: Vec<Vec<String>> = asked.iter().map(|a| a.lock().unwrap().clone()).collect();
    let logon = "/owa/auth/logon.aspx";
    let manifest = "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application";
    assert_eq!(asked[0], ["/owa/", logon]);
    // Hanging up without a reason ends the probe, as it always did: no reconnection.
    assert_eq!(asked[1], ["/owa/"]);
    assert_eq!(
        asked[2],
        ["/owa/", logon, "/autodiscover/autodiscover.xml", manifest]
    );
    let ntlm = ["/EWS/Exchange.asmx", "/rpc/rpcproxy.dll", "/mapi/"];
    let portal = [
        "/owa/",
        logon,
        "/my.policy",
        "/autodiscover/autodiscover.xml",
    ];
    assert_eq!(asked[3], [&portal[..], &ntlm[..]].concat());
    let behind = observations
        .iter()
        .find(|o| o.ip.to_string() == "127.79.15.4")
        .unwrap();
    let header: Vec<_> = behind.fingerprint.of(Signal::OwaVersionHeader).collect();
    assert_eq!(header[0].value, "15.2.1748.39");
    assert_eq!(header[0].source, "GET /autodiscover/autodiscover.xml");
}

/// Listeners on `ips` (one port) that never accept and whose one-slot backlog is already
/// full, so the kernel drops further SYNs: connects time out, as into a filtered network.
async fn dropping_listeners(ips: &[&str]) -> (u16, Vec<tokio::net::TcpStream>, Vec<TcpListener>) {
    let mut port = 0;
    let (mut fillers, mut listeners) = (Vec::new(), Vec::new());
    for ip in ips {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::new(ip.parse().unwrap(), port))
            .unwrap();
        let listener = socket.listen(0).unwrap();
        port = listener.local_addr().unwrap().port();
        let filler = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        fillers.push(filler);
        listeners.push(listener);
    }
    (port, fillers, listeners)
}

/// Listeners on `ips` (one port) that accept every connection and close it at once: a
/// network that answers and then fails (the probe sees a reset before a byte).
async fn closing_listeners(ips: &[&str]) -> (u16, Vec<tokio::task::JoinHandle<()>>) {
    let mut port = 0;
    let mut tasks = Vec::new();
    for ip in ips {
        let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port))
            .await
            .unwrap();
        port = listener.local_addr().unwrap().port();
        tasks.push(tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        }));
    }
    (port, tasks)
}

fn https(ip: &str, port: u16) -> surveyor_scan::Target {
    surveyor_scan::Target {
        ip: ip.parse().unwrap(),
        port,
        scheme: surveyor_model::Scheme::Https,
        domain: None,
    }
}

/// Runs the engine over `targets` in this order, one at a time, with the back-off `policy`;
/// the source stays open until `cancel` unless `end` closes it after the last target.
fn ordered_scan(
    targets: Vec<surveyor_scan::Target>,
    policy: surveyor_scan::Backoff,
    end: bool,
    cancel: CancellationToken,
) -> (
    std::sync::Arc<surveyor_scan::ScanProgress>,
    tokio::task::JoinHandle<ScanStats>,
) {
    let config = ScanConfig {
        probe: ProbeConfig {
            connect_timeout: Duration::from_millis(200),
            target_timeout: Duration::from_millis(400),
            ..ProbeConfig::default()
        },
        // One at a time, so each target sees what those before it found, and a target that
        // held the only slot would hold up every other.
        concurrency: 1,
        backoff: policy,
        ..quick()
    };
    let progress = config.progress.clone();
    let (tx, mut rx) = mpsc::channel(targets.len().max(1));
    for (i, t) in targets.into_iter().enumerate() {
        tx.try_send((i as u128, t)).unwrap();
    }
    let engine = tokio::spawn(async move {
        let (out, mut observations) = mpsc::channel(16);
        tokio::spawn(async move { while observations.recv().await.is_some() {} });
        let _open = (!end).then_some(tx);
        surveyor_scan::run_source(&config, &mut rx, &Exclusions::builtin(true), out, cancel).await
    });
    (progress, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_not_backed_off_but_a_network_that_answered_and_fails_is() {
    let policy = |after| surveyor_scan::Backoff {
        after,
        first: Duration::from_millis(100),
        max: Duration::from_millis(100),
    };
    // Dark space: five connect timeouts into one /24 that never answered pause nothing.
    let dark = [
        "127.79.9.1",
        "127.79.9.2",
        "127.79.9.3",
        "127.79.9.4",
        "127.79.9.5",
    ];
    let (port, _fillers, _listeners) = dropping_listeners(&dark).await;
    let targets = dark.iter().map(|ip| https(ip, port)).collect();
    let (_, engine) = ordered_scan(targets, policy(2), true, CancellationToken::new());
    let stats = engine.await.unwrap();
    assert_eq!((stats.timed_out, stats.backed_off), (5, 0), "{stats:?}");

    // Two resets in a row pause the /24: the other two targets wait (outside the window)
    // until the pause is over, then are probed and refused (answers).
    let (port, _servers) = closing_listeners(&["127.79.21.1", "127.79.21.2"]).await;
    let failing = || {
        ["127.79.21.1", "127.79.21.2", "127.79.21.3", "127.79.21.4"]
            .iter()
            .map(|ip| https(ip, port))
            .collect()
    };
    let (_, engine) = ordered_scan(failing(), policy(2), true, CancellationToken::new());
    let stats = engine.await.unwrap();
    assert_eq!(
        (stats.closed, stats.refused, stats.backed_off),
        (2, 2, 2),
        "{stats:?}"
    );
    assert_eq!(stats.stopped, None);
    // 0 turns the back-off off.
    let (_, engine) = ordered_scan(failing(), policy(0), true, CancellationToken::new());
    let stats = engine.await.unwrap();
    assert_eq!((stats.closed, stats.backed_off), (2, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_network_holds_no_window_slot() {
    // Network A answers and fails twice and is paused for an hour; its two other targets
    // wait outside the window of one, while network B's four are probed.
    let (port, _servers) = closing_listeners(&["127.79.22.1", "127.79.22.2"]).await;
    let targets = [
        "127.79.22.1",
        "127.79.22.2",
        "127.79.22.3",
        "127.79.22.4",
        "127.79.23.1",
        "127.79.23.2",
        "127.79.23.3",
        "127.79.23.4",
    ]
    .iter()
    .map(|ip| https(ip, port))
    .collect();
    let hour = Duration::from_secs(3600);
    let policy = surveyor_scan::Backoff {
        after: 2,
        first: hour,
        max: hour,
    };
    let cancel = CancellationToken::new();
    let (progress, engine) = ordered_scan(targets, policy, false, cancel.clone());
    let done = async {
        while progress.done.load(std::sync::atomic::Ordering::Relaxed) < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // Only a guard against hanging: with the paused targets in the window, B would wait
    // an hour.
    tokio::time::timeout(Duration::from_secs(60), done)
        .await
        .expect("B's targets were probed while A's waited");
    let frontier = progress.frontier();
    assert_eq!(frontier.next, 8, "every target was taken");
    assert_eq!(
        frontier.pending.into_iter().collect::<Vec<_>>(),
        [2, 3],
        "A's waiting targets stay pending for a resume"
    );
    cancel.cancel();
    let stats = engine.await.unwrap();
    assert_eq!(stats.stopped, Some(surveyor_scan::StopReason::Cancelled));
    assert_eq!(
        (
            stats.closed,
            stats.refused,
            stats.backed_off,
            stats.abandoned
        ),
        (2, 4, 2, 2),
        "{stats:?}"
    );
}

/// A source that yields its targets, then fails.
struct Failing(Vec<(u128, surveyor_scan::Target)>);

impl surveyor_scan::TargetSource for Failing {
    async fn next_target(&mut self) -> Option<(u128, surveyor_scan::Target)> {
        self.0.pop()
    }

    fn failed(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_source_that_fails_stops_the_scan_and_says_so() {
    let mut source = Failing(vec![
        (1, https("127.79.24.2", 9)),
        (0, https("127.79.24.1", 9)),
    ]);
    let config = quick();
    let progress = config.progress.clone();
    let (out, _rx) = mpsc::channel(4);
    let stats = surveyor_scan::run_source(
        &config,
        &mut source,
        &Exclusions::builtin(true),
        out,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(stats.stopped, Some(surveyor_scan::StopReason::SourceFailed));
    assert_eq!(stats.refused, 2, "what came before the failure was probed");
    assert_eq!(progress.frontier().next, 2);
}
