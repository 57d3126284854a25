//! From a host's raw signals to a verdict: family, most precise build, name, support, patch
//! level, upgrade path, CVE exposure, and the contradictions that betray honeypots.
//!
//! `docs/methodology.md` explains every rule here for the analysts who cite the results.

use surveyor_model::observation::{
    BuildPrecision, Confidence, CveExposure, CveStatus, ExchangeOnlineBar, PatchLevel,
    SupportReason, UpdateRef, UpgradePath,
};
use surveyor_model::{Build, ExchangeVerdict, Family, Fingerprint, Signal, Support};
use time::Date;

use crate::builds::{BuildInfo, BuildTable};
use crate::cves::CveFix;
use crate::knowledge::KnowledgeBase;

/// Build-bearing signals, most trusted first. X-OWA-Version and the export-tool manifest give
/// the exact update level; the resource path gives only the CU (4 parts on 2007/2010).
const BUILD_SIGNALS: [Signal; 3] = [
    Signal::OwaVersionHeader,
    Signal::ExportToolManifest,
    Signal::OwaResourcePath,
];

/// The marker every inconsistency that points at a honeypot ends with; it makes confidence low.
const HONEYPOT: &str = "(likely honeypot)";

/// Exchange 2019 CU14 is build 15.2.1544: from there the SE installer upgrades in place.
const E2019_CU14_BUILD: u32 = 1544;

/// Classifies a host as of `as_of` with the built-in lifecycle, ESU and CVE tables and the
/// given build table. Returns `None` unless an on-premises Exchange build was observed:
/// Exchange Online markers or builds (15.20 and later), or versions outside the known
/// generations, rule a host out.
pub fn classify(
    fingerprint: &Fingerprint,
    table: &BuildTable,
    as_of: Date,
) -> Option<ExchangeVerdict> {
    classify_with(fingerprint, table, KnowledgeBase::builtin(), as_of)
}

/// What the knowledge base says about one build as of a date, whatever signals showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub family: Family,
    pub build: Build,
    pub version_name: String,
    /// The CU's name; `None` when the build table does not know the CU.
    pub cu: Option<String>,
    pub precision: BuildPrecision,
    /// The build-table row that names the build: the exact row, or the closest lower update
    /// for a revision the table lacks. `None` for 3-part builds and unknown ones.
    pub row: Option<BuildInfo>,
    pub support: Support,
    pub support_reason: SupportReason,
    pub esu_patched: bool,
    pub patch_level: PatchLevel,
    pub upgrade_path: UpgradePath,
    pub cves: Vec<CveExposure>,
    pub exchange_online: Option<ExchangeOnlineBar>,
}

impl KnowledgeBase {
    /// Everything this knowledge base says about `build` as of `as_of`; `None` when the build
    /// is not an on-premises Exchange build.
    pub fn assess(&self, build: Build, as_of: Date) -> Option<Assessment> {
        assess_with(&self.builds, self, build, as_of)
    }
}

/// The name of a build: the exact update when known; the closest lower update for a revision
/// the table lacks; the CU for a 3-part build.
pub fn version_name(table: &BuildTable, build: Build) -> String {
    let product = build
        .family()
        .map_or("Exchange Server", |f| f.product_name());
    if let Some(info) = table.exact(build).or_else(|| table.closest_lower(build)) {
        return info.full_name();
    }
    match table.cu_name(build) {
        Some(cu) if build.is_exact() => format!("{cu} (update {build} not in the build table)"),
        Some(cu) => cu,
        None => format!("{product} (build {build} not in the build table)"),
    }
}

