//! Planning and rendering: who is told, what, in which language and format; and the
//! re-notification window against the store on both backends.

mod common;

use common::*;
use surveyor_notify::email::Part;
use surveyor_notify::intelmq::{self, Feed};
use surveyor_notify::plan::{Action, Language};
use surveyor_notify::{plan, shadowserver, NetworkContacts, Reason, Routes};
use surveyor_store::testing::each_backend;
use surveyor_store::{open, Suppression};
use time::macros::{date, datetime};
use time::Duration;

#[test]
fn supported_fully_patched_servers_produce_no_notification() {
    let se = observation("192.0.2.10", &se_current(), Some("klinikum"));
    let v = se.exchange.as_ref().unwrap();
    // The premise: the knowledge base calls this build supported and current.
    assert_eq!(v.support, surveyor_model::Support::Supported);
    assert_eq!(v.patch_level.days_behind_cu, Some(0));
    assert!(v
        .cves
        .iter()
        .all(|c| c.status != surveyor_model::observation::CveStatus::Vulnerable));
    let p = plan(
        &config(),
        std::slice::from_ref(&se),
        &registry(),
        &NetworkContacts::default(),
        &[],
        &[],
    );
    assert!(p.bundles.is_empty(), "{p:#?}");
    assert!(p.unrouted.is_empty());

    // With an affected server beside it, only that one is told.
    let old = observation("192.0.2.11", E2016, Some("klinikum"));
    let p = plan(
        &config(),
        &[se, old],
        &registry(),
        &NetworkContacts::default(),
        &[],
        &[],
    );
    assert_eq!(p.bundles.len(), 1);
    let ips: Vec<String> = p.bundles[0]
        .findings
        .iter()
        .map(|f| f.ip.to_string())
        .collect();
    assert_eq!(ips, ["192.0.2.11"]);
}

