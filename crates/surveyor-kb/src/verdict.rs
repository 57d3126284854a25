//! From a host's raw signals to a verdict: family, most precise build, name, support.

use surveyor_model::{Build, ExchangeVerdict, Fingerprint, Signal};
use time::Date;

use crate::builds::BuildTable;
use crate::lifecycle::support_on;

/// Build-bearing signals, most trusted first. X-OWA-Version and the export-tool manifest give
/// the exact update level; the resource path gives only the CU (4 parts on 2007/2010).
const BUILD_SIGNALS: [Signal; 3] = [
    Signal::OwaVersionHeader,
    Signal::ExportToolManifest,
    Signal::OwaResourcePath,
];

/// Classifies a host as of `as_of`. Returns `None` unless an on-premises Exchange build was
/// observed: Exchange Online markers, or versions outside the known generations (15.20.x is
/// Exchange Online), rule a host out.
pub fn classify(
    fingerprint: &Fingerprint,
    table: &BuildTable,
    as_of: Date,
) -> Option<ExchangeVerdict> {
    if fingerprint.of(Signal::ExchangeOnline).next().is_some() {
        return None;
    }
    let observed: Vec<(Signal, Build)> = BUILD_SIGNALS
        .iter()
        .flat_map(|&signal| {
            fingerprint
                .of(signal)
                .filter_map(move |e| e.value.parse::<Build>().ok().map(|b| (signal, b)))
        })
        .filter(|(_, b)| b.family().is_some())
        .collect();
    // Most precise first; among equals, the order of BUILD_SIGNALS.
    let &(_, best) = observed
        .iter()
        .enumerate()
        .min_by_key(|(i, (_, b))| (!b.is_exact(), *i))
        .map(|(_, o)| o)?;
    let family = best.family()?;
    // Evidence is what agrees with the chosen build's CU, plus identity markers. A signal that
    // names another CU (a second backend behind one address) is left out of this verdict.
    let evidence = fingerprint
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
    Some(ExchangeVerdict {
        family,
        build: best,
        version_name: version_name(table, best),
        support: support_on(family, as_of),
        evidence,
    })
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

#[cfg(test)]
mod tests {
    use surveyor_model::{Family, Support};
    use time::macros::date;

    use super::*;

    /// The one place tests touch the classifier: signals in, (family, build, name, support) out.
    fn check(signals: &[(Signal, &str)], expected: Option<(Family, &str, &str, Support)>) {
        let mut fp = Fingerprint::default();
        for (signal, value) in signals {
            fp.push(*signal, "GET /test", *value);
        }
        let got = classify(&fp, BuildTable::builtin(), date!(2026 - 11 - 23))
            .map(|v| (v.family, v.build.to_string(), v.version_name, v.support));
        let expected = expected.map(|(f, b, n, s)| (f, b.to_string(), n.to_string(), s));
        assert_eq!(got, expected, "signals {signals:?}");
    }

    #[test]
    fn verdicts() {
        use Signal::*;
        use Support::*;
        check(
            &[
                (OwaVersionHeader, "15.1.2507.61"),
                (OwaResourcePath, "15.1.2507"),
            ],
            Some((
                Family::E2016,
                "15.1.2507.61",
                "Exchange Server 2016 CU23 Oct25SU",
                Unsupported,
            )),
        );
        check(
            &[(OwaResourcePath, "15.2.1748")],
            Some((
                Family::E2019,
                "15.2.1748",
                "Exchange Server 2019 CU15",
                Unsupported,
            )),
        );
        check(
            &[
                (OwaResourcePath, "15.2.2562"),
                (ExportToolManifest, "15.2.2562.29"),
            ],
            Some((
                Family::Se,
                "15.2.2562.29",
                "Exchange Server SE RTM Oct25SU",
                Supported,
            )),
        );
        check(
            &[(OwaVersionHeader, "15.02.2562.037")],
            Some((
                Family::Se,
                "15.2.2562.37",
                "Exchange Server SE RTM Feb26SU",
                Supported,
            )),
        );
        check(
            &[(OwaResourcePath, "14.3.123.4")],
            Some((
                Family::E2010,
                "14.3.123.4",
                "Exchange Server 2010 SP3",
                Unsupported,
            )),
        );
        // A revision the table lacks is named after the closest lower update.
        check(
            &[(OwaVersionHeader, "15.1.2507.62")],
            Some((
                Family::E2016,
                "15.1.2507.62",
                "Exchange Server 2016 CU23 Oct25SU",
                Unsupported,
            )),
        );
        check(
            &[(OwaVersionHeader, "15.2.858.1")],
            Some((
                Family::E2019,
                "15.2.858.1",
                "Exchange Server 2019 CU9 (update 15.2.858.1 not in the build table)",
                Unsupported,
            )),
        );
        check(
            &[(OwaResourcePath, "15.2.858")],
            Some((
                Family::E2019,
                "15.2.858",
                "Exchange Server 2019 CU9",
                Unsupported,
            )),
        );
        check(
            &[(OwaResourcePath, "15.1.9999")],
            Some((
                Family::E2016,
                "15.1.9999",
                "Exchange Server 2016 (build 15.1.9999 not in the build table)",
                Unsupported,
            )),
        );
        // Exchange Online and non-Exchange signals give no verdict.
        check(&[(OwaVersionHeader, "15.20.1240.20")], None);
        check(
            &[
                (OwaVersionHeader, "15.1.2507.61"),
                (ExchangeOnline, "outlook.com"),
            ],
            None,
        );
        check(&[(LogonPageMarker, "title")], None);
        check(&[(OwaVersionHeader, "garbage")], None);
        check(&[], None);
    }

    #[test]
    fn evidence_keeps_agreeing_signals_only() {
        let mut fp = Fingerprint::default();
        fp.push(Signal::OwaVersionHeader, "GET /owa/", "15.1.2507.61");
        fp.push(
            Signal::OwaResourcePath,
            "GET /owa/auth/logon.aspx",
            "15.1.2507",
        );
        fp.push(Signal::ExportToolManifest, "GET /ecp/...", "15.1.2375.37");
        fp.push(Signal::FeServerHeader, "GET /owa/", "EX16-01");
        let v = classify(&fp, BuildTable::builtin(), date!(2025 - 01 - 01)).unwrap();
        assert_eq!(v.support, Support::Supported);
        let kinds: Vec<_> = v.evidence.iter().map(|e| e.signal).collect();
        assert_eq!(
            kinds,
            [
                Signal::OwaVersionHeader,
                Signal::OwaResourcePath,
                Signal::FeServerHeader
            ]
        );
    }
}
