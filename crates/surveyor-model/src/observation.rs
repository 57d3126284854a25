//! What the scanner saw at one (address, port), and what the knowledge base made of it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::build::{Build, Family};

/// How far a probe got, in ZGrab2's vocabulary so that researchers can join our output with
/// theirs. Per-target failures are data, never errors that stop a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Success,
    ConnectionRefused,
    ConnectionTimeout,
    IoTimeout,
    TlsError,
    ProtocolError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::ConnectionRefused => "connection-refused",
            Status::ConnectionTimeout => "connection-timeout",
            Status::IoTimeout => "io-timeout",
            Status::TlsError => "tls-error",
            Status::ProtocolError => "protocol-error",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Success,
            Status::ConnectionRefused,
            Status::ConnectionTimeout,
            Status::IoTimeout,
            Status::TlsError,
            Status::ProtocolError,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// The application protocol spoken on the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
    /// SMTP with the banner, EHLO and, when offered, STARTTLS.
    Smtp,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Smtp => "smtp",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            "smtp" => Some(Scheme::Smtp),
            _ => None,
        }
    }
}

/// Which kind of signal a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// The `X-OWA-Version` response header: a 4-part build.
    OwaVersionHeader,
    /// A versioned OWA resource path on a page the host served (`/owa/auth/15.1.2507/...`).
    OwaResourcePath,
    /// The `version` of the ECP export-tool ClickOnce manifest: a 4-part build.
    ExportToolManifest,
    /// A marker of the OWA logon page (title, OwaPage comment, form action).
    LogonPageMarker,
    /// The `X-FEServer` header: the NetBIOS name of the Client Access front end.
    FeServerHeader,
    /// A marker of Exchange Online rather than an on-premises server.
    ExchangeOnline,
    /// The HTTP `Server` response header (`Microsoft-IIS/10.0`): not Exchange evidence by itself,
    /// but an IIS too old for the build a host claims betrays a honeypot.
    ServerHeader,
    /// From an NTLM challenge (MS-NLMP AV pairs): the server's NetBIOS name.
    NtlmNetbiosComputer,
    /// From an NTLM challenge: the NetBIOS domain.
    NtlmNetbiosDomain,
    /// From an NTLM challenge: the server's DNS name.
    NtlmDnsComputer,
    /// From an NTLM challenge: the AD DNS domain.
    NtlmDnsDomain,
    /// From an NTLM challenge: the AD forest.
    NtlmDnsTree,
    /// From an NTLM challenge's version field: the Windows build ("10.0.17763").
    NtlmWindowsVersion,
    /// The SMTP greeting (`220 … Microsoft ESMTP MAIL Service ready at …`).
    SmtpBanner,
    /// The extensions an SMTP server lists after EHLO, space separated.
    SmtpEhlo,
    /// Where `GET /owa/` redirects (its `Location` without the query): Exchange's logon page,
    /// or a portal in front of it (`/my.policy`, an identity provider).
    OwaRedirect,
    /// The `action` of the form on a page that looks like the OWA logon page: Exchange posts
    /// to `/owa/auth.owa` (2013 and later) or `owaauth.dll`; copies post elsewhere.
    LogonFormAction,
    /// The `X-Powered-By` response header (`ASP.NET` on IIS; `PHP/8.2.20` or `Express`
    /// betray a copied page).
    PoweredByHeader,
}

impl Signal {
    /// The kebab-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::OwaVersionHeader => "owa-version-header",
            Signal::OwaResourcePath => "owa-resource-path",
            Signal::ExportToolManifest => "export-tool-manifest",
            Signal::LogonPageMarker => "logon-page-marker",
            Signal::FeServerHeader => "fe-server-header",
            Signal::ExchangeOnline => "exchange-online",
            Signal::ServerHeader => "server-header",
            Signal::NtlmNetbiosComputer => "ntlm-netbios-computer",
            Signal::NtlmNetbiosDomain => "ntlm-netbios-domain",
            Signal::NtlmDnsComputer => "ntlm-dns-computer",
            Signal::NtlmDnsDomain => "ntlm-dns-domain",
            Signal::NtlmDnsTree => "ntlm-dns-tree",
            Signal::NtlmWindowsVersion => "ntlm-windows-version",
            Signal::SmtpBanner => "smtp-banner",
            Signal::SmtpEhlo => "smtp-ehlo",
            Signal::OwaRedirect => "owa-redirect",
            Signal::LogonFormAction => "logon-form-action",
            Signal::PoweredByHeader => "powered-by-header",
        }
    }
}

