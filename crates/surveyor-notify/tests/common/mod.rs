//! Shared fixtures: a registry, observations classified by the real knowledge base, planning
//! and template settings.
#![allow(dead_code)]

use surveyor_model::{
    Attribution, AttributionRule, Fingerprint, Observation, Organisation, Scheme, Sector, Signal,
    Status, TlsInfo,
};
use surveyor_notify::{PlanConfig, Templates};
use surveyor_store::{NewScan, ScanId, Store};
use time::macros::{date, datetime};
use time::{Date, Duration};

pub const AS_OF: Date = date!(2026 - 11 - 23);
/// Exchange SE, the newest update released by AS_OF (read from the data, so that a new
/// update in the knowledge base changes nothing here): supported and current.
pub fn se_current() -> String {
    surveyor_kb::KnowledgeBase::builtin()
        .builds
        .family_rows(surveyor_model::Family::Se)
        .filter(|r| r.available_by() <= AS_OF)
        .map(|r| r.build)
        .max()
        .expect("the knowledge base knows an SE build")
        .to_string()
}

/// What the first lines of a mail about a server on `build` open with: the warning about
/// vulnerabilities exploited in the wild, when the knowledge base says the build has one.
pub fn urgent(build: &str, language: surveyor_notify::Language) -> &'static str {
    let observation = observation("192.0.2.1", build, None);
    let exploited = observation
        .exchange
        .unwrap()
        .cves
        .iter()
        .any(|c| c.exploited && c.status == surveyor_model::observation::CveStatus::Vulnerable);
    match (exploited, language) {
        (false, _) => "",
        (true, surveyor_notify::Language::De) => "DRINGEND, aktiv ausgenutzt: ",
        (true, surveyor_notify::Language::En) => "URGENT, exploited: ",
    }
}
/// Exchange 2016 CU23 Oct25SU: end of life, vulnerable.
pub const E2016: &str = "15.1.2507.61";
/// Exchange 2019 CU15: in place to SE.
pub const E2019_CU15: &str = "15.2.1748.36";
/// Exchange 2019 CU12: CU first.
pub const E2019_CU12: &str = "15.2.1118.40";

pub fn registry() -> Vec<Organisation> {
    let org = |id: &str, name: &str, sector, contact: Option<&str>, language: Option<&str>| {
        Organisation {
            id: id.into(),
            name: name.into(),
            sector,
            subsector: None,
            country: Some("DE".into()),
            naics: None,
            cidrs: vec![],
            asns: vec![],
            domains: vec![],
            abuse_contact: contact.map(Into::into),
            language: language.map(Into::into),
        }
    };
    vec![
        org(
            "klinikum",
            "Klinikum Buchholz",
            Sector::Hospital,
            Some("it@klinikum.example"),
            Some("de"),
        ),
        org(
            "kanzlei",
            "Kanzlei Weber",
            Sector::LawFirm,
            Some("office@kanzlei.example"),
            None,
        ),
    ]
}

/// An HTTPS observation on port 443 whose OWA showed `build`, classified as of AS_OF.
pub fn observation(ip: &str, build: &str, organisation: Option<&str>) -> Observation {
    let mut fingerprint = Fingerprint::default();
    fingerprint.push(Signal::OwaVersionHeader, "GET /owa/", build);
    fingerprint.push(Signal::FeServerHeader, "GET /owa/", "EX16-01");
    let exchange = surveyor_kb::KnowledgeBase::builtin().classify(&fingerprint, AS_OF);
    assert!(exchange.is_some(), "the knowledge base knows {build}");
    Observation {
        ip: ip.parse().unwrap(),
        port: 443,
        scheme: Scheme::Https,
        observed_at: datetime!(2026-11-23 06:41:07.123456 UTC),
        status: Status::Success,
        error: None,
        tls: Some(TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            names: match organisation {
                Some("klinikum") => vec!["mail.klinikum.example".into()],
                _ => vec![],
            },
            ..TlsInfo::default()
        }),
        http_server: Some("Microsoft-IIS/10.0".into()),
        fingerprint,
        exchange,
        attribution: organisation.map(|o| Attribution {
            organisation: o.into(),
            sector: Sector::Hospital,
            rule: AttributionRule::CertificateDomain,
            confidence: surveyor_model::observation::Confidence::High,
            matched: format!("mail.{o}.example"),
        }),
        asn: None,
        country: None,
    }
}

pub fn config() -> PlanConfig {
    PlanConfig {
        scan: ScanId(1),
        as_of: AS_OF,
        knowledge_base: Some(kb_ref()),
        now: datetime!(2026-11-23 12:00 UTC),
        renotify_after: Duration::days(30),
        exposure_alone: false,
    }
}

/// The built-in knowledge base as the store names it.
pub fn kb_ref() -> surveyor_store::KbRef {
    let stamp = &surveyor_kb::KnowledgeBase::builtin().stamp;
    surveyor_store::KbRef {
        digest: stamp.digest.clone(),
        newest_release: stamp.newest_release,
    }
}

pub fn templates() -> Templates {
    Templates::builtin("CERT-Test", 30)
}

pub async fn new_scan(store: &Store) -> ScanId {
    store
        .scans
        .begin_scan(&NewScan {
            started_at: datetime!(2026-11-23 06:00 UTC),
            as_of: AS_OF,
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: Some(kb_ref()),
        })
        .await
        .unwrap()
}