#[test]
fn bundles_per_organisation_or_network_contact_with_reasons_and_actions() {
    let contacts = NetworkContacts::parse("198.51.100.0/24,abuse@isp.example,de\n").unwrap();
    let observations = [
        observation("192.0.2.11", E2016, Some("klinikum")),
        observation("192.0.2.12", E2019_CU15, Some("klinikum")),
        observation("203.0.113.5", E2019_CU12, Some("kanzlei")),
        observation("198.51.100.7", E2016, None),
        // Neither attributed nor in a known network: counted, not told.
        observation("192.0.2.200", E2016, None),
        // Attributed to an organisation the registry no longer has, in the ISP's network.
        observation("198.51.100.8", E2016, Some("gone")),
    ];
    let p = plan(&config(), &observations, &registry(), &contacts, &[], &[]);
    let summary: Vec<(String, &str, Vec<String>)> = p
        .bundles
        .iter()
        .map(|b| {
            (
                b.recipient.key.clone(),
                b.recipient.language.as_str(),
                b.findings.iter().map(|f| f.ip.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "contact:abuse@isp.example".to_string(),
                "de",
                vec!["198.51.100.7".to_string(), "198.51.100.8".to_string()]
            ),
            (
                "organisation:kanzlei".to_string(),
                "en",
                vec!["203.0.113.5".to_string()]
            ),
            (
                "organisation:klinikum".to_string(),
                "de",
                vec!["192.0.2.11".to_string(), "192.0.2.12".to_string()]
            ),
        ]
    );
    assert_eq!(p.unrouted, vec![("192.0.2.200".parse().unwrap(), 443)]);

    let klinikum = &p.bundles[2];
    assert_eq!(klinikum.id, "organisation-klinikum");
    assert_eq!(
        klinikum.recipient.email.as_deref(),
        Some("it@klinikum.example")
    );
    let e2016 = &klinikum.findings[0];
    assert_eq!(
        e2016.reasons,
        [
            Reason::Unsupported,
            Reason::VulnerableCves,
            Reason::OwaExposed
        ]
    );
    assert_eq!(e2016.actions, [Action::MigrateToSe, Action::RestrictOwaEcp]);
    let enforcement = e2016.enforcement.as_ref().unwrap();
    assert_eq!(
        (
            enforcement.flagged_from,
            enforcement.throttling_from,
            enforcement.complete_block_from
        ),
        (AS_OF, date!(2026 - 12 - 23), date!(2027 - 02 - 21))
    );
    assert_eq!(e2016.servername.as_deref(), Some("EX16-01"));
    assert_eq!(
        (e2016.hostname.as_deref(), e2016.hostname_source),
        (Some("mail.klinikum.example"), Some("certificate"))
    );
    assert_eq!(e2016.url, "https://192.0.2.11:443/owa/");
    let cu15 = &klinikum.findings[1];
    assert_eq!(cu15.actions[0], Action::UpgradeInPlaceToSe);
    let cu12 = &p.bundles[1].findings[0];
    assert_eq!(cu12.actions[0], Action::UpdateCuThenInPlaceToSe);
}

#[test]
fn suppressions_drop_organisations_contacts_and_networks() {
    let contacts = NetworkContacts::parse("198.51.100.0/24,abuse@isp.example\n").unwrap();
    let observations = [
        observation("192.0.2.11", E2016, Some("klinikum")),
        observation("203.0.113.5", E2016, Some("kanzlei")),
        observation("198.51.100.7", E2016, None),
    ];
    let suppress = |target: &str| Suppression {
        target: target.into(),
        reason: "test".into(),
        created_at: NOW,
        expires_at: None,
    };
    let all = plan(&config(), &observations, &registry(), &contacts, &[], &[]);
    assert_eq!(all.bundles.len(), 3);
    let s = [
        suppress("klinikum"),
        suppress("abuse@isp.example"),
        suppress("203.0.113.0/28"),
    ];
    let p = plan(&config(), &observations, &registry(), &contacts, &[], &s);
    assert!(p.bundles.is_empty(), "{:?}", p.bundles);
    assert_eq!(p.suppressed, 3);
}

#[tokio::test]
async fn unchanged_findings_wait_for_the_window_then_come_back_as_reminders() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = new_scan(&store).await;
        let observations = [
            observation("192.0.2.11", E2016, Some("klinikum")),
            observation("192.0.2.12", E2019_CU15, Some("klinikum")),
        ];
        let routes = Routes {
            webhook: Some("http://127.0.0.1:9/hook".into()),
            ..Routes::default()
        };
        let plan_at = |now| {
            let store = store.clone();
            let observations = observations.clone();
            async move {
                let notified = store.notifications.notified_findings().await.unwrap();
                let cfg = surveyor_notify::PlanConfig {
                    scan,
                    now,
                    ..config()
                };
                plan(
                    &cfg,
                    &observations,
                    &registry(),
                    &NetworkContacts::default(),
                    &notified,
                    &[],
                )
            }
        };
        let first = plan_at(NOW).await;
        assert_eq!(first.bundles[0].findings.len(), 2, "{backend}");
        let rendered = surveyor_notify::render_all(&first, &templates(), &Feed::default()).unwrap();
        let report = surveyor_notify::enqueue(&*store.notifications, &rendered, &routes, NOW)
            .await
            .unwrap();
        assert_eq!(report.enqueued, 1, "{backend}");
        // Planning the same scan again finds the same idempotency key: nothing new.
        let again = surveyor_notify::enqueue(&*store.notifications, &rendered, &routes, NOW)
            .await
            .unwrap();
        assert_eq!((again.enqueued, again.already_queued), (0, 1), "{backend}");

        // Within 30 days: nothing to tell.
        let soon = plan_at(NOW + Duration::days(29)).await;
        assert!(soon.bundles.is_empty(), "{backend}");
        assert_eq!(soon.within_window, 2, "{backend}");

        // After 30 days, still open: a reminder.
        let later = plan_at(NOW + Duration::days(31)).await;
        let reminders: Vec<bool> = later.bundles[0]
            .findings
            .iter()
            .map(|f| f.reminder)
            .collect();
        assert_eq!(reminders, [true, true], "{backend}");

        // A changed finding (the server moved to another build, still affected) is new.
        let changed = [observation("192.0.2.11", E2019_CU12, Some("klinikum"))];
        let notified = store.notifications.notified_findings().await.unwrap();
        let cfg = surveyor_notify::PlanConfig {
            scan,
            now: NOW + Duration::days(1),
            ..config()
        };
        let p = plan(
            &cfg,
            &changed,
            &registry(),
            &NetworkContacts::default(),
            &notified,
            &[],
        );
        assert_eq!(p.bundles[0].findings.len(), 1, "{backend}");
        assert!(!p.bundles[0].findings[0].reminder, "{backend}");
    }
}