/// One signal, where it was seen, and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub signal: Signal,
    /// The request that produced it, e.g. `GET /owa/`.
    pub source: String,
    pub value: String,
}

/// The raw Exchange-related signals a host showed, before any interpretation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub evidence: Vec<Evidence>,
}

impl Fingerprint {
    pub fn push(&mut self, signal: Signal, source: impl Into<String>, value: impl Into<String>) {
        self.evidence.push(Evidence {
            signal,
            source: source.into(),
            value: value.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.evidence.is_empty()
    }

    pub fn of(&self, signal: Signal) -> impl Iterator<Item = &Evidence> {
        self.evidence.iter().filter(move |e| e.signal == signal)
    }
}

/// Support status of an Exchange build on a given date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Support {
    Supported,
    Unsupported,
}

impl Support {
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Supported => "supported",
            Support::Unsupported => "unsupported",
        }
    }

    pub fn parse(s: &str) -> Option<Support> {
        match s {
            "supported" => Some(Support::Supported),
            "unsupported" => Some(Support::Unsupported),
            _ => None,
        }
    }
}

impl std::str::FromStr for Support {
    type Err = String;

    fn from_str(s: &str) -> Result<Support, String> {
        Support::parse(s).ok_or_else(|| format!("{s:?} is neither supported nor unsupported"))
    }
}

/// The knowledge base's verdict on a recognised on-premises Exchange server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeVerdict {
    pub family: Family,
    /// The most precise build observed (4 parts when any source gave the revision).
    pub build: Build,
    /// e.g. "Exchange Server 2016 CU23 Oct25SU"; names only the CU when the update is unknown.
    pub version_name: String,
    /// The CU (or service pack rollup) the build belongs to, e.g. "Exchange Server 2016 CU23";
    /// `None` when the build table does not know it.
    #[serde(default)]
    pub cu: Option<String>,
    /// As of the date the verdict was made for.
    pub support: Support,
    /// The signals the verdict rests on.
    pub evidence: Vec<Evidence>,
    /// How much of the build was seen: the exact update, the CU only, or only the family.
    /// `None` only in verdicts stored before the field existed (so for all new fields).
    #[serde(default)]
    pub build_precision: Option<BuildPrecision>,
    /// How far the verdict can be trusted; the rule is in `docs/methodology.md`.
    #[serde(default)]
    pub confidence: Option<Confidence>,
    /// Why `support` is what it is.
    #[serde(default)]
    pub support_reason: Option<SupportReason>,
    /// The build is an update only the paid Extended Security Update programme delivers.
    #[serde(default)]
    pub esu_patched: bool,
    /// How far the build is behind the newest updates released on or before the as-of date.
    #[serde(default)]
    pub patch_level: PatchLevel,
    /// The way to a supported Exchange from this build.
    #[serde(default)]
    pub upgrade_path: Option<UpgradePath>,
    /// Exposure to the CVEs the knowledge base records for this family, as of the date.
    #[serde(default)]
    pub cves: Vec<CveExposure>,
    /// Exchange Online's minimum-update rule for OnPremises connectors, when one names the
    /// family by the date.
    #[serde(default)]
    pub exchange_online: Option<ExchangeOnlineBar>,
    /// Signals that contradict each other or the build, e.g.
    /// `iis-version-too-old-for-build (likely honeypot)`.
    #[serde(default)]
    pub inconsistencies: Vec<String>,
}

/// How much of a build a scan saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildPrecision {
    /// A 4-part build of a CU in the build table: the update level is known.
    Exact,
    /// A 3-part build (the logon page's resource path): the CU, not the update on it.
    Cu,
    /// A build whose CU the build table does not know: only the family is certain.
    Family,
}

impl BuildPrecision {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildPrecision::Exact => "exact",
            BuildPrecision::Cu => "cu",
            BuildPrecision::Family => "family",
        }
    }
}

/// How far a verdict can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// Why a verdict says supported or unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupportReason {
    /// The product is past the end of extended support (ESU or not).
    ProductEndOfLife,
    /// The product is supported, but Microsoft no longer ships updates for this CU.
    CuOutOfServicing,
    /// The product is supported and the CU is not in the build table: support follows the
    /// product.
    CuUnknown,
    /// The product is supported and the CU still receives updates.
    Current,
}

