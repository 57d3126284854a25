//! The verdict table: fingerprint signals in, verdict fields out, one case per line.
//!
//! Every case goes through [`check`], the only code here that touches the API, so the API can
//! change without rewriting the table. Expectations are `key=value` lines the rendered verdict
//! must contain, or `!key` for a key it must not have; `none` means no verdict at all.

use surveyor_kb::{classify, BuildTable};
use surveyor_model::{ExchangeVerdict, Fingerprint, Signal};
use time::macros::date;
use time::Date;

use Signal::{
    ExchangeOnline as Exo, ExportToolManifest as Manifest, FeServerHeader as FeServer,
    LogonFormAction as Action, LogonPageMarker as Logon, NtlmDnsDomain as AdDomain,
    NtlmWindowsVersion as Windows, OwaRedirect as Redirect, OwaResourcePath as Path,
    OwaVersionHeader as Header, PoweredByHeader as Powered, ServerHeader as Server,
};

/// The census date most cases are judged on: the day of the newest release in the data when
/// these cases were written (Sep26SUv2). Updates released later never change a verdict made
/// for an earlier day, so adding the next security update changes nothing here.
const D: Date = date!(2026 - 10 - 02);

/// Signals (all seen by `GET /test`) in; the expected `key=value` lines, `;`-separated, out.
fn check(as_of: Date, signals: &[(Signal, &str)], expected: &str) {
    let mut fp = Fingerprint::default();
    for (signal, value) in signals {
        fp.push(*signal, "GET /test", *value);
    }
    let got = render(classify(&fp, BuildTable::builtin(), as_of));
    for want in expected.split(';').map(str::trim).filter(|w| !w.is_empty()) {
        let ok = match want.strip_prefix('!') {
            Some(key) => !got
                .iter()
                .any(|line| line == key || line.starts_with(&format!("{key}="))),
            None => got.iter().any(|line| line == want),
        };
        assert!(
            ok,
            "as of {as_of}, signals {signals:?}: expected {want:?} in\n{}",
            got.join("\n")
        );
    }
}

/// A verdict as `key=value` lines.
fn render(verdict: Option<ExchangeVerdict>) -> Vec<String> {
    let Some(v) = verdict else {
        return vec!["none".into()];
    };
    let opt = |o: Option<String>| o.unwrap_or_else(|| "none".into());
    let mut lines = vec![
        format!("family={}", v.family),
        format!("build={}", v.build),
        format!("name={}", v.version_name),
        format!("support={}", v.support.as_str()),
        format!(
            "reason={}",
            opt(v.support_reason.map(|r| r.as_str().into()))
        ),
        format!(
            "precision={}",
            opt(v.build_precision.map(|p| p.as_str().into()))
        ),
        format!(
            "confidence={}",
            opt(v.confidence.map(|c| c.as_str().into()))
        ),
        format!("esu={}", v.esu_patched),
        format!("upgrade={}", opt(v.upgrade_path.map(|u| u.as_str().into()))),
        format!(
            "cu-newest={}",
            opt(v.patch_level.newest_for_cu.map(|u| u.build.to_string()))
        ),
        format!(
            "cu-behind={}",
            opt(v.patch_level.days_behind_cu.map(|d| d.to_string()))
        ),
        format!(
            "family-newest={}",
            opt(v.patch_level.newest_for_family.map(|u| u.build.to_string()))
        ),
        format!(
            "family-behind={}",
            opt(v.patch_level.days_behind_family.map(|d| d.to_string()))
        ),
        format!("cves={}", v.cves.len()),
        format!(
            "evidence={}",
            v.evidence
                .iter()
                .map(|e| serde_signal(e.signal))
                .collect::<Vec<_>>()
                .join(",")
        ),
    ];
    for c in &v.cves {
        lines.push(format!("cve:{}={}", c.cve, c.status.as_str()));
        if let Some(b) = c.fixed_in {
            lines.push(format!("fixed-in:{}={b}", c.cve));
        }
    }
    lines.extend(
        v.inconsistencies
            .iter()
            .map(|i| format!("inconsistency={i}")),
    );
    lines
}

/// Short names keep the expectations readable.
fn serde_signal(s: Signal) -> String {
    match s {
        Signal::OwaVersionHeader => "header",
        Signal::OwaResourcePath => "path",
        Signal::ExportToolManifest => "manifest",
        Signal::LogonPageMarker => "logon",
        Signal::FeServerHeader => "fe-server",
        Signal::ServerHeader => "server",
        other => other.as_str(),
    }
    .into()
}