#[test]
fn emails_are_written_in_the_organisations_language() {
    let contacts = NetworkContacts::default();
    let observations = [
        observation("192.0.2.11", E2016, Some("klinikum")),
        observation("203.0.113.5", E2019_CU15, Some("kanzlei")),
    ];
    let p = plan(&config(), &observations, &registry(), &contacts, &[], &[]);
    let t = templates();
    let kanzlei = t.render(&p.bundles[0]).unwrap();
    let klinikum = t.render(&p.bundles[1]).unwrap();
    assert!(klinikum.body.lines().all(|l| l.chars().count() <= 72));
    // Lines are wrapped; compare the words.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (de, en) = (words(&klinikum.body), words(&kanzlei.body));
    assert_eq!(p.bundles[1].recipient.language, Language::De);

    assert_eq!(
        klinikum.subject,
        format!(
            "{}1 verwundbare oder nicht mehr unterstützte Microsoft-Exchange-Server von Klinikum \
             Buchholz",
            urgent(E2016, Language::De)
        )
    );
    for expected in [
        "Sehr geehrte Damen und Herren (Klinikum Buchholz)",
        "1. 192.0.2.11 Port 443 (mail.klinikum.example)",
        "Exchange Server 2016 CU23",
        "nicht mehr unterstützt: Microsoft liefert für diese Version keine Sicherheitsupdates mehr",
        "Auf Exchange Server SE migrieren",
        "OWA und ECP nur für vertrauenswürdige Adressen freigeben",
        "ab dem 2026-12-23 gedrosselt",
        "ab dem 2027-02-21 vollständig blockiert",
        "owa-version-header aus \"GET /owa/\": 15.1.2507.61",
        "Mit freundlichen Grüßen CERT-Test",
    ] {
        assert!(
            de.contains(expected),
            "missing {expected:?} in:\n{}",
            klinikum.body
        );
    }
    assert!(!klinikum.body.contains("Dear"));

    assert_eq!(
        kanzlei.subject,
        format!(
            "{}1 vulnerable or unsupported Microsoft Exchange server of Kanzlei Weber",
            urgent(E2019_CU15, Language::En)
        )
    );
    for expected in [
        "Dear Kanzlei Weber,",
        "1. 203.0.113.5 port 443",
        "Upgrade in place to Exchange Server Subscription Edition (SE)",
        "Restrict OWA and ECP to trusted addresses or make them reachable only through a VPN.",
        "completely blocked from 2027-02-21",
        "Kind regards, CERT-Test",
    ] {
        assert!(
            en.contains(expected),
            "missing {expected:?} in:\n{}",
            kanzlei.body
        );
    }
    assert!(!kanzlei.body.contains("Sehr geehrte"));
}