impl SupportReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SupportReason::ProductEndOfLife => "product-end-of-life",
            SupportReason::CuOutOfServicing => "cu-out-of-servicing",
            SupportReason::CuUnknown => "cu-unknown",
            SupportReason::Current => "current",
        }
    }
}

/// The way from a build to a supported Exchange Server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpgradePath {
    /// 2019 CU14 or CU15: the SE installer upgrades in place, like a CU.
    #[serde(rename = "in-place-to-se")]
    InPlaceToSe,
    /// 2019 before CU14: first CU14 or CU15, then in place to SE.
    #[serde(rename = "update-to-cu14-or-cu15-then-in-place-to-se")]
    UpdateToCu14OrCu15ThenInPlaceToSe,
    /// 2016 and older: a side-by-side migration to new SE servers.
    #[serde(rename = "migration-to-se")]
    MigrationToSe,
    /// SE: install every CU and SU as it ships.
    #[serde(rename = "stay-current")]
    StayCurrent,
}

impl UpgradePath {
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradePath::InPlaceToSe => "in-place-to-se",
            UpgradePath::UpdateToCu14OrCu15ThenInPlaceToSe => {
                "update-to-cu14-or-cu15-then-in-place-to-se"
            }
            UpgradePath::MigrationToSe => "migration-to-se",
            UpgradePath::StayCurrent => "stay-current",
        }
    }
}

/// A released build, by number and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRef {
    pub build: Build,
    /// e.g. "Exchange Server 2016 CU23 Oct25SU".
    pub name: String,
    /// Release date; `None` when the sources give only the month.
    #[serde(default, with = "iso_date::option")]
    pub released: Option<Date>,
}

/// How far a build is behind, counting only updates released on or before the as-of date.
///
/// `days_behind_*` count from the release of the oldest newer update the host lacks to the
/// as-of date (0 when none is missing); `None` when the update level is not known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchLevel {
    /// The newest update of the host's CU.
    #[serde(default)]
    pub newest_for_cu: Option<UpdateRef>,
    #[serde(default)]
    pub days_behind_cu: Option<u32>,
    /// The newest update of the host's family, on any CU.
    #[serde(default)]
    pub newest_for_family: Option<UpdateRef>,
    #[serde(default)]
    pub days_behind_family: Option<u32>,
}

/// How far behind the newest update of its own CU a server is, in the bands the census counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchBand {
    /// Has the newest update of its CU released on or before the as-of date.
    Current,
    /// Lacks an update released up to 90 days before the as-of date.
    Behind90d,
    /// Lacks an update released 91 to 365 days before.
    Behind1y,
    /// Lacks an update released more than a year before.
    BehindOver1y,
    /// The update level is not known (only the CU or the family was seen).
    Unknown,
}

impl PatchBand {
    pub const ALL: [PatchBand; 5] = [
        PatchBand::Current,
        PatchBand::Behind90d,
        PatchBand::Behind1y,
        PatchBand::BehindOver1y,
        PatchBand::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PatchBand::Current => "current",
            PatchBand::Behind90d => "behind-90d",
            PatchBand::Behind1y => "behind-1y",
            PatchBand::BehindOver1y => "behind-over-1y",
            PatchBand::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<PatchBand> {
        PatchBand::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

impl std::str::FromStr for PatchBand {
    type Err = String;

    fn from_str(s: &str) -> Result<PatchBand, String> {
        PatchBand::parse(s).ok_or_else(|| {
            let bands: Vec<_> = PatchBand::ALL.iter().map(|b| b.as_str()).collect();
            format!("unknown patch band {s:?} (known: {})", bands.join(", "))
        })
    }
}

impl PatchLevel {
    /// The band of `days_behind_cu`.
    pub fn band(&self) -> PatchBand {
        match self.days_behind_cu {
            None => PatchBand::Unknown,
            Some(0) => PatchBand::Current,
            Some(1..=90) => PatchBand::Behind90d,
            Some(91..=365) => PatchBand::Behind1y,
            Some(_) => PatchBand::BehindOver1y,
        }
    }
}

/// What a scan can say about one CVE on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CveStatus {
    /// The exact build is below the fix, or the host's CU never received one.
    Vulnerable,
    /// Only the CU is known and that CU received a fix: fixed only if the update is installed.
    Undetermined,
    /// The build contains the fix.
    Fixed,
    /// The build contains the fix, but it works only with a configuration a scan cannot see
    /// (Extended Protection, a setting override, manual steps).
    FixedConfigDependent,
}

impl CveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CveStatus::Vulnerable => "vulnerable",
            CveStatus::Undetermined => "undetermined",
            CveStatus::Fixed => "fixed",
            CveStatus::FixedConfigDependent => "fixed-config-dependent",
        }
    }
}