/// [`classify`] with the build table `builds` and every other fact from `kb`.
pub(crate) fn classify_with(
    fingerprint: &Fingerprint,
    builds: &BuildTable,
    kb: &KnowledgeBase,
    as_of: Date,
) -> Option<ExchangeVerdict> {
    if fingerprint.of(Signal::ExchangeOnline).next().is_some() {
        return None;
    }
    let parsed: Vec<(Signal, Build)> = BUILD_SIGNALS
        .iter()
        .flat_map(|&signal| {
            fingerprint
                .of(signal)
                .filter_map(move |e| e.value.parse::<Build>().ok().map(|b| (signal, b)))
        })
        .collect();
    // Exchange Online reports 15.20 and later; any such build means the answer came from the
    // cloud, whatever else the host showed.
    if parsed.iter().any(|(_, b)| is_exchange_online(*b)) {
        return None;
    }
    let observed: Vec<(Signal, Build)> = parsed
        .into_iter()
        .filter(|(_, b)| b.family().is_some())
        .collect();
    // Most precise first; among equals, the order of BUILD_SIGNALS.
    let &(_, best) = observed
        .iter()
        .enumerate()
        .min_by_key(|(i, (_, b))| (!b.is_exact(), *i))
        .map(|(_, o)| o)?;
    let assessment = assess_with(builds, kb, best, as_of)?;
    // Evidence is what agrees with the chosen build's CU, plus identity markers. A signal that
    // names another CU (a second backend behind one address) is left out of this verdict.
    let evidence: Vec<_> = fingerprint
        .evidence
        .iter()
        .filter(|e| match e.signal {
            s if BUILD_SIGNALS.contains(&s) => {
                e.value.parse::<Build>().is_ok_and(|b| b.cu() == best.cu())
            }
            _ => true,
        })
        .cloned()
        .collect();
    let mut inconsistencies = inconsistencies(fingerprint, &observed, assessment.family);
    let copied = copy_evidence(fingerprint);
    if !from_exchanges_own_endpoints(fingerprint) {
        // The build rests on a logon page alone, which anyone can copy. It counts while
        // nothing contradicts it; a honeypot's quirk, a form posting elsewhere, a page made
        // by PHP or Express, or a web server other than IIS that Exchange's own redirect to
        // its logon page does not vouch for, make it a copy.
        let honeypot = inconsistencies.iter().any(|i| i.ends_with(HONEYPOT));
        let proxied = fingerprint
            .of(Signal::OwaRedirect)
            .any(|e| to_the_logon_page(&e.value));
        let foreign = fingerprint
            .of(Signal::ServerHeader)
            .any(|e| !is_iis(&e.value));
        if honeypot || !copied.is_empty() || (foreign && !proxied) {
            return None;
        }
    }
    // Exchange's own endpoints answered: a real server, whose page someone may have altered.
    inconsistencies.extend(copied);
    let corroborating = evidence.iter().filter(|e| corroborates(e)).count();
    let confidence = confidence(assessment.precision, &inconsistencies, corroborating);
    Some(ExchangeVerdict {
        family: assessment.family,
        build: best,
        version_name: assessment.version_name,
        cu: assessment.cu,
        support: assessment.support,
        evidence,
        build_precision: Some(assessment.precision),
        confidence: Some(confidence),
        support_reason: Some(assessment.support_reason),
        esu_patched: assessment.esu_patched,
        patch_level: assessment.patch_level,
        upgrade_path: Some(assessment.upgrade_path),
        cves: assessment.cves,
        exchange_online: assessment.exchange_online,
        inconsistencies,
    })
}

fn is_exchange_online(build: Build) -> bool {
    build.major == 15 && build.minor >= 20
}

fn assess_with(
    builds: &BuildTable,
    kb: &KnowledgeBase,
    build: Build,
    as_of: Date,
) -> Option<Assessment> {
    let family = build.family()?;
    let cu_known = builds.cu_release(build).is_some();
    let precision = match (cu_known, build.is_exact()) {
        (false, _) => BuildPrecision::Family,
        (true, true) => BuildPrecision::Exact,
        (true, false) => BuildPrecision::Cu,
    };
    let row = build
        .is_exact()
        .then(|| builds.exact(build).or_else(|| builds.closest_lower(build)))
        .flatten()
        .cloned();
    let (support, support_reason) =
        if kb.lifecycle.support_on(family, as_of) == Support::Unsupported {
            (Support::Unsupported, SupportReason::ProductEndOfLife)
        } else if !cu_known {
            (Support::Supported, SupportReason::CuUnknown)
        } else if cu_in_servicing(builds, family, build, as_of) {
            (Support::Supported, SupportReason::Current)
        } else {
            (Support::Unsupported, SupportReason::CuOutOfServicing)
        };
    Some(Assessment {
        family,
        build,
        version_name: version_name(builds, build),
        cu: builds.cu_name(build),
        precision,
        support,
        support_reason,
        esu_patched: esu_patched(builds, kb, family, build),
        patch_level: patch_level(builds, family, build, precision, row.as_ref(), as_of),
        upgrade_path: upgrade_path(family, build),
        cves: cve_exposure(kb, family, build, as_of),
        exchange_online: kb.exchange_online.bar(build, as_of),
        row,
    })
}