#[test]
fn a_broken_template_is_a_clear_error() {
    let p = plan(
        &config(),
        &[observation("192.0.2.11", E2016, Some("klinikum"))],
        &registry(),
        &NetworkContacts::default(),
        &[],
        &[],
    );
    let mut t = templates();
    let syntax = t
        .set(Language::De, Part::Body, "line one\n{% for x in %}".into())
        .unwrap_err()
        .to_string();
    assert!(syntax.contains("the de body template line 2"), "{syntax}");
    t.set(
        Language::De,
        Part::Subject,
        "{{ recipient.nickname }}".into(),
    )
    .unwrap();
    let missing = t.render(&p.bundles[0]).unwrap_err().to_string();
    assert!(
        missing.contains("the de subject template line 1"),
        "{missing}"
    );
    let all = surveyor_notify::render_all(&p, &t, &Feed::default())
        .unwrap_err()
        .to_string();
    assert!(all.contains("(bundle organisation-klinikum)"), "{all}");
}

#[test]
fn shadowserver_rows_have_the_scan_exchange_columns() {
    // Shadowserver report_schema reports.json, scan_exchange, 2026-03-24.
    let columns = [
        "timestamp",
        "severity",
        "ip",
        "protocol",
        "port",
        "hostname",
        "tag",
        "asn",
        "geo",
        "region",
        "city",
        "naics",
        "hostname_source",
        "sector",
        "version",
        "servername",
        "url",
    ];
    assert_eq!(columns, shadowserver::COLUMNS);

    let p = plan(
        &config(),
        &[observation("192.0.2.11", E2016, Some("klinikum"))],
        &registry(),
        &NetworkContacts::default(),
        &[],
        &[],
    );
    let csv = shadowserver::to_csv(&p.bundles[0]).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        columns
    );
    let row: Vec<String> = reader
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    let tag = &row[6];
    let kev = if urgent(E2016, Language::En).is_empty() {
        ""
    } else {
        "kev;"
    };
    assert!(tag.starts_with(&format!("exchange;eol;{kev}cve-")), "{tag}");
    assert_eq!(
        [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
        [
            "2026-11-23 06:41:07",
            "critical",
            "192.0.2.11",
            "tcp",
            "443",
            "mail.klinikum.example"
        ]
    );
    assert_eq!(
        [&row[12], &row[13], &row[14], &row[15], &row[16]],
        [
            "certificate",
            "hospital",
            "15.1.2507.61",
            "EX16-01",
            "https://192.0.2.11:443/owa/"
        ]
    );
}

#[test]
fn intelmq_events_use_harmonization_field_names() {
    let p = plan(
        &config(),
        &[observation("192.0.2.11", E2016, Some("klinikum"))],
        &registry(),
        &NetworkContacts::default(),
        &[],
        &[],
    );
    let events = intelmq::events(&p.bundles[0], &Feed::default());
    let e = &events[0];
    let s = |k: &str| {
        e.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{k}: {e:?}"))
    };
    assert_eq!(s("classification.taxonomy"), "vulnerable");
    assert_eq!(s("classification.type"), "vulnerable-system");
    assert_eq!(s("classification.identifier"), "vulnerable-exchange-server");
    assert_eq!(s("source.ip"), "192.0.2.11");
    assert_eq!(e["source.port"], 443);
    assert_eq!(s("source.reverse_dns"), "mail.klinikum.example");
    assert_eq!(s("extra.version"), "15.1.2507.61");
    assert_eq!(s("extra.servername"), "EX16-01");
    assert_eq!(s("extra.source.sector"), "hospital");
    assert_eq!(s("time.source"), "2026-11-23T06:41:07.123456Z");
    assert_eq!(s("protocol.application"), "exchange");
    assert!(s("product.vulnerabilities").starts_with("cve-"));
    assert!(!e.contains_key("source.asn"), "no AS known: no field");
    // The fields IntelMQ's scan_exchange mapping requires (report_schema intelmq.json).
    for field in ["time.source", "source.ip", "source.port"] {
        assert!(e.contains_key(field), "{field}");
    }
    let line = intelmq::to_jsonl(&events);
    assert_eq!(line.lines().count(), 1);
}

const NOW: time::OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

