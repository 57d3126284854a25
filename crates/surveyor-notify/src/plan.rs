//! Planning: which servers of a scan are worth telling someone about, whom to tell, and what.
//!
//! Pure: a function of the scan's observations, the registry, the network contacts, what was
//! told before, the suppression list and the time; no I/O.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};
use surveyor_kb::enforcement::{BLOCKING_FROM_DAY, COMPLETE_BLOCK_FROM_DAY, REPORT_ONLY_DAYS};
use surveyor_model::observation::{CveStatus, ExchangeOnlineBar, SupportReason, UpgradePath};
use surveyor_model::{
    AttributionRule, Build, Evidence, Family, Observation, Organisation, Scheme, Sector, Signal,
    Support,
};
use surveyor_store::{FindingKey, KbRef, NotifiedFinding, ScanId, Suppression};
use time::{Date, Duration, OffsetDateTime};

use crate::NotifyError;

/// The language a bundle is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    De,
    En,
}

impl Language {
    /// `de`, `de-DE`, `de-AT`, … are German; anything else, or nothing, English.
    pub fn from_tag(tag: Option<&str>) -> Language {
        match tag {
            Some(t) if t.len() >= 2 && t[..2].eq_ignore_ascii_case("de") => Language::De,
            _ => Language::En,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::De => "de",
            Language::En => "en",
        }
    }
}

/// Why a server is in a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The product or CU no longer receives updates.
    Unsupported,
    /// The build is an update only the paid ESU programme delivers: patched, not supported.
    EsuOnly,
    /// The build is below the fix of a CVE the knowledge base records.
    VulnerableCves,
    /// OWA answers from the Internet.
    OwaExposed,
    /// ECP answers from the Internet.
    EcpExposed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsupported => "unsupported",
            Reason::EsuOnly => "esu-only",
            Reason::VulnerableCves => "vulnerable-cves",
            Reason::OwaExposed => "owa-exposed",
            Reason::EcpExposed => "ecp-exposed",
        }
    }
}

/// What the recipient should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// 2019 CU14/CU15: run the SE installer in place.
    UpgradeInPlaceToSe,
    /// Older 2019: CU14 or CU15 first, then in place to SE.
    UpdateCuThenInPlaceToSe,
    /// 2016 and older: new SE servers, move mailboxes, retire the old ones.
    MigrateToSe,
    /// SE (or a supported CU): install the newest update.
    InstallLatestUpdate,
    /// Reach OWA and ECP only from trusted addresses or through a VPN.
    RestrictOwaEcp,
}

/// When Exchange Online's enforcement against the server would bite if it flagged the server on
/// `flagged_from` (the scan's as-of date: when Exchange Online first flagged it is not visible
/// to a scan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enforcement {
    #[serde(with = "iso_date")]
    pub flagged_from: Date,
    #[serde(with = "iso_date")]
    pub throttling_from: Date,
    #[serde(with = "iso_date")]
    pub blocking_from: Date,
    #[serde(with = "iso_date")]
    pub complete_block_from: Date,
}

impl Enforcement {
    pub fn from(flagged_from: Date) -> Enforcement {
        let day = |n: u32| flagged_from + Duration::days(i64::from(n));
        Enforcement {
            flagged_from,
            throttling_from: day(REPORT_ONLY_DAYS),
            blocking_from: day(BLOCKING_FROM_DAY),
            complete_block_from: day(COMPLETE_BLOCK_FROM_DAY),
        }
    }
}