#[test]
fn honeypots() {
    // joda32/owa-honeypot: a real 2016 CU9 page served with `Server: Microsoft-IIS/7.5`. With
    // nothing from Exchange's own endpoints, the page is all there is, and it is a copy.
    check(
        D,
        &[
            (Path, "15.1.1466"),
            (Logon, "title"),
            (Server, "Microsoft-IIS/7.5"),
        ],
        "none",
    );
    check(
        D,
        &[
            (Path, "15.1.1466"),
            (Logon, "title"),
            (Server, "gunicorn/19.9.0"),
        ],
        "none",
    );
    // A honeypot that also fakes an Exchange header is counted, low, with the reason.
    check(
        D,
        &[
            (Path, "15.1.1466"),
            (Logon, "title"),
            (FeServer, "EXCH01"),
            (Server, "Microsoft-IIS/7.5"),
        ],
        "family=2016; build=15.1.1466; precision=cu; confidence=low; \
         inconsistency=iis-version-too-old-for-build (likely honeypot)",
    );
    check(
        D,
        &[
            (Path, "15.1.1466"),
            (Logon, "title"),
            (FeServer, "EXCH01"),
            (Server, "gunicorn/19.9.0"),
        ],
        "confidence=low; inconsistency=server-is-a-python-web-server (likely honeypot)",
    );
    // The same page on a plausible IIS is a real (old) server.
    check(
        D,
        &[
            (Path, "15.1.1466"),
            (Logon, "title"),
            (Server, "Microsoft-IIS/10.0"),
        ],
        "confidence=high; !inconsistency; evidence=path,logon,server",
    );
    check(
        D,
        &[(Header, "15.2.1748.39"), (FeServer, "EX19"), (Server, "Microsoft-IIS/8.5")],
        "family=2019; confidence=low; inconsistency=iis-version-too-old-for-build (likely honeypot)",
    );
    check(
        D,
        &[
            (Header, "15.1.2507.61"),
            (FeServer, "EX16"),
            (Server, "Microsoft-IIS/8.5"),
        ],
        "family=2016; confidence=high; !inconsistency",
    );
    check(
        D,
        &[
            (Header, "15.2.2562.37"),
            (FeServer, "EXSE"),
            (Server, "Microsoft-IIS/10.0"),
        ],
        "family=SE; confidence=high; !inconsistency",
    );
    // The NTLM challenge names the Windows build: 2019 needs Windows Server 2019 (10.0.17763).
    check(
        D,
        &[
            (Header, "15.2.1748.39"),
            (FeServer, "EX19"),
            (Windows, "6.1.7601"),
        ],
        "confidence=low; inconsistency=windows-version-too-old-for-build (likely honeypot)",
    );
    check(
        D,
        &[
            (Header, "15.2.1748.39"),
            (FeServer, "EX19"),
            (Windows, "10.0.17763"),
        ],
        "confidence=high; !inconsistency",
    );
    check(
        D,
        &[(Header, "15.1.2507.61"), (Windows, "6.3.9600")],
        "!inconsistency",
    );
    // 2013 ran on Windows Server 2008 R2: IIS 7.5 is plausible there.
    check(
        D,
        &[
            (Path, "15.0.1497"),
            (Logon, "title"),
            (Server, "Microsoft-IIS/7.5"),
        ],
        "family=2013; confidence=high; !inconsistency",
    );
}

#[test]
fn no_build_evidence_no_verdict() {
    // A phishing copy hot-links the victim's resources: the scanner attributes no build to the
    // copying host, so all that is left is the look of a logon page.
    check(D, &[(Logon, "title")], "none");
    check(D, &[(Logon, "title"), (FeServer, "WEB01")], "none");
    check(D, &[(Server, "Microsoft-IIS/10.0")], "none");
    check(D, &[], "none");
    check(D, &[(Header, "garbage")], "none");
    check(D, &[(Header, "16.0.1.1")], "none");
}