/// Whether Microsoft still shipped updates for the CU of `build` on `as_of`, read from the
/// build table: the newest CU is serviced; an older CU is serviced while it receives the
/// family's newest security or hotfix update. 2007 and 2010 were serviced through rollups,
/// each its own build, so only the newest rollup counts.
fn cu_in_servicing(builds: &BuildTable, family: Family, build: Build, as_of: Date) -> bool {
    let released: Vec<&BuildInfo> = builds
        .family_rows(family)
        .filter(|r| r.available_by() <= as_of)
        .collect();
    let Some(newest_cu) = released.iter().map(|r| r.build.cu()).max() else {
        return true;
    };
    let cu = build.cu();
    if cu >= newest_cu {
        return true;
    }
    if matches!(family, Family::E2007 | Family::E2010) {
        return false;
    }
    let last_update = released
        .iter()
        .filter(|r| r.is_update())
        .map(|r| r.available_by())
        .max();
    let last_here = released
        .iter()
        .filter(|r| r.build.cu() == cu)
        .map(|r| r.available_by())
        .max();
    match (last_update, last_here) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(update), Some(here)) => here >= update,
    }
}

/// An update only the ESU programme delivers: on an eligible CU, released after the end of the
/// family's extended support, at or below the host's revision.
fn esu_patched(builds: &BuildTable, kb: &KnowledgeBase, family: Family, build: Build) -> bool {
    let (Some(revision), Some(end)) = (build.revision, kb.lifecycle.extended_end(family)) else {
        return false;
    };
    kb.esu.is_eligible(build)
        && builds
            .cu_rows(build)
            .any(|r| r.released_between.0 > end && r.build.revision <= Some(revision))
}

fn patch_level(
    builds: &BuildTable,
    family: Family,
    build: Build,
    precision: BuildPrecision,
    row: Option<&BuildInfo>,
    as_of: Date,
) -> PatchLevel {
    let out = |r: &&BuildInfo| r.available_by() <= as_of;
    let reference = |r: &BuildInfo| UpdateRef {
        build: r.build,
        name: r.full_name(),
        released: r.released,
    };
    let mut level = PatchLevel {
        newest_for_cu: (precision != BuildPrecision::Family)
            .then(|| builds.cu_rows(build).filter(out).last().map(reference))
            .flatten(),
        newest_for_family: builds.family_rows(family).filter(out).last().map(reference),
        ..PatchLevel::default()
    };
    if precision != BuildPrecision::Exact {
        return level;
    }
    // Conflicting rows name one update twice: the other variant is not a newer update.
    let installed = row.map(|r| r.name.as_str());
    let other = |r: &&BuildInfo| Some(r.name.as_str()) != installed;
    let since = |first_missing: Option<Date>| first_missing.map_or(0, |d| days_between(d, as_of));
    let first_missing_cu = builds
        .cu_rows(build)
        .filter(out)
        .filter(other)
        .filter(|r| r.build.revision > build.revision)
        .map(BuildInfo::available_by)
        .min();
    level.days_behind_cu = Some(since(first_missing_cu));
    // A revision below every known one dates from its CU's release.
    let installed_on = row
        .or_else(|| builds.cu_release(build))
        .map(BuildInfo::available_by);
    level.days_behind_family = installed_on.map(|installed_on| {
        since(
            builds
                .family_rows(family)
                .filter(out)
                .filter(other)
                .filter(|r| r.build > build && r.available_by() > installed_on)
                .map(BuildInfo::available_by)
                .min(),
        )
    });
    level
}

fn days_between(from: Date, to: Date) -> u32 {
    u32::try_from((to - from).whole_days().max(0)).unwrap_or(u32::MAX)
}

fn upgrade_path(family: Family, build: Build) -> UpgradePath {
    match family {
        Family::Se => UpgradePath::StayCurrent,
        Family::E2019 if build.build >= E2019_CU14_BUILD => UpgradePath::InPlaceToSe,
        Family::E2019 => UpgradePath::UpdateToCu14OrCu15ThenInPlaceToSe,
        _ => UpgradePath::MigrationToSe,
    }
}