/// One CVE's status on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CveExposure {
    /// e.g. "CVE-2021-26855".
    pub cve: String,
    pub status: CveStatus,
    /// The first fixed build on the host's CU; `None` when the CU never received the fix or
    /// contains it from its release.
    #[serde(default)]
    pub fixed_in: Option<Build>,
    /// Microsoft's rating, where the knowledge base's sources give it.
    #[serde(default)]
    pub severity: Severity,
    /// Exploited in the wild (CISA KEV, or Microsoft's "Exploitation Detected"), as the
    /// knowledge base's sources say; `false` also when they do not say.
    #[serde(default)]
    pub exploited: bool,
}

/// Microsoft's severity rating of a CVE.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Critical,
    Important,
    Moderate,
    Low,
    /// Our sources do not give it.
    #[default]
    Unknown,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::Important,
        Severity::Moderate,
        Severity::Low,
        Severity::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Important => "important",
            Severity::Moderate => "moderate",
            Severity::Low => "low",
            Severity::Unknown => "unknown",
        }
    }
}

/// Exchange Online's bar for servers that send through an OnPremises connector, as of the
/// verdict's date: the lowest update of the server's CU it accepts mail from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeOnlineBar {
    /// The day the rule in force took effect.
    #[serde(with = "iso_date")]
    pub since: Date,
    /// The update the rule requires, e.g. `Oct25SU`.
    pub minimum_update: String,
    /// Whether the build meets it; `None` when only the CU is known.
    pub meets: Option<bool>,
}

// Dates in verdicts are `YYYY-MM-DD`, as everywhere in Surveyor's output.
time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// What the TLS handshake showed. The certificate is recorded, never trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub cert_sha256: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// DNS names from the subject alternative name extension.
    pub names: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<time::OffsetDateTime>,
}