#[test]
fn reverse_proxies_and_single_signals() {
    // The proxy replaced the logon page and stripped headers; the manifest still tells.
    check(
        D,
        &[(Manifest, "15.2.1748.39")],
        "family=2019; build=15.2.1748.39; name=Exchange Server 2019 CU15 Oct25SU; \
         precision=exact; confidence=medium",
    );
    check(
        D,
        &[(Manifest, "15.2.1748.39"), (FeServer, "EX19-01")],
        "confidence=high; evidence=manifest,fe-server",
    );
    check(
        D,
        &[(Header, "15.1.2507.61")],
        "precision=exact; confidence=medium",
    );
    check(D, &[(Path, "15.2.1748")], "precision=cu; confidence=medium");
    check(
        D,
        &[(Path, "15.2.1748"), (Logon, "title")],
        "precision=cu; confidence=high",
    );
    check(
        D,
        &[
            (Header, "15.1.2507.61"),
            (Path, "15.1.2507"),
            (FeServer, "EX16-01"),
        ],
        "build=15.1.2507.61; confidence=high; evidence=header,path,fe-server",
    );
}

#[test]
fn exchange_online_is_never_on_premises() {
    check(D, &[(Header, "15.20.1240.20")], "none");
    check(D, &[(Header, "15.1.2507.61"), (Exo, "outlook.com")], "none");
    check(
        D,
        &[
            (Header, "15.20.8722.31"),
            (Path, "15.1.2507"),
            (Logon, "title"),
        ],
        "none",
    );
    check(D, &[(Manifest, "15.20.8722.31")], "none");
}

#[test]
fn build_forms_and_naming() {
    // Off by one revision: the closest lower update names it.
    check(
        D,
        &[(Header, "15.1.2507.62")],
        "build=15.1.2507.62; name=Exchange Server 2016 CU23 Oct25SU; precision=exact; esu=false",
    );
    check(
        D,
        &[(Manifest, "15.1.2242.5")],
        "name=Exchange Server 2016 CU20; precision=exact",
    );
    check(
        D,
        &[(Header, "15.2.858.1")],
        "name=Exchange Server 2019 CU9 (update 15.2.858.1 not in the build table); precision=exact",
    );
    check(
        D,
        &[(Header, "15.2.858.2")],
        // The alias row's name carries a `;`, which this table cannot spell.
        "build=15.2.858.2; precision=exact; cu-newest=15.2.858.15; fixed-in:CVE-2021-34473=15.2.858.10",
    );
    // Zero-padded long forms.
    check(
        D,
        &[(Header, "15.02.2562.037")],
        "family=SE; build=15.2.2562.37; name=Exchange Server SE RTM Feb26SU",
    );
    check(
        D,
        &[(Header, "15.01.2507.061")],
        "build=15.1.2507.61; name=Exchange Server 2016 CU23 Oct25SU",
    );
    // CU only.
    check(
        D,
        &[(Path, "15.2.858")],
        "name=Exchange Server 2019 CU9; precision=cu; cu-behind=none; family-behind=none; \
         cu-newest=15.2.858.15",
    );
    // 2007 and 2010 show 4-part builds in their paths.
    check(
        D,
        &[(Path, "14.3.123.3"), (Logon, "Outlook Web App")],
        "family=2010; name=Exchange Server 2010 SP3 (update 14.3.123.3 not in the build table); \
         precision=exact; upgrade=migration-to-se",
    );
    check(
        D,
        &[(Path, "14.3.169.1"), (Logon, "Outlook Web App")],
        "name=Exchange Server 2010 SP3 RU3; precision=exact; confidence=high",
    );
    check(
        D,
        &[(Path, "8.3.485.1")],
        "family=2007; name=Exchange Server 2007 SP3 RU21; precision=exact; \
         reason=product-end-of-life; cves=0; cu-newest=8.3.485.1; family-newest=8.3.517.0",
    );
    // 2007 RTM and SP1 rows, the last SP1 rollup among them, carry their sources' doubt.
    check(
        D,
        &[(Path, "8.1.436.0")],
        "family=2007; name=Exchange Server 2007 SP1 RU10; precision=exact; \
         reason=product-end-of-life; family-newest=8.3.517.0",
    );
    // A 2007 build of no known release keeps its family and says so.
    check(
        D,
        &[(Path, "8.1.999.0")],
        "family=2007; name=Exchange Server 2007 (build 8.1.999.0 not in the build table); \
         reason=product-end-of-life",
    );
    // Unknown builds keep their family and say they are unknown.
    check(
        D,
        &[(Path, "15.1.9999")],
        "family=2016; name=Exchange Server 2016 (build 15.1.9999 not in the build table); \
         precision=family; confidence=low",
    );
    check(
        D,
        &[(Header, "15.2.2600.5"), (FeServer, "EXSE")],
        "family=SE; precision=family; confidence=low; support=supported; reason=cu-unknown",
    );
}