/// A server with a CVE exploited in the wild: every output lists the exploited CVEs first and
/// flags them, and the mail says so in its first lines, in both languages. Which CVEs are
/// exploited is read from the knowledge base, never assumed here.
#[test]
fn exploited_vulnerabilities_come_first_and_are_flagged() {
    use surveyor_model::observation::CveStatus;
    let kb = surveyor_kb::KnowledgeBase::builtin();
    // A server on the oldest update of the newest 2016 CU: below every fix on that CU.
    let base = kb
        .builds
        .family_rows(surveyor_model::Family::E2016)
        .map(|r| r.build.cu())
        .max()
        .unwrap();
    let build = kb.builds.cu_release(base).unwrap().build.to_string();
    let o = observation("192.0.2.11", &build, Some("klinikum"));
    let cves = &o.exchange.as_ref().unwrap().cves;
    let exploited: Vec<&str> = cves
        .iter()
        .filter(|c| c.exploited && c.status == CveStatus::Vulnerable)
        .map(|c| c.cve.as_str())
        .collect();
    assert!(
        !exploited.is_empty(),
        "the data knows an exploited 2016 CVE"
    );
    assert!(
        cves.iter()
            .any(|c| !c.exploited && c.status == CveStatus::Vulnerable),
        "and one that is not, so that order matters"
    );
    for (organisation, language) in [("klinikum", Language::De), ("kanzlei", Language::En)] {
        let o = observation("192.0.2.11", &build, Some(organisation));
        let p = plan(
            &config(),
            &[o],
            &registry(),
            &NetworkContacts::default(),
            &[],
            &[],
        );
        let bundle = &p.bundles[0];
        let f = &bundle.findings[0];
        let n = exploited.len();
        let mut sorted = exploited.clone();
        sorted.sort();
        let mut first: Vec<&str> = f.vulnerable_cves[..n].iter().map(String::as_str).collect();
        first.sort();
        assert_eq!(first, sorted, "exploited first: {:?}", f.vulnerable_cves);
        let mut listed: Vec<&str> = f.exploited_cves.iter().map(String::as_str).collect();
        listed.sort();
        assert_eq!(listed, sorted);

        let tag = shadowserver::to_csv(bundle).unwrap();
        let kev_then_cves = format!("kev;{}", f.vulnerable_cves[0].to_lowercase());
        assert!(tag.contains(&kev_then_cves), "{tag}");

        let event = &intelmq::events(bundle, &Feed::default())[0];
        let vulnerabilities = event["product.vulnerabilities"].as_str().unwrap();
        assert!(
            vulnerabilities.starts_with(&f.vulnerable_cves[0].to_lowercase()),
            "{vulnerabilities}"
        );
        assert_eq!(
            event["extra.exploited_cves"],
            serde_json::json!(f.exploited_cves)
        );
        assert!(event["extra.knowledge_base"]["digest"].is_string());

        let mail = templates().render(bundle).unwrap();
        let (subject, opening) = match language {
            Language::De => ("DRINGEND, aktiv ausgenutzt:", "DRINGEND:"),
            Language::En => ("URGENT, exploited:", "URGENT:"),
        };
        assert!(mail.subject.starts_with(subject), "{}", mail.subject);
        // The salutation, a blank line, then the warning naming every exploited CVE.
        let head: Vec<&str> = mail.body.lines().take(8).collect();
        assert!(head[2].starts_with(opening), "{}", mail.body);
        let head = head.join(" ");
        for cve in &exploited {
            assert!(
                head.contains(cve),
                "{cve} not in the first lines:\n{}",
                mail.body
            );
        }
    }
    // A server with nothing exploited gets no warning.
    let current = observation("192.0.2.10", &se_current(), Some("kanzlei"));
    let p = plan(
        &surveyor_notify::PlanConfig {
            exposure_alone: true,
            ..config()
        },
        &[current],
        &registry(),
        &NetworkContacts::default(),
        &[],
        &[],
    );
    let mail = templates().render(&p.bundles[0]).unwrap();
    assert!(!mail.subject.contains("URGENT") && !mail.body.contains("URGENT"));
}