/// One (address, port) that a scan reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub ip: IpAddr,
    pub port: u16,
    pub scheme: Scheme,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    pub status: Status,
    /// A short, stable description of what failed, when `status` is not `success`.
    pub error: Option<String>,
    pub tls: Option<TlsInfo>,
    /// The HTTP `Server` header of the first response, if any.
    pub http_server: Option<String>,
    /// Raw Exchange signals; empty when the host showed none.
    pub fingerprint: Fingerprint,
    /// `null` unless an on-premises Exchange server was recognised.
    pub exchange: Option<ExchangeVerdict>,
    /// The organisation the server belongs to, by the registry the scan ran with; `null`
    /// when no registry was loaded or none of its rules matched.
    #[serde(default)]
    pub attribution: Option<crate::registry::Attribution>,
    /// The autonomous system announcing the address, by the routing table the scan ran with;
    /// `null` without one or when no prefix holds the address.
    #[serde(default)]
    pub asn: Option<u32>,
    /// Where the address is registered (ISO 3166-1 alpha-2): the country table's range, else
    /// the attributed organisation's country; `null` when neither says.
    #[serde(default)]
    pub country: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_and_patch_bands_parse_from_their_names_or_say_what_they_take() {
        for support in [Support::Supported, Support::Unsupported] {
            assert_eq!(support.as_str().parse(), Ok(support));
        }
        for band in PatchBand::ALL {
            assert_eq!(band.as_str().parse(), Ok(band));
        }
        assert_eq!(
            "maybe".parse::<Support>(),
            Err("\"maybe\" is neither supported nor unsupported".to_string())
        );
        assert_eq!(
            "stale".parse::<PatchBand>(),
            Err(
                "unknown patch band \"stale\" (known: current, behind-90d, behind-1y, \
                 behind-over-1y, unknown)"
                    .to_string()
            )
        );
    }

    #[test]
    fn signal_names_match_their_json() {
        use Signal::*;
        for s in [
            OwaVersionHeader,
            OwaResourcePath,
            ExportToolManifest,
            LogonPageMarker,
            FeServerHeader,
            ExchangeOnline,
            ServerHeader,
            NtlmNetbiosComputer,
            NtlmNetbiosDomain,
            NtlmDnsComputer,
            NtlmDnsDomain,
            NtlmDnsTree,
            NtlmWindowsVersion,
            SmtpBanner,
            SmtpEhlo,
            OwaRedirect,
            LogonFormAction,
            PoweredByHeader,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(Scheme::parse("smtp"), Some(Scheme::Smtp));
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            Status::Success,
            Status::ConnectionRefused,
            Status::ConnectionTimeout,
            Status::IoTimeout,
            Status::TlsError,
            Status::ProtocolError,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("timeout"), None);
    }

    #[test]
    fn verdicts_stored_before_the_census_fields_still_read() {
        let old = r#"{"family":"2016","build":"15.1.2507.61",
            "version_name":"Exchange Server 2016 CU23 Oct25SU","support":"unsupported",
            "evidence":[{"signal":"owa-version-header","source":"GET /owa/","value":"15.1.2507.61"}]}"#;
        let v: ExchangeVerdict = serde_json::from_str(old).unwrap();
        assert_eq!(v.build_precision, None);
        assert!(!v.esu_patched);
        assert_eq!(v.patch_level, PatchLevel::default());
        assert!(v.cves.is_empty() && v.inconsistencies.is_empty());
    }

    #[test]
    fn census_fields_serialize_in_kebab_case() {
        let v = ExchangeVerdict {
            family: Family::E2019,
            build: "15.2.1748.42".parse().unwrap(),
            version_name: "Exchange Server 2019 CU15 Dec25SU".into(),
            cu: Some("Exchange Server 2019 CU15".into()),
            support: Support::Unsupported,
            evidence: vec![Evidence {
                signal: Signal::ServerHeader,
                source: "GET /owa/".into(),
                value: "Microsoft-IIS/10.0".into(),
            }],
            build_precision: Some(BuildPrecision::Exact),
            confidence: Some(Confidence::Medium),
            support_reason: Some(SupportReason::ProductEndOfLife),
            esu_patched: true,
            patch_level: PatchLevel {
                newest_for_cu: Some(UpdateRef {
                    build: "15.2.1748.53".parse().unwrap(),
                    name: "Exchange Server 2019 CU15 Sep26SUv2".into(),
                    released: None,
                }),
                days_behind_cu: Some(200),
                newest_for_family: Some(UpdateRef {
                    build: "15.2.1748.49".parse().unwrap(),
                    name: "Exchange Server 2019 CU15 Aug26SU".into(),
                    released: Some(time::macros::date!(2026 - 08 - 11)),
                }),
                days_behind_family: None,
            },
            upgrade_path: Some(UpgradePath::UpdateToCu14OrCu15ThenInPlaceToSe),
            cves: vec![CveExposure {
                cve: "CVE-2026-21527".into(),
                status: CveStatus::FixedConfigDependent,
                fixed_in: Some("15.2.1748.43".parse().unwrap()),
                severity: Severity::Important,
                exploited: true,
            }],
            exchange_online: Some(ExchangeOnlineBar {
                since: time::macros::date!(2026 - 09 - 08),
                minimum_update: "Oct25SU".into(),
                meets: Some(true),
            }),
            inconsistencies: vec!["owa-version-header-shows-several-cus".into()],
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["evidence"][0]["signal"], "server-header");
        assert_eq!(json["build_precision"], "exact");
        assert_eq!(json["confidence"], "medium");
        assert_eq!(json["support_reason"], "product-end-of-life");
        assert_eq!(json["esu_patched"], true);
        assert_eq!(
            json["upgrade_path"],
            "update-to-cu14-or-cu15-then-in-place-to-se"
        );
        assert_eq!(
            json["patch_level"]["newest_for_cu"]["released"],
            serde_json::Value::Null
        );
        assert_eq!(
            json["patch_level"]["newest_for_family"]["released"],
            "2026-08-11"
        );
        assert_eq!(json["cves"][0]["status"], "fixed-config-dependent");
        assert_eq!(json["cves"][0]["fixed_in"], "15.2.1748.43");
        assert_eq!(json["cves"][0]["severity"], "important");
        assert_eq!(json["exchange_online"]["since"], "2026-09-08");
        let back: ExchangeVerdict = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }
}