#[test]
fn support_by_product_and_cu() {
    check(
        D,
        &[(Header, "15.1.2507.61")],
        "support=unsupported; reason=product-end-of-life; upgrade=migration-to-se",
    );
    check(
        date!(2025 - 10 - 14),
        &[(Header, "15.2.1544.36")],
        "support=supported; reason=current",
    );
    check(
        date!(2025 - 10 - 15),
        &[(Header, "15.2.1748.39")],
        "support=unsupported; reason=product-end-of-life",
    );
    // Microsoft services the newest CU and the one before; the data shows which got updates.
    check(
        date!(2024 - 06 - 01),
        &[(Header, "15.2.1118.40")],
        "support=unsupported; reason=cu-out-of-servicing",
    );
    check(
        date!(2024 - 06 - 01),
        &[(Header, "15.2.1258.34")],
        "support=supported; reason=current",
    );
    check(
        date!(2023 - 02 - 01),
        &[(Header, "15.1.2375.37")],
        "support=unsupported; reason=cu-out-of-servicing",
    );
    check(
        date!(2022 - 12 - 01),
        &[(Header, "15.1.2375.37")],
        "support=supported; reason=current",
    );
    check(
        date!(2023 - 04 - 11),
        &[(Header, "15.0.1497.48")],
        "support=supported; reason=current",
    );
    check(
        date!(2022 - 01 - 01),
        &[(Path, "15.0.1473")],
        "support=unsupported; reason=cu-out-of-servicing",
    );
    // 2010 was serviced by rollups: only the newest one counts.
    check(
        date!(2020 - 06 - 01),
        &[(Path, "14.3.496.0")],
        "support=supported; reason=current",
    );
    check(
        date!(2020 - 06 - 01),
        &[(Path, "14.3.468.0")],
        "support=unsupported; reason=cu-out-of-servicing",
    );
    check(
        D,
        &[(Header, "15.2.2562.17")],
        "support=supported; reason=current; upgrade=stay-current",
    );
}

#[test]
fn esu_builds() {
    check(
        D,
        &[(Header, "15.1.2507.63")],
        "name=Exchange Server 2016 CU23 Dec25SU; esu=true; support=unsupported; \
         reason=product-end-of-life; cve:CVE-2025-64666=fixed",
    );
    check(
        D,
        &[(Header, "15.2.1544.48")],
        "name=Exchange Server 2019 CU14 Sep26SUv2; esu=true; upgrade=in-place-to-se; cu-behind=0",
    );
    check(
        D,
        &[(Header, "15.2.1748.42")],
        "esu=true; cve:CVE-2026-21527=vulnerable; fixed-in:CVE-2026-21527=15.2.1748.43",
    );
    check(
        D,
        &[(Header, "15.1.2507.61")],
        "esu=false; cve:CVE-2025-64666=vulnerable; fixed-in:CVE-2025-64666=15.1.2507.63",
    );
    check(
        D,
        &[(Header, "15.2.1258.39")],
        "esu=false; upgrade=update-to-cu14-or-cu15-then-in-place-to-se; \
         cve:CVE-2025-53786=vulnerable; !fixed-in:CVE-2025-53786",
    );
    // The CU alone cannot show an ESU update.
    check(D, &[(Path, "15.1.2507")], "esu=false");
}

