//! Delivery end to end on loopback: a webhook receiver that fails the first attempts, an SMTP
//! sink that refuses one recipient, and files; on SQLite and PostgreSQL.

mod common;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use surveyor_notify::deliver::{self, verify_signature, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use surveyor_notify::intelmq::Feed;
use surveyor_notify::{
    plan, Clock, DeliveryConfig, Language, NetworkContacts, RetryPolicy, Routes, SmtpConfig,
    SmtpTls, WebhookConfig,
};
use surveyor_store::testing::each_backend;
use surveyor_store::{open, Channel, NotificationStatus, Store};
use time::macros::datetime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const SECRET: &[u8] = b"shared-secret";

/// What the receiver saw: every request's key, and the keys it processed (once each).
#[derive(Default)]
struct Received {
    requests: Vec<(String, Vec<u8>, bool)>,
    processed: HashMap<String, u32>,
}

/// A webhook receiver on 127.0.0.1 that answers 503 to the first attempt of each key, processes
/// the second but answers 503 as if the answer were lost, and answers 200 from the third on,
/// dropping repeats of a processed key.
async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(Received::default()));
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let key = req.headers()[IDEMPOTENCY_HEADER]
                            .to_str()
                            .unwrap()
                            .to_string();
                        let sig = req.headers()[SIGNATURE_HEADER]
                            .to_str()
                            .unwrap()
                            .to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                        let valid = verify_signature(SECRET, &body, &sig);
                        let mut s = state.lock().unwrap();
                        s.requests.push((key.clone(), body, valid));
                        let attempts = s.requests.iter().filter(|r| r.0 == key).count();
                        if attempts >= 2 && valid {
                            // Processing is idempotent by key: a repeat changes nothing.
                            s.processed.entry(key).and_modify(|_| ()).or_insert(1);
                        }
                        let status = if attempts >= 3 { 200 } else { 503 };
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, state)
}

async fn planned(store: &Store, routes: &Routes) -> usize {
    let scan = new_scan(store).await;
    let observations = [
        observation("192.0.2.11", E2016, Some("klinikum")),
        observation("203.0.113.5", E2019_CU15, Some("kanzlei")),
        observation("192.0.2.10", &se_current(), Some("klinikum")),
    ];
    let cfg = surveyor_notify::PlanConfig { scan, ..config() };
    let p = plan(
        &cfg,
        &observations,
        &registry(),
        &NetworkContacts::default(),
        &[],
        &[],
    );
    let rendered = surveyor_notify::render_all(&p, &templates(), &Feed::default()).unwrap();
    let report = surveyor_notify::enqueue(&*store.notifications, &rendered, routes, cfg.now)
        .await
        .unwrap();
    report.enqueued
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        max: Duration::from_millis(4),
        max_attempts,
    }
}

fn delivery(max_attempts: u32) -> DeliveryConfig {
    DeliveryConfig {
        webhook: Some(WebhookConfig {
            secret: SECRET.to_vec(),
            timeout: Duration::from_secs(10),
        }),
        smtp: None,
        files: false,
        retry: fast_retries(max_attempts),
        batch: 100,
    }
}

