//! What the probe reads out of HTTP bodies: the OWA resource-path build, the export tool's
//! manifest version, the logon-page markers and the `<title>`. Bodies reach these functions
//! as lossy UTF-8 of whatever the server sent, and so do the fuzzer's bytes.
//!
//! Invariants (beyond "never panics"): a build found is 3 or 4 (resource path) or exactly 4
//! (manifest) non-empty groups of ASCII digits and occurs in the body where it was found; every
//! marker named is one whose needle the body contains, in table order, each once; a title is at
//! most 200 characters, starts with no whitespace and is text of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surveyor_scan::fingerprint::{
    exporttool_manifest_build, html_title, logon_markers, owa_resource_build,
};

/// `fingerprint::LOGON_MARKERS`, restated: (name, needle), in the order they are reported.
const MARKERS: [(&str, &str); 5] = [
    ("owa-page-comment", "OwaPage = ASP.auth_logon_aspx"),
    (
        "logon-guid-comment",
        "{57A118C6-2DA9-419d-BE9A-F92B0F9A418B}",
    ),
    ("owa-premium-browser-script", "function IsOwaPremiumBrowser"),
    ("owa-auth-form", "/owa/auth.owa"),
    ("owa-2010-logon-body", "owaLgnBdy"),
];

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let body: &str = &body;

    if let Some(b) = owa_resource_build(body) {
        let parts: Vec<&str> = b.split('.').collect();
        assert!((3..=4).contains(&parts.len()), "{b}");
        assert!(
            parts
                .iter()
                .all(|p| (1..=5).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit())),
            "{b}"
        );
        // Host-relative: right after a quote, `(` or `=`, and a folder (followed by `/`).
        let found = ["\"", "'", "(", "="].iter().any(|q| {
            body.contains(&format!("{q}/owa/{b}/")) || body.contains(&format!("{q}/owa/auth/{b}/"))
        });
        assert!(
            found,
            "{b} is not a host-relative resource folder of the body"
        );
    }

    if let Some(b) = exporttool_manifest_build(body) {
        let parts: Vec<&str> = b.split('.').collect();
        assert_eq!(parts.len(), 4, "{b}");
        assert!(
            parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())),
            "{b}"
        );
        assert!(body.contains(&format!(" version=\"{b}\"")), "{b}");
        assert!(body.contains("<assemblyIdentity"));
        assert!(body.contains("microsoft.exchange.ediscovery.exporttool"));
    }

    let markers = logon_markers(body);
    let expected: Vec<&str> = MARKERS
        .iter()
        .filter(|(_, needle)| body.contains(needle))
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(markers, expected);

    if let Some(title) = html_title(body) {
        assert!(
            title.chars().count() <= 200,
            "title of {} chars",
            title.chars().count()
        );
        assert!(!title.starts_with(char::is_whitespace), "{title:?}");
        assert!(
            body.contains(title.as_str()),
            "{title:?} is not text of the body"
        );
        assert!(body.to_ascii_lowercase().contains("<title"));
    }
});