#[test]
fn patch_levels() {
    check(
        D,
        &[(Header, "15.2.2562.37")],
        "cu-newest=15.2.2562.53; cu-behind=148; family-newest=15.2.2562.53; family-behind=148",
    );
    // Only updates released on or before the as-of date count.
    check(
        date!(2026 - 05 - 01),
        &[(Header, "15.2.2562.37")],
        "cu-newest=15.2.2562.37; cu-behind=0; family-behind=0; !cve:CVE-2026-45500",
    );
    check(
        D,
        &[(Header, "15.2.1544.36")],
        "cu-newest=15.2.1544.48; cu-behind=297; family-newest=15.2.1748.53; family-behind=297",
    );
    // Fully patched CU13, but CU15 has existed since 2025-02-10.
    check(
        D,
        &[(Header, "15.2.1258.39")],
        "cu-newest=15.2.1258.39; cu-behind=0; family-behind=599",
    );
    check(
        D,
        &[(Header, "15.1.2507.61")],
        "cu-newest=15.1.2507.75; cu-behind=297; family-behind=297",
    );
    check(
        D,
        &[(Header, "15.2.2562.53")],
        "cu-behind=0; family-behind=0; cve:CVE-2026-62915=fixed",
    );
    // The two variants of a conflicting update are one update, not one behind the other.
    check(
        D,
        &[(Header, "15.1.1415.8")],
        "name=Exchange Server 2016 CU8 Mar21SU; cu-behind=0",
    );
    check(
        D,
        &[(Header, "15.1.1415.10")],
        "name=Exchange Server 2016 CU8 Mar21SU; cu-behind=0",
    );
}

#[test]
fn cve_exposure() {
    // ProxyLogon on CU18: fixed by its Mar21SU; ProxyShell was never shipped for CU18.
    check(
        D,
        &[(Header, "15.1.2106.13")],
        "cve:CVE-2021-26855=fixed; cve:CVE-2021-34473=vulnerable; !fixed-in:CVE-2021-34473",
    );
    check(
        D,
        &[(Header, "15.1.2106.8")],
        "cve:CVE-2021-26855=vulnerable; fixed-in:CVE-2021-26855=15.1.2106.13",
    );
    // CU20 shipped with the ProxyLogon fix but needs Apr21SU for ProxyShell.
    check(
        D,
        &[(Header, "15.1.2242.4")],
        "cve:CVE-2021-26855=fixed; !fixed-in:CVE-2021-26855; cve:CVE-2021-34473=vulnerable",
    );
    // CU only: fixed only if the update is installed.
    check(
        D,
        &[(Path, "15.1.2375")],
        "cve:CVE-2022-41082=undetermined; fixed-in:CVE-2022-41082=15.1.2375.37; \
         cve:CVE-2023-21529=vulnerable; cve:CVE-2021-26855=fixed",
    );
    check(
        D,
        &[(Path, "15.2.1748")],
        "cve:CVE-2025-59249=undetermined; cve:CVE-2021-26855=fixed; \
         cve:CVE-2024-49040=fixed-config-dependent",
    );
    // Only CVEs recorded for the family.
    check(
        D,
        &[(Header, "15.0.1497.48")],
        "!cve:CVE-2021-42321; cve:CVE-2021-42305=fixed; !cve:CVE-2024-21410",
    );
    // Configuration a scan cannot see: Extended Protection, setting overrides.
    check(
        D,
        &[(Header, "15.2.1544.4")],
        "cve:CVE-2024-21410=fixed-config-dependent; cve:CVE-2024-26198=vulnerable",
    );
    check(
        D,
        &[(Header, "15.1.2507.9")],
        "cve:CVE-2024-21410=vulnerable; fixed-in:CVE-2024-21410=15.1.2507.12",
    );
    check(
        D,
        &[(Header, "15.1.2507.12")],
        "cve:CVE-2024-21410=fixed-config-dependent",
    );
    check(
        D,
        &[(Header, "15.2.1118.40")],
        "cve:CVE-2024-21410=vulnerable; cve:CVE-2023-36439=fixed-config-dependent",
    );
    check(
        D,
        &[(Header, "15.2.1748.10")],
        "cve:CVE-2024-49040=fixed-config-dependent; cve:CVE-2025-53786=vulnerable",
    );
    check(
        D,
        &[(Header, "15.2.2562.17")],
        "cve:CVE-2024-21410=fixed-config-dependent; cve:CVE-2025-59249=vulnerable; \
         cve:CVE-2025-53786=fixed-config-dependent; !cve:CVE-2021-26855",
    );
    check(
        D,
        &[(Header, "15.2.2562.37")],
        "cve:CVE-2026-42897=vulnerable; fixed-in:CVE-2026-42897=15.2.2562.43",
    );
    // CVE-2026-42897 is fixed by Jun26SU on 2016 and 2019 too (ESU builds).
    check(
        D,
        &[(Header, "15.2.1748.43")],
        "cve:CVE-2026-42897=vulnerable; fixed-in:CVE-2026-42897=15.2.1748.46",
    );
    check(D, &[(Header, "15.2.1748.49")], "cve:CVE-2026-42897=fixed");
    // 2010: RU32 fixed only CVE-2021-26857; RU31 lacks it.
    check(
        D,
        &[(Path, "14.3.513.0")],
        "cves=3; cve:CVE-2021-26857=fixed; cve:CVE-2020-0688=fixed",
    );
    check(
        D,
        &[(Path, "14.3.509.0")],
        "cve:CVE-2021-26857=vulnerable; cve:CVE-2020-0688=fixed",
    );
    check(
        D,
        &[(Path, "14.3.123.3")],
        "cve:CVE-2020-0688=vulnerable; cve:CVE-2021-26857=vulnerable",
    );
    // A CVE is listed from its publication on, not from its (earlier) fix.
    check(
        date!(2024 - 01 - 01),
        &[(Header, "15.1.2507.44")],
        "!cve:CVE-2024-21410; cve:CVE-2023-36439=fixed-config-dependent",
    );
    check(
        date!(2021 - 06 - 01),
        &[(Header, "15.2.858.10")],
        "!cve:CVE-2021-34473; cve:CVE-2021-26855=fixed",
    );
    check(
        date!(2021 - 08 - 01),
        &[(Header, "15.2.858.10")],
        "cve:CVE-2021-34473=fixed; cve:CVE-2021-31207=vulnerable",
    );
}

