//! Reading Exchange signals out of HTTP responses: headers, logon pages, the ECP manifest.
//!
//! Only what the host itself serves counts: a versioned path inside an absolute URL to another
//! host (a phishing kit hot-linking the victim's OWA) is not this host's version.

use std::collections::BTreeMap;

/// Versioned OWA resource folders on a page: `/owa/auth/15.1.2507/themes/...` (2013 and
/// later, 3 parts) or `/owa/14.3.123.4/themes/...` (2007/2010, 4 parts). Returns the most
/// frequent one; real pages reference one folder many times.
pub fn owa_resource_build(body: &str) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rest = body;
    while let Some(at) = rest.find("/owa/") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "/owa/".len()..];
        rest = after;
        // A host-relative reference starts right after a quote or `url(`.
        if !matches!(before, Some('"' | '\'' | '(' | '=')) {
            continue;
        }
        let tail = after.strip_prefix("auth/").unwrap_or(after);
        let version: &str = tail.split('/').next().unwrap_or("");
        let parts = version.split('.').count();
        let digits = version
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
        let followed = tail[version.len()..].starts_with('/');
        if digits && (3..=4).contains(&parts) && followed {
            *counts.entry(version).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(v, n)| (*n, std::cmp::Reverse(*v)))
        .map(|(v, _)| v.to_string())
}

/// Markers of the OWA logon page (exchange-fingerprinting.md §1.1), as (name, needle).
const LOGON_MARKERS: [(&str, &str); 5] = [
    ("owa-page-comment", "OwaPage = ASP.auth_logon_aspx"),
    (
        "logon-guid-comment",
        "{57A118C6-2DA9-419d-BE9A-F92B0F9A418B}",
    ),
    ("owa-premium-browser-script", "function IsOwaPremiumBrowser"),
    ("owa-auth-form", "/owa/auth.owa"),
    ("owa-2010-logon-body", "owaLgnBdy"),
];

/// Names of the logon-page markers found in a body.
pub fn logon_markers(body: &str) -> Vec<&'static str> {
    LOGON_MARKERS
        .iter()
        .filter(|(_, needle)| body.contains(needle))
        .map(|(name, _)| *name)
        .collect()
}

/// The `version` of the export tool's `assemblyIdentity` in the ECP ClickOnce manifest. Plain
/// string search: the manifest is never parsed as XML, so entity tricks cannot expand.
pub fn exporttool_manifest_build(body: &str) -> Option<String> {
    let mut rest = body;
    while let Some(at) = rest.find("<assemblyIdentity") {
        let element = &rest[at..];
        let end = element.find('>')?;
        let element = &element[..end];
        rest = &rest[at + end..];
        if !element.contains("microsoft.exchange.ediscovery.exporttool") {
            continue;
        }
        let value = attribute(element, "version")?;
        let ok = value.split('.').count() == 4
            && value
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return ok.then(|| value.to_string());
    }
    None
}

/// The `action` of the logon form on a page: the form named `logonForm` (the name every OWA
/// logon page gives it, and copies keep), else the first form. `Some("")` for a form without
/// an action, which posts back to the page; `None` without a form. Bounded to 256 characters.
pub fn logon_form_action(body: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` index `body`.
    let lower = body.to_ascii_lowercase();
    let mut first = None;
    let mut at = 0;
    while let Some(found) = lower[at..].find("<form") {
        let start = at + found;
        at = start + "<form".len();
        if !lower[at..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            continue;
        }
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let (element, element_lower) = (&body[start..end], &lower[start..end]);
        let action = html_attribute(element, element_lower, "action").unwrap_or_default();
        let action: String = action.replace("&amp;", "&").chars().take(256).collect();
        if html_attribute(element, element_lower, "name")
            .is_some_and(|n| n.eq_ignore_ascii_case("logonForm"))
        {
            return Some(action);
        }
        first.get_or_insert(action);
    }
    first
}

/// An HTML attribute's value, quoted with `"` or `'` or bare; `lower` is `element`
/// lower-cased, where the name is looked for.
fn html_attribute<'a>(element: &'a str, lower: &str, name: &str) -> Option<&'a str> {
    let mut at = 0;
    while let Some(found) = lower[at..].find(name) {
        let start = at + found;
        at = start + name.len();
        // The name must stand alone: after whitespace, and followed by `=`.
        if !lower[..start].ends_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let rest = lower[at..].trim_start();
        let Some(value) = rest.strip_prefix('=') else {
            continue;
        };
        let value_lower = value.trim_start();
        let offset = lower.len() - value_lower.len();
        let value = &element[offset..];
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &value[1..];
                &inner[..inner.find(q).unwrap_or(inner.len())]
            }
            _ => {
                let len = value
                    .find(|c: char| c.is_ascii_whitespace() || c == '>')
                    .unwrap_or(value.len());
                &value[..len]
            }
        });
    }
    None
}

fn attribute<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let start = element.find(&needle)? + needle.len();
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}