/// One affected server (address and port) and everything a recipient needs to act on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub ip: IpAddr,
    pub port: u16,
    pub scheme: Scheme,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// A name of the server: its PTR name when attribution matched it, else the first name of
    /// its certificate.
    pub hostname: Option<String>,
    /// `ptr` or `certificate`.
    pub hostname_source: Option<&'static str>,
    /// The NetBIOS name the server gave (`X-FEServer` or NTLM).
    pub servername: Option<String>,
    pub family: Family,
    pub build: Build,
    pub version_name: String,
    pub support: Support,
    pub support_reason: Option<SupportReason>,
    pub esu_patched: bool,
    pub upgrade_path: Option<UpgradePath>,
    /// CVEs the exact build is vulnerable to: those exploited in the wild first, then by
    /// severity (critical first), then by number.
    pub vulnerable_cves: Vec<String>,
    /// CVEs only a CU was seen for: fixed only if the update is installed (same order).
    pub undetermined_cves: Vec<String>,
    /// The CVEs the build is vulnerable to that are exploited in the wild (CISA KEV, or
    /// Microsoft's "Exploitation Detected"), gravest first: what a recipient must read first.
    pub exploited_cves: Vec<String>,
    /// Exchange Online's minimum-update rule for OnPremises connectors, when one names the
    /// family by the scan's date.
    pub exchange_online: Option<ExchangeOnlineBar>,
    /// A URL the recipient can open to see what we saw (`https://192.0.2.5:443/owa/`).
    pub url: String,
    pub sector: Option<Sector>,
    /// The AS announcing the address: the scan's routing table, else the AS attribution
    /// matched.
    pub asn: Option<u32>,
    /// Where the address is registered (ISO 3166-1 alpha-2), when the scan knew.
    pub country: Option<String>,
    pub reasons: Vec<Reason>,
    pub actions: Vec<Action>,
    /// For servers Exchange Online would throttle and block (unsupported or vulnerable).
    pub enforcement: Option<Enforcement>,
    pub evidence: Vec<Evidence>,
    /// A digest of what is wrong; a changed finding has another one.
    pub fingerprint: String,
    /// Told before, more than the re-notification window ago, and still open.
    pub reminder: bool,
}

impl Finding {
    pub fn key(&self) -> FindingKey {
        FindingKey {
            ip: self.ip,
            port: self.port,
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// Shadowserver's scale: critical for known vulnerabilities, high for end of life, medium
    /// for exposure alone, info for a server with nothing wrong seen (exports list those too).
    pub fn severity(&self) -> &'static str {
        if self.reasons.is_empty() {
            "info"
        } else if !self.vulnerable_cves.is_empty() {
            "critical"
        } else if self.reasons.contains(&Reason::Unsupported)
            || self.reasons.contains(&Reason::EsuOnly)
        {
            "high"
        } else {
            "medium"
        }
    }
}

/// Whom a bundle goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// `organisation:<id>` or `contact:<address>`: the key the re-notification window and the
    /// outbox use.
    pub key: String,
    /// The registry id, for an organisation.
    pub organisation: Option<String>,
    /// The organisation's name, or the contact address for a network's abuse contact.
    pub name: String,
    /// Where mail goes; `None` when the registry gives no contact.
    pub email: Option<String>,
    pub language: Language,
    pub sector: Option<Sector>,
}

/// The affected servers of one recipient from one scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bundle {
    /// Safe in file names: `organisation-<id>` or `contact-<address>` with other characters
    /// replaced by `_`.
    pub id: String,
    pub recipient: Recipient,
    pub scan: ScanId,
    #[serde(with = "iso_date")]
    pub as_of: Date,
    /// The knowledge base that judged the scan; `None` for scans stored before it was recorded.
    pub knowledge_base: Option<KbRef>,
    /// By address, then port.
    pub findings: Vec<Finding>,
}

impl Bundle {
    /// The CVEs exploited in the wild that any of the bundle's servers has, each once, in the
    /// order the servers list them.
    pub fn exploited_cves(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        for cve in self.findings.iter().flat_map(|f| &f.exploited_cves) {
            if !all.contains(&cve.as_str()) {
                all.push(cve);
            }
        }
        all
    }
}

/// A network's abuse contact, for servers the registry does not attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkContact {
    pub prefix: IpNet,
    pub email: String,
    pub language: Language,
}

/// Abuse contacts by prefix (e.g. the RIPE `abuse-c` of each range), longest prefix wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkContacts {
    contacts: Vec<NetworkContact>,
}

impl NetworkContacts {
    /// Lines `PREFIX,ADDRESS[,LANGUAGE]`; `#` comments and blank lines are skipped. Every bad
    /// line is reported with its number.
    pub fn parse(text: &str) -> Result<NetworkContacts, NotifyError> {
        let mut contacts = Vec::new();
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let prefix = fields[0]
                .parse::<IpNet>()
                .or_else(|_| fields[0].parse::<IpAddr>().map(IpNet::from));
            match (prefix, fields.get(1), fields.len()) {
                (Ok(prefix), Some(email), 2..=3) if email.contains('@') => {
                    contacts.push(NetworkContact {
                        prefix: prefix.trunc(),
                        email: email.to_string(),
                        language: Language::from_tag(fields.get(2).copied()),
                    })
                }
                _ => problems.push(format!(
                    "line {}: expected PREFIX,ADDRESS[,LANGUAGE], got {line:?}",
                    i + 1
                )),
            }
        }
        if problems.is_empty() {
            Ok(NetworkContacts { contacts })
        } else {
            Err(NotifyError::InvalidInput(problems.join("; ")))
        }
    }

    /// The contact of the longest prefix holding `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&NetworkContact> {
        self.contacts
            .iter()
            .filter(|c| c.prefix.contains(&ip))
            .max_by_key(|c| c.prefix.prefix_len())
    }
}