#[test]
fn contradictions_between_sources() {
    // Two back ends behind one address, or a stale page: the header wins, both are reported.
    check(
        D,
        &[
            (Header, "15.1.2507.61"),
            (Path, "15.1.1466"),
            (Logon, "title"),
        ],
        "build=15.1.2507.61; confidence=medium; evidence=header,logon; \
         inconsistency=owa-version-header-cu-differs-from-owa-resource-path",
    );
    check(
        D,
        &[(Header, "15.1.2507.61"), (Manifest, "15.1.2375.37")],
        "build=15.1.2507.61; inconsistency=export-tool-manifest-cu-differs-from-owa-version-header",
    );
    check(
        D,
        &[(Header, "15.2.1748.39"), (Header, "15.2.1544.36")],
        "build=15.2.1748.39; inconsistency=owa-version-header-shows-several-cus",
    );
    // Sources one revision apart agree on the CU: not a contradiction.
    check(
        D,
        &[
            (Header, "15.1.2507.61"),
            (Manifest, "15.1.2507.62"),
            (Path, "15.1.2507"),
        ],
        "build=15.1.2507.61; confidence=high; !inconsistency",
    );
    check(
        D,
        &[(Path, "15.2.1748"), (Manifest, "15.2.1748.39")],
        "build=15.2.1748.39; precision=exact; !inconsistency",
    );
}

#[test]
fn exchange_behind_a_pre_authentication_portal() {
    // BIG-IP APM answers /owa/ itself; autodiscover and EWS pass through to Exchange.
    check(
        D,
        &[
            (Server, "BigIP"),
            (Redirect, "/my.policy"),
            (Header, "15.2.1748.39"),
            (FeServer, "EX19-01"),
            (AdDomain, "stadtwerke.local"),
            (Windows, "10.0.17763"),
        ],
        "family=2019; build=15.2.1748.39; precision=exact; confidence=high; !inconsistency; \
         evidence=server,owa-redirect,header,fe-server,ntlm-dns-domain,ntlm-windows-version",
    );
    // An identity provider on another host; only the header made it through.
    check(
        D,
        &[
            (
                Redirect,
                "https://sso.a.example/realms/a/protocol/openid-connect/auth",
            ),
            (Header, "15.1.2507.61"),
        ],
        "family=2016; precision=exact; confidence=medium; !inconsistency",
    );
    // A portal with nothing of Exchange behind it, or Exchange without a build: no verdict.
    check(D, &[(Server, "BigIP"), (Redirect, "/my.policy")], "none");
    check(
        D,
        &[
            (Redirect, "/logon/LogonPoint/tmindex.html"),
            (FeServer, "EX16-02"),
            (AdDomain, "a.local"),
        ],
        "none",
    );
}

#[test]
fn exchange_whose_only_signal_is_the_manifest() {
    // A proxy blocks OWA, ECP pages and EWS and strips the headers; the export tool passes.
    check(
        D,
        &[(Server, "nginx"), (Manifest, "15.2.1748.39")],
        "family=2019; build=15.2.1748.39; precision=exact; confidence=medium; !inconsistency",
    );
    check(
        D,
        &[(Manifest, "15.1.2507.63")],
        "name=Exchange Server 2016 CU23 Dec25SU; esu=true; confidence=medium",
    );
}