/// The `<title>` of an HTML page, trimmed and bounded.
pub fn html_title(body: &str) -> Option<String> {
    // Cut at a character boundary: a multi-byte character across 64 KiB must not lose the title.
    let mut end = body.len().min(64 * 1024);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let lower = body[..end].to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = lower[start..].find('>')? + start + 1;
    let len = lower[open_end..].find("</title")?;
    let title = body[open_end..open_end + len].trim();
    Some(title.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_survives_a_multibyte_character_across_64_kib() {
        let mut body = String::from("<title>Outlook</title>");
        body.push_str(&"x".repeat(64 * 1024 - body.len() - 1));
        body.push('é'); // two bytes: the 64 KiB cut falls inside it
        assert_eq!(html_title(&body).as_deref(), Some("Outlook"));
    }

    #[test]
    fn resource_paths() {
        let page = r#"<link rel="shortcut icon" href="/owa/auth/15.1.2507/themes/resources/favicon.ico" type="image/x-icon">
            <style>@font-face { src: url('/owa/auth/15.1.2507/themes/resources/segoeui-regular.eot'); }</style>
            <script src="/owa/auth/15.1.2507/scripts/premium/flogon.js"></script>"#;
        assert_eq!(owa_resource_build(page).as_deref(), Some("15.1.2507"));
        let old = r#"<link type="text/css" rel="stylesheet" href="/owa/14.3.123.4/themes/resources/logon.css">"#;
        assert_eq!(owa_resource_build(old).as_deref(), Some("14.3.123.4"));
        // Hot-linked from another host: not this host's version.
        let kit = r#"<link href="https://webmail.victim.example/owa/14.3.123.3/themes/resources/logon.css">"#;
        assert_eq!(owa_resource_build(kit), None);
        assert_eq!(
            owa_resource_build(r#"href="/owa/auth/current/themes/x.css""#),
            None
        );
        assert_eq!(
            owa_resource_build(r#"href="/owa/auth/15.1/themes/x.css""#),
            None
        );
        assert_eq!(owa_resource_build(r#"href="/owa/auth/15.1.2507""#), None);
        assert_eq!(owa_resource_build(""), None);
    }

    #[test]
    fn manifest_version() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<asmv1:assembly xmlns="urn:schemas-microsoft-com:asm.v1">
  <assemblyIdentity name="microsoft.exchange.ediscovery.exporttool.application" version="15.2.986.5" publicKeyToken="b1d1a6c45aa418ce" language="neutral" processorArchitecture="msil" xmlns="urn:schemas-microsoft-com:asm.v1" />
  <dependency><dependentAssembly><assemblyIdentity name="microsoft.exchange.ediscovery.exporttool.exe" version="15.2.986.5" /></dependentAssembly></dependency>
</asmv1:assembly>"#;
        assert_eq!(
            exporttool_manifest_build(xml).as_deref(),
            Some("15.2.986.5")
        );
        assert_eq!(
            exporttool_manifest_build(r#"<assemblyIdentity name="other" version="1.2.3.4" />"#),
            None
        );
        assert_eq!(
            exporttool_manifest_build(
                r#"<assemblyIdentity name="microsoft.exchange.ediscovery.exporttool" version="&v;" />"#
            ),
            None
        );
        assert_eq!(exporttool_manifest_build("<assemblyIdentity name="), None);
    }

    #[test]
    fn logon_form_actions() {
        let exchange = r#"<form action="/owa/auth.owa" method="POST" name="logonForm" ENCTYPE="application/x-www-form-urlencoded" autocomplete="off">"#;
        assert_eq!(
            logon_form_action(exchange).as_deref(),
            Some("/owa/auth.owa")
        );
        // Phishing kits: a script beside the page, or a collector on another host.
        let kit = r#"<FORM NAME='logonForm' METHOD='post' ACTION='post.php'>"#;
        assert_eq!(logon_form_action(kit).as_deref(), Some("post.php"));
        let kit = r#"<form method=post action=https://collect.example/owa.php?id=1&amp;x=2 name=logonForm>"#;
        assert_eq!(
            logon_form_action(kit).as_deref(),
            Some("https://collect.example/owa.php?id=1&x=2")
        );
        // The logon form wins over a search form before it; a form without action posts back.
        let two = r#"<form action="/search"></form><form name="logonForm" method="POST">"#;
        assert_eq!(logon_form_action(two).as_deref(), Some(""));
        let unnamed = r#"<form data-action="x" action = "/CookieAuth.dll?Logon">"#;
        assert_eq!(
            logon_form_action(unnamed).as_deref(),
            Some("/CookieAuth.dll?Logon")
        );
        // `<formula>` is not a form; an unterminated tag still yields what it has.
        assert_eq!(logon_form_action("<formula action=\"x\">"), None);
        assert_eq!(
            logon_form_action("<form action=\"/owa/auth.owa"),
            Some("/owa/auth.owa".into())
        );
        assert_eq!(logon_form_action("no form here"), None);
        let long = format!("<form action=\"{}\">", "a".repeat(1000));
        assert_eq!(logon_form_action(&long).map(|a| a.len()), Some(256));
    }

    #[test]
    fn titles_and_markers() {
        let page = "<html><head><TITLE> Outlook </TITLE></head><!-- OwaPage = ASP.auth_logon_aspx --><form action=\"/owa/auth.owa\">";
        assert_eq!(html_title(page).as_deref(), Some("Outlook"));
        assert_eq!(logon_markers(page), ["owa-page-comment", "owa-auth-form"]);
        assert_eq!(html_title("<title>unclosed"), None);
    }
}