#[tokio::test]
async fn a_failing_webhook_receives_each_bundle_exactly_once_by_idempotency_key() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (url, received) = receiver().await;
        let routes = Routes {
            webhook: Some(url),
            ..Routes::default()
        };
        assert_eq!(
            planned(&store, &routes).await,
            2,
            "{backend}: two organisations affected"
        );
        let clock = Clock::starting_at(datetime!(2026-11-23 12:00 UTC));
        let report = deliver::send_until_settled(&*store.notifications, &delivery(5), &clock)
            .await
            .unwrap();
        assert_eq!(
            (
                report.attempted,
                report.delivered,
                report.retrying,
                report.failed
            ),
            (6, 2, 4, 0),
            "{backend}"
        );

        let notifications = store.notifications.notifications(None).await.unwrap();
        let keys: HashSet<String> = notifications
            .iter()
            .map(|n| n.idempotency_key.clone())
            .collect();
        let before = {
            let r = received.lock().unwrap();
            assert_eq!(
                r.processed.keys().cloned().collect::<HashSet<_>>(),
                keys,
                "{backend}: every bundle processed"
            );
            assert!(r.processed.values().all(|n| *n == 1), "{backend}");
            assert!(
                r.requests.iter().all(|(_, _, valid)| *valid),
                "{backend}: signatures"
            );
            for key in &keys {
                let bodies: HashSet<&Vec<u8>> = r
                    .requests
                    .iter()
                    .filter(|q| &q.0 == key)
                    .map(|q| &q.1)
                    .collect();
                assert_eq!(
                    bodies.len(),
                    1,
                    "{backend}: every attempt sends the same body"
                );
                let body: serde_json::Value =
                    serde_json::from_slice(bodies.into_iter().next().unwrap()).unwrap();
                assert_eq!(body["idempotency_key"], key.as_str());
                assert_eq!(body["schema"], "surveyor-notification/1");
            }
            r.requests.len()
        };
        for n in &notifications {
            assert_eq!(
                (n.status, n.attempts),
                (NotificationStatus::Delivered, 3),
                "{backend}"
            );
            let log = store.notifications.deliveries(n.id).await.unwrap();
            let outcomes: Vec<(&str, Option<&str>)> = log
                .iter()
                .map(|d| (d.outcome.as_str(), d.error.as_deref()))
                .collect();
            assert_eq!(
                outcomes,
                [
                    ("retry", Some("webhook answered HTTP 503")),
                    ("retry", Some("webhook answered HTTP 503")),
                    ("delivered", None)
                ],
                "{backend}"
            );
        }
        // Sending again finds nothing due: the delivered bundles are never posted again.
        let again = deliver::send_until_settled(&*store.notifications, &delivery(5), &clock)
            .await
            .unwrap();
        assert_eq!(again.attempted, 0, "{backend}");
        assert_eq!(received.lock().unwrap().requests.len(), before);
    }
}

#[tokio::test]
async fn an_unreachable_webhook_is_logged_and_the_outbox_kept() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        // A port that was just free: connections are refused.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let routes = Routes {
            webhook: Some(url),
            ..Routes::default()
        };
        planned(&store, &routes).await;
        let clock = Clock::starting_at(datetime!(2026-11-23 12:00 UTC));
        let report = deliver::send_until_settled(&*store.notifications, &delivery(3), &clock)
            .await
            .unwrap();
        assert_eq!((report.delivered, report.failed), (0, 2), "{backend}");
        for n in store.notifications.notifications(None).await.unwrap() {
            assert_eq!(n.status, NotificationStatus::Failed, "{backend}");
            assert_eq!(
                n.last_error.as_deref(),
                Some("gave up after 3 attempts: webhook unreachable: connection refused")
            );
            // The rendered bundle is still there to inspect or re-send.
            assert!(n.payload["email"]["body"].as_str().unwrap().len() > 100);
            let log = store.notifications.deliveries(n.id).await.unwrap();
            assert_eq!(log.len(), 3, "{backend}");
        }
        // A failed notification does not count as told: the next plan tells it again.
        assert!(store
            .notifications
            .notified_findings()
            .await
            .unwrap()
            .is_empty());
    }
}

/// One mail the sink accepted.
#[derive(Debug, Clone)]
struct Mail {
    rcpt: Vec<String>,
    data: String,
}