/// The HealthChecker algorithm (exchange-fingerprinting.md §4): a CU with a fixed build is
/// vulnerable below it; a CU newer than every fixed one contains the fix; any other CU never
/// got it. Only CVEs published on or before `as_of` count.
fn cve_exposure(kb: &KnowledgeBase, family: Family, build: Build, as_of: Date) -> Vec<CveExposure> {
    let fixed = |f: &CveFix| {
        if f.config_dependent {
            CveStatus::FixedConfigDependent
        } else {
            CveStatus::Fixed
        }
    };
    let cu = build.cu();
    kb.cves
        .for_family(family)
        .into_iter()
        .filter(|(_, rows)| rows.iter().all(|f| f.published <= as_of))
        .map(|(cve, rows)| {
            let (status, fixed_in) = match rows.iter().find(|f| f.fixed.cu() == cu) {
                Some(f) => match build.revision {
                    Some(rev) if Some(rev) < f.fixed.revision => {
                        (CveStatus::Vulnerable, Some(f.fixed))
                    }
                    Some(_) => (fixed(f), Some(f.fixed)),
                    None => (CveStatus::Undetermined, Some(f.fixed)),
                },
                None => match rows.last() {
                    Some(newest) if cu > newest.fixed.cu() => (fixed(newest), None),
                    _ => (CveStatus::Vulnerable, None),
                },
            };
            CveExposure {
                cve: cve.to_string(),
                status,
                fixed_in,
                // Rows of one CVE come from one advisory; the gravest reading stands.
                severity: rows.iter().map(|f| f.severity).min().unwrap_or_default(),
                exploited: rows.iter().any(|f| f.exploited_in_the_wild == Some(true)),
            }
        })
        .collect()
}

/// Contradictions between signals, or between the build and the web server, as stable codes.
fn inconsistencies(
    fingerprint: &Fingerprint,
    observed: &[(Signal, Build)],
    family: Family,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for e in fingerprint.of(Signal::ServerHeader) {
        if let (Some(iis), Some(min)) = (iis_version(&e.value), min_iis(family)) {
            if iis < min {
                push(format!("iis-version-too-old-for-build {HONEYPOT}"));
            }
        }
        let lower = e.value.to_ascii_lowercase();
        if ["werkzeug", "gunicorn", "python"]
            .iter()
            .any(|p| lower.contains(p))
        {
            push(format!("server-is-a-python-web-server {HONEYPOT}"));
        }
    }
    for e in fingerprint.of(Signal::NtlmWindowsVersion) {
        if let (Some(windows), Some(min)) = (windows_version(&e.value), min_windows(family)) {
            if windows < min {
                push(format!("windows-version-too-old-for-build {HONEYPOT}"));
            }
        }
    }
    let cus = |signal: Signal| -> Vec<Build> {
        let mut v: Vec<Build> = observed
            .iter()
            .filter(|(s, _)| *s == signal)
            .map(|(_, b)| b.cu())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for signal in BUILD_SIGNALS {
        if cus(signal).len() > 1 {
            push(format!("{}-shows-several-cus", signal_name(signal)));
        }
    }
    let pairs = [
        (Signal::OwaVersionHeader, Signal::OwaResourcePath),
        (Signal::ExportToolManifest, Signal::OwaVersionHeader),
        (Signal::ExportToolManifest, Signal::OwaResourcePath),
    ];
    for (a, b) in pairs {
        let (ca, cb) = (cus(a), cus(b));
        if ca.iter().any(|x| cb.iter().any(|y| x != y)) {
            push(format!(
                "{}-cu-differs-from-{}",
                signal_name(a),
                signal_name(b)
            ));
        }
    }
    out
}

/// Signals only Exchange's own endpoints give: `X-OWA-Version`, `X-FEServer`, the export-tool
/// manifest, an NTLM challenge from EWS, RPC or MAPI. A copied logon page has none of them.
fn from_exchanges_own_endpoints(fingerprint: &Fingerprint) -> bool {
    fingerprint.evidence.iter().any(|e| {
        matches!(
            e.signal,
            Signal::OwaVersionHeader
                | Signal::FeServerHeader
                | Signal::ExportToolManifest
                | Signal::NtlmNetbiosComputer
                | Signal::NtlmNetbiosDomain
                | Signal::NtlmDnsComputer
                | Signal::NtlmDnsDomain
                | Signal::NtlmDnsTree
                | Signal::NtlmWindowsVersion
        )
    })
}

/// What marks a logon page as a copy (phishing kits): a form that does not post to
/// Exchange's handler, or a page made by an application stack that is not ASP.NET.
fn copy_evidence(fingerprint: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    let actions: Vec<&str> = fingerprint
        .of(Signal::LogonFormAction)
        .map(|e| e.value.as_str())
        .collect();
    if !actions.is_empty() && !actions.iter().any(|a| is_exchange_form_action(a)) {
        out.push("logon-form-posts-elsewhere".to_owned());
    }
    if fingerprint
        .of(Signal::PoweredByHeader)
        .any(|e| is_application_stack(&e.value))
    {
        out.push("page-powered-by-a-non-exchange-stack".to_owned());
    }
    out
}

/// Exchange's logon forms post to `/owa/auth.owa` (2013 and later), `owaauth.dll` (2007, 2010,
/// `/exchweb/bin/auth/` on 2003) or, published through ISA or TMG, `/CookieAuth.dll?Logon`.
/// The scanner records an absolute action on the host itself as its path, so any other
/// absolute action (a collector on another host) is not Exchange's.
fn is_exchange_form_action(action: &str) -> bool {
    let action = action.trim().to_ascii_lowercase();
    if action.contains("://") || action.starts_with("//") {
        return false;
    }
    let path = action.split(['?', '#']).next().unwrap_or("");
    path.ends_with("/owa/auth.owa")
        || path == "owaauth.dll"
        || path.ends_with("/owaauth.dll")
        || path.ends_with("/cookieauth.dll")
}

/// `X-Powered-By` values of application stacks that cannot have made an OWA page (IIS says
/// `ASP.NET`, and `ARR/3.0` when it proxies).
fn is_application_stack(powered_by: &str) -> bool {
    const STACKS: [&str; 10] = [
        "php", "express", "next.js", "nuxt", "servlet", "jsp", "django", "flask", "rails", "plesk",
    ];
    let lower = powered_by.to_ascii_lowercase();
    STACKS.iter().any(|s| lower.contains(s))
}

fn is_iis(server: &str) -> bool {
    server.starts_with("Microsoft-IIS/") || server.starts_with("Microsoft-HTTPAPI/")
}

/// Whether a `Location` from `/owa/` leads to Exchange's logon page (on whatever host).
fn to_the_logon_page(location: &str) -> bool {
    let rest = match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => location,
    };
    rest.to_ascii_lowercase()
        .starts_with("/owa/auth/logon.aspx")
}