#[test]
fn copies_of_the_logon_page() {
    let page = [
        (Path, "15.1.2507"),
        (Logon, "owa-page-comment"),
        (Logon, "logon-guid-comment"),
    ];
    let with = |extra: &[(Signal, &'static str)]| -> Vec<(Signal, &'static str)> {
        page.iter().chain(extra).copied().collect()
    };
    // Phishing kits: PHP on Apache posting to a script, Express keeping Exchange's action,
    // nginx posting to a collector on another host, nginx with nothing else to show.
    check(
        D,
        &with(&[
            (Server, "Apache/2.4.62 (Debian)"),
            (Powered, "PHP/8.2.20"),
            (Action, "post.php"),
        ]),
        "none",
    );
    check(
        D,
        &with(&[(Powered, "Express"), (Action, "/owa/auth.owa")]),
        "none",
    );
    check(
        D,
        &with(&[
            (Server, "nginx/1.24.0"),
            (Action, "https://collect.example/owa/auth.php"),
        ]),
        "none",
    );
    check(
        D,
        &with(&[(Server, "nginx/1.24.0"), (Action, "/owa/auth.owa")]),
        "none",
    );
    check(D, &with(&[(Action, "")]), "none");
    check(D, &with(&[(Action, "javascript:void(0)")]), "none");
    // joda32/owa-honeypot: Werkzeug on its 404s, IIS 7.5 faked on the page.
    check(
        D,
        &with(&[
            (Server, "Werkzeug/2.0.3 Python/3.9.2"),
            (Server, "Microsoft-IIS/7.5"),
            (Powered, "ASP.NET"),
            (Action, "/owa/auth.owa"),
        ]),
        "none",
    );

    // Real Exchange behind a proxy that strips headers: Exchange's own redirect to its logon
    // page, or its NTLM, vouches for the page.
    check(
        D,
        &with(&[
            (Server, "nginx"),
            (Redirect, "https://mail.a.example/owa/auth/logon.aspx"),
            (Action, "/owa/auth.owa"),
        ]),
        "family=2016; build=15.1.2507; precision=cu; confidence=high; !inconsistency",
    );
    check(
        D,
        &with(&[
            (Server, "nginx"),
            (Action, "/owa/auth.owa"),
            (AdDomain, "a.local"),
        ]),
        "family=2016; confidence=high; !inconsistency",
    );
    // With no Server header at all, and on IIS behind ARR, nothing contradicts the page.
    check(
        D,
        &with(&[(Action, "/owa/auth.owa")]),
        "family=2016; confidence=high; !inconsistency; evidence=path,logon,logon,logon-form-action",
    );
    check(
        D,
        &with(&[
            (Server, "Microsoft-IIS/10.0"),
            (Powered, "ASP.NET"),
            (Powered, "ARR/3.0"),
            (Action, "/OWA/auth.owa"),
        ]),
        "confidence=high; !inconsistency",
    );
    // 2007 and 2010 post to owaauth.dll.
    check(
        D,
        &[
            (Path, "14.3.513.0"),
            (Logon, "owa-2010-logon-body"),
            (Action, "/owa/auth/owaauth.dll"),
            (Server, "Microsoft-IIS/7.5"),
        ],
        "family=2010; precision=exact; confidence=high; !inconsistency",
    );
    // A redirect to somewhere else does not vouch; the redirect alone is no evidence.
    check(
        D,
        &with(&[
            (Server, "nginx"),
            (Redirect, "/login"),
            (Action, "/owa/auth.owa"),
        ]),
        "none",
    );
    // Exchange's endpoints answered, yet the page posts elsewhere: a real server whose page
    // was altered, counted and flagged.
    check(
        D,
        &with(&[
            (Header, "15.1.2507.61"),
            (FeServer, "EX16-01"),
            (Action, "https://collect.example/x.php"),
        ]),
        "build=15.1.2507.61; confidence=medium; inconsistency=logon-form-posts-elsewhere",
    );
    check(
        D,
        &with(&[(FeServer, "EX16-01"), (Powered, "PHP/7.4.33")]),
        "confidence=medium; inconsistency=page-powered-by-a-non-exchange-stack",
    );
}