/// A minimal SMTP server on 127.0.0.1: EHLO, MAIL, RCPT, DATA, RSET, QUIT; refuses recipients
/// in `refuse` with 550.
async fn smtp_sink(refuse: &'static [&'static str]) -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let shared = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mails = shared.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                write.write_all(b"220 sink.test ESMTP\r\n").await.unwrap();
                let mut rcpt = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-sink.test\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL FROM") {
                        rcpt.clear();
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO") {
                        let address = line[8..]
                            .trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_string();
                        let address = address.split('>').next().unwrap().to_string();
                        if refuse.contains(&address.as_str()) {
                            b"550 5.1.1 no such mailbox\r\n"
                        } else {
                            rcpt.push(address);
                            b"250 OK\r\n"
                        }
                    } else if upper.starts_with("DATA") {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if lines.read_line(&mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        mails.lock().unwrap().push(Mail {
                            rcpt: rcpt.clone(),
                            data,
                        });
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

/// The text of an RFC 2047 subject (`=?utf-8?b?…?=` words, as lettre writes them).
fn decode_subject(data: &str) -> String {
    use base64::Engine;
    let mut subject = String::new();
    let mut in_subject = false;
    for line in data.split("\r\n") {
        if line.starts_with("Subject:") {
            in_subject = true;
            subject.push_str(line.trim_start_matches("Subject:"));
        } else if in_subject && line.starts_with([' ', '\t']) {
            subject.push_str(line);
        } else if in_subject {
            break;
        }
    }
    // Whitespace between two encoded words is not part of the text; any other is.
    let mut text = String::new();
    let mut previous_encoded = false;
    for word in subject.split_whitespace() {
        let decoded = word
            .strip_prefix("=?utf-8?b?")
            .and_then(|w| w.strip_suffix("?="))
            .map(|b64| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            });
        let joined = previous_encoded && decoded.is_some();
        if !text.is_empty() && !joined {
            text.push(' ');
        }
        previous_encoded = decoded.is_some();
        text.push_str(&decoded.unwrap_or_else(|| word.to_string()));
    }
    text
}

#[tokio::test]
async fn an_smtp_sink_receives_the_rendered_mails_and_a_refusal_is_logged() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (port, mails) = smtp_sink(&["office@kanzlei.example"]).await;
        let routes = Routes {
            smtp: true,
            ..Routes::default()
        };
        assert_eq!(planned(&store, &routes).await, 2, "{backend}");
        let config = DeliveryConfig {
            webhook: None,
            smtp: Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port,
                tls: SmtpTls::None,
                from: "CERT-Test <cert@cert.example>".into(),
                credentials: None,
                timeout: Duration::from_secs(10),
            }),
            files: false,
            retry: fast_retries(5),
            batch: 100,
        };
        let clock = Clock::starting_at(datetime!(2026-11-23 12:00 UTC));
        let report = deliver::send_until_settled(&*store.notifications, &config, &clock)
            .await
            .unwrap();
        assert_eq!((report.delivered, report.failed), (1, 1), "{backend}");

        let mails = mails.lock().unwrap().clone();
        assert_eq!(mails.len(), 1, "{backend}");
        let mail = &mails[0];
        assert_eq!(mail.rcpt, ["it@klinikum.example"]);
        assert_eq!(
            decode_subject(&mail.data),
            format!(
                "{}1 verwundbare oder nicht mehr unterstützte Microsoft-Exchange-Server von \
                 Klinikum Buchholz",
                urgent(E2016, Language::De)
            )
        );
        for expected in [
            "Content-Transfer-Encoding: 8bit",
            "Sehr geehrte Damen und Herren (Klinikum Buchholz)",
            "Auf Exchange Server SE migrieren",
            "2026-11-23-scan_exchange-organisation-klinikum.csv",
            "timestamp,severity,ip,protocol,port,hostname,tag",
        ] {
            assert!(
                mail.data.contains(expected),
                "{backend}: missing {expected:?}:\n{}",
                mail.data
            );
        }
        let notifications = store.notifications.notifications(None).await.unwrap();
        let klinikum = notifications
            .iter()
            .find(|n| n.destination == "it@klinikum.example")
            .unwrap();
        assert!(mail.data.contains(&format!(
            "Message-ID: <{}@surveyor.invalid>",
            klinikum.idempotency_key
        )));
        let kanzlei = notifications
            .iter()
            .find(|n| n.destination == "office@kanzlei.example")
            .unwrap();
        assert_eq!(kanzlei.channel, Channel::Smtp);
        assert_eq!(
            (kanzlei.status, kanzlei.last_error.as_deref()),
            (
                NotificationStatus::Failed,
                Some("SMTP relay refused the message (550)")
            ),
            "{backend}: a permanent refusal is not retried"
        );
        assert_eq!(
            store
                .notifications
                .deliveries(kanzlei.id)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn the_file_channel_writes_every_format() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let routes = Routes {
            directory: Some(dir.path().display().to_string()),
            ..Routes::default()
        };
        planned(&store, &routes).await;
        let config = DeliveryConfig {
            webhook: None,
            smtp: None,
            files: true,
            retry: fast_retries(2),
            batch: 100,
        };
        let clock = Clock::starting_at(datetime!(2026-11-23 12:00 UTC));
        let report = deliver::send_until_settled(&*store.notifications, &config, &clock)
            .await
            .unwrap();
        assert_eq!(report.delivered, 2, "{backend}");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "2026-11-23-scan_exchange-organisation-kanzlei.csv",
                "2026-11-23-scan_exchange-organisation-klinikum.csv",
                "organisation-kanzlei.eml.txt",
                "organisation-kanzlei.intelmq.jsonl",
                "organisation-kanzlei.json",
                "organisation-klinikum.eml.txt",
                "organisation-klinikum.intelmq.jsonl",
                "organisation-klinikum.json",
            ],
            "{backend}"
        );
        let mail =
            std::fs::read_to_string(dir.path().join("organisation-kanzlei.eml.txt")).unwrap();
        assert!(
            mail.starts_with(&format!(
                "Subject: {}1 vulnerable or unsupported",
                urgent(E2019_CU15, Language::En)
            )),
            "{mail}"
        );
    }
}