/// What planning needs besides the observations.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    pub scan: ScanId,
    /// The scan's as-of date: support was judged on it, enforcement dates count from it.
    pub as_of: Date,
    /// The knowledge base that judged the scan, named in every bundle.
    pub knowledge_base: Option<KbRef>,
    /// The time of planning: the re-notification window counts back from it.
    pub now: OffsetDateTime,
    /// An unchanged finding told less than this long ago is not told again; once it is older,
    /// the still-open finding is told again as a reminder (CERT.at: 30 days).
    pub renotify_after: Duration,
    /// Also tell about supported, fully patched servers whose OWA or ECP answers from the
    /// Internet. Off by default: such a server is found only because OWA answers, so every one
    /// would be notified.
    pub exposure_alone: bool,
}

/// Bundles, and what was left out and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub scan: ScanId,
    #[serde(with = "iso_date")]
    pub as_of: Date,
    pub bundles: Vec<Bundle>,
    /// Affected servers neither the registry nor a network contact routes to anyone.
    pub unrouted: Vec<(IpAddr, u16)>,
    /// Affected servers left out by the suppression list.
    pub suppressed: usize,
    /// Affected servers told the same recipient within the window, unchanged.
    pub within_window: usize,
}

/// Builds one bundle per recipient from a scan's observations.
///
/// A server is affected when it is unsupported, ESU-only or vulnerable to a recorded CVE (and,
/// with `exposure_alone`, when OWA or ECP answers). It goes to the organisation the scan
/// attributed it to, if the registry still has it, else to the abuse contact of its network.
pub fn plan(
    config: &PlanConfig,
    observations: &[Observation],
    organisations: &[Organisation],
    contacts: &NetworkContacts,
    notified: &[NotifiedFinding],
    suppressions: &[Suppression],
) -> Plan {
    let organisations: HashMap<&str, &Organisation> =
        organisations.iter().map(|o| (o.id.as_str(), o)).collect();
    let suppressed_targets: Vec<&str> = suppressions.iter().map(|s| s.target.as_str()).collect();
    let suppressed_nets: Vec<IpNet> = suppressions
        .iter()
        .filter_map(|s| {
            s.target
                .parse::<IpNet>()
                .or_else(|_| s.target.parse::<IpAddr>().map(IpNet::from))
                .ok()
        })
        .collect();
    let last_told: HashMap<(&str, &FindingKey), OffsetDateTime> = notified
        .iter()
        .map(|n| ((n.recipient.as_str(), &n.finding), n.last_notified_at))
        .collect();

    let mut bundles: BTreeMap<String, Bundle> = BTreeMap::new();
    let mut plan = Plan {
        scan: config.scan,
        as_of: config.as_of,
        bundles: Vec::new(),
        unrouted: Vec::new(),
        suppressed: 0,
        within_window: 0,
    };
    for o in observations {
        let Some(mut finding) = finding(o, config) else {
            continue;
        };
        if suppressed_nets.iter().any(|net| net.contains(&o.ip)) {
            plan.suppressed += 1;
            continue;
        }
        let org = o
            .attribution
            .as_ref()
            .and_then(|a| organisations.get(a.organisation.as_str()));
        let recipient = match (org, contacts.lookup(o.ip)) {
            (Some(org), _) => Recipient {
                key: format!("organisation:{}", org.id),
                organisation: Some(org.id.clone()),
                name: org.name.clone(),
                email: org.abuse_contact.clone(),
                language: Language::from_tag(org.language.as_deref()),
                sector: Some(org.sector),
            },
            (None, Some(c)) => Recipient {
                key: format!("contact:{}", c.email),
                organisation: None,
                name: c.email.clone(),
                email: Some(c.email.clone()),
                language: c.language,
                sector: None,
            },
            (None, None) => {
                plan.unrouted.push((o.ip, o.port));
                continue;
            }
        };
        let by_name = [
            recipient.organisation.as_deref(),
            recipient.email.as_deref(),
        ];
        if by_name
            .into_iter()
            .flatten()
            .any(|t| suppressed_targets.contains(&t))
        {
            plan.suppressed += 1;
            continue;
        }
        if let Some(told) = last_told.get(&(recipient.key.as_str(), &finding.key())) {
            if config.now - *told < config.renotify_after {
                plan.within_window += 1;
                continue;
            }
            finding.reminder = true;
        }
        finding.sector = finding.sector.or(recipient.sector);
        bundles
            .entry(recipient.key.clone())
            .or_insert_with(|| Bundle {
                id: file_safe(&recipient.key),
                recipient,
                scan: config.scan,
                as_of: config.as_of,
                knowledge_base: config.knowledge_base.clone(),
                findings: Vec::new(),
            })
            .findings
            .push(finding);
    }
    plan.bundles = bundles.into_values().collect();
    for b in &mut plan.bundles {
        b.findings.sort_by_key(|f| (f.ip, f.port));
    }
    plan
}