/// Evidence that counts toward confidence: Exchange's signals, not what serves the page
/// (`Server`, `X-Powered-By`), not the form's action (part of the page already counted), and
/// a redirect only when it leads to the logon page.
fn corroborates(e: &surveyor_model::Evidence) -> bool {
    match e.signal {
        Signal::ServerHeader | Signal::PoweredByHeader | Signal::LogonFormAction => false,
        Signal::OwaRedirect => to_the_logon_page(&e.value),
        _ => true,
    }
}

/// `Microsoft-IIS/10.0` → (10, 0).
fn iis_version(server: &str) -> Option<(u32, u32)> {
    let rest = server
        .split_whitespace()
        .find_map(|token| token.strip_prefix("Microsoft-IIS/"))?;
    let (major, minor) = rest.split_once('.').unwrap_or((rest, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The oldest IIS a family runs on: 2016 needs Windows Server 2012 (IIS 8.0) or later; 2019
/// and SE need Windows Server 2019 (IIS 10.0) or later. Older families ran on IIS 7.5.
fn min_iis(family: Family) -> Option<(u32, u32)> {
    match family {
        Family::E2016 => Some((8, 0)),
        Family::E2019 | Family::Se => Some((10, 0)),
        _ => None,
    }
}

/// `10.0.17763` (the NTLM challenge's version field) → (10, 0, 17763).
fn windows_version(value: &str) -> Option<(u32, u32, u32)> {
    let mut parts = value.trim().split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The oldest Windows a family runs on, as the NTLM version field reports it: 2016 needs
/// Windows Server 2012 (6.2); 2019 and SE need Windows Server 2019 (10.0.17763).
fn min_windows(family: Family) -> Option<(u32, u32, u32)> {
    match family {
        Family::E2016 => Some((6, 2, 0)),
        Family::E2019 | Family::Se => Some((10, 0, 17763)),
        _ => None,
    }
}

fn signal_name(signal: Signal) -> &'static str {
    signal.as_str()
}

/// Low: only the family is known, or something points at a honeypot. Medium: other
/// contradictions, or a single signal with nothing to corroborate it. High: a known CU or
/// update seen with at least one more agreeing Exchange signal and no contradiction.
fn confidence(
    precision: BuildPrecision,
    inconsistencies: &[String],
    corroborating: usize,
) -> Confidence {
    if precision == BuildPrecision::Family || inconsistencies.iter().any(|i| i.ends_with(HONEYPOT))
    {
        Confidence::Low
    } else if !inconsistencies.is_empty() || corroborating < 2 {
        Confidence::Medium
    } else {
        Confidence::High
    }
}