/// The finding of one observation, or `None` when it is not affected.
fn finding(o: &Observation, config: &PlanConfig) -> Option<Finding> {
    let f = describe(o, config.as_of)?;
    let serious = f.reasons.iter().any(|r| {
        matches!(
            r,
            Reason::Unsupported | Reason::EsuOnly | Reason::VulnerableCves
        )
    });
    if f.reasons.is_empty() || (!serious && !config.exposure_alone) {
        return None;
    }
    Some(f)
}

/// What is known and wrong about one recognised Exchange server, whether or not it warrants
/// a notification (`reasons` is empty for a supported, patched server with OWA and ECP
/// unseen); `None` for anything else. Exports describe every server this way.
pub fn describe(o: &Observation, as_of: Date) -> Option<Finding> {
    let v = o.exchange.as_ref()?;
    let seen = |path: &str| {
        o.fingerprint
            .evidence
            .iter()
            .chain(&v.evidence)
            .any(|e| e.source.contains(path))
    };
    let web = matches!(o.scheme, Scheme::Http | Scheme::Https);
    let owa = web && seen("/owa");
    let ecp = web && seen("/ecp");
    let vulnerable_cves: Vec<String> = cves(v, CveStatus::Vulnerable);
    let mut reasons = Vec::new();
    if v.support == Support::Unsupported {
        reasons.push(Reason::Unsupported);
    }
    if v.esu_patched {
        reasons.push(Reason::EsuOnly);
    }
    if !vulnerable_cves.is_empty() {
        reasons.push(Reason::VulnerableCves);
    }
    if owa {
        reasons.push(Reason::OwaExposed);
    }
    if ecp {
        reasons.push(Reason::EcpExposed);
    }
    let mut actions = vec![match v.upgrade_path {
        Some(UpgradePath::InPlaceToSe) => Action::UpgradeInPlaceToSe,
        Some(UpgradePath::UpdateToCu14OrCu15ThenInPlaceToSe) => Action::UpdateCuThenInPlaceToSe,
        Some(UpgradePath::MigrationToSe) => Action::MigrateToSe,
        Some(UpgradePath::StayCurrent) => Action::InstallLatestUpdate,
        // Verdicts stored before upgrade paths existed: by family.
        None => match v.family {
            Family::Se => Action::InstallLatestUpdate,
            Family::E2019 => Action::UpdateCuThenInPlaceToSe,
            _ => Action::MigrateToSe,
        },
    }];
    if owa || ecp {
        actions.push(Action::RestrictOwaEcp);
    }
    let enforced = v.support == Support::Unsupported || !vulnerable_cves.is_empty();
    let (hostname, hostname_source) = hostname(o);
    let servername = o
        .fingerprint
        .of(Signal::FeServerHeader)
        .chain(o.fingerprint.of(Signal::NtlmNetbiosComputer))
        .map(|e| e.value.clone())
        .next();
    let asn = o.asn.or_else(|| {
        o.attribution
            .as_ref()
            .filter(|a| a.rule == AttributionRule::Asn)
            .and_then(|a| a.matched.trim_start_matches("AS").parse().ok())
    });
    let path = if owa || !ecp { "/owa/" } else { "/ecp/" };
    let url = match o.ip {
        IpAddr::V4(ip) => format!("{}://{ip}:{}{path}", o.scheme.as_str(), o.port),
        IpAddr::V6(ip) => format!("{}://[{ip}]:{}{path}", o.scheme.as_str(), o.port),
    };
    let mut f = Finding {
        ip: o.ip,
        port: o.port,
        scheme: o.scheme,
        observed_at: o.observed_at,
        hostname,
        hostname_source,
        servername,
        family: v.family,
        build: v.build,
        version_name: v.version_name.clone(),
        support: v.support,
        support_reason: v.support_reason,
        esu_patched: v.esu_patched,
        upgrade_path: v.upgrade_path,
        exploited_cves: v
            .cves
            .iter()
            .filter(|c| c.exploited && c.status == CveStatus::Vulnerable)
            .map(|c| (c.severity, c.cve.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|(_, cve)| cve)
            .collect(),
        vulnerable_cves,
        undetermined_cves: cves(v, CveStatus::Undetermined),
        exchange_online: v.exchange_online.clone(),
        url,
        sector: o.attribution.as_ref().map(|a| a.sector),
        asn,
        country: o.country.clone(),
        reasons,
        actions,
        enforcement: enforced.then(|| Enforcement::from(as_of)),
        evidence: v.evidence.clone(),
        fingerprint: String::new(),
        reminder: false,
    };
    f.fingerprint = fingerprint(&f);
    Some(f)
}

/// The CVEs of one status, exploited first, then the gravest, then by name.
fn cves(v: &surveyor_model::ExchangeVerdict, status: CveStatus) -> Vec<String> {
    let mut cves: Vec<_> = v.cves.iter().filter(|c| c.status == status).collect();
    cves.sort_by(|a, b| {
        (!a.exploited, a.severity, &a.cve).cmp(&(!b.exploited, b.severity, &b.cve))
    });
    cves.into_iter().map(|c| c.cve.clone()).collect()
}

fn hostname(o: &Observation) -> (Option<String>, Option<&'static str>) {
    if let Some(a) = o
        .attribution
        .as_ref()
        .filter(|a| a.rule == AttributionRule::PtrDomain)
    {
        return (Some(a.matched.clone()), Some("ptr"));
    }
    match o.tls.as_ref().and_then(|t| t.names.first()) {
        Some(name) => (Some(name.clone()), Some("certificate")),
        None => (None, None),
    }
}

/// What is wrong, not when it was seen: the same server in the same state in the next scan has
/// the same fingerprint.
fn fingerprint(f: &Finding) -> String {
    // By name, as before the lists were ordered by exploitation: reordering is no change.
    let mut vulnerable = f.vulnerable_cves.clone();
    vulnerable.sort();
    let mut h = Sha256::new();
    h.update(format!(
        "v1|{}|{}|{}|{}|{:?}|{}",
        f.family.as_str(),
        f.build,
        f.support.as_str(),
        f.esu_patched,
        f.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        vulnerable.join(",")
    ));
    hex(&h.finalize()[..16])
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_safe(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' => c,
            ':' => '-',
            _ => '_',
        })
        .collect()
}

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_follow_the_tag() {
        assert_eq!(Language::from_tag(Some("de")), Language::De);
        assert_eq!(Language::from_tag(Some("DE-at")), Language::De);
        assert_eq!(Language::from_tag(Some("en")), Language::En);
        assert_eq!(Language::from_tag(Some("fr")), Language::En);
        assert_eq!(Language::from_tag(None), Language::En);
    }

    #[test]
    fn network_contacts_take_the_longest_prefix_and_report_bad_lines() {
        let c = NetworkContacts::parse(
            "# isp\n192.0.2.0/24,abuse@isp.example,de\n192.0.2.128/25,noc@sub.example\n",
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            c.lookup(ip("192.0.2.5")).unwrap().email,
            "abuse@isp.example"
        );
        assert_eq!(c.lookup(ip("192.0.2.5")).unwrap().language, Language::De);
        assert_eq!(
            c.lookup(ip("192.0.2.200")).unwrap().email,
            "noc@sub.example"
        );
        assert!(c.lookup(ip("198.51.100.1")).is_none());
        let err = NetworkContacts::parse("192.0.2.0/24,abuse@x\nnot-a-prefix,a@b\n10.0.0.0/8\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("line 3"), "{err}");
        assert!(!err.contains("line 1"), "{err}");
    }

    #[test]
    fn bundle_ids_are_file_safe() {
        assert_eq!(
            file_safe("organisation:klinikum-a"),
            "organisation-klinikum-a"
        );
        assert_eq!(
            file_safe("contact:abuse@isp.example"),
            "contact-abuse_isp.example"
        );
        assert_eq!(file_safe("organisation:../x"), "organisation-.._x");
    }
}
