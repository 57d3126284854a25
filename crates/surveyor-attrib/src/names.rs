//! DNS names as the registry stores them and as evidence brings them: one normal form.

use std::borrow::Cow;

/// The registry's form of a domain: trimmed, lower case, without the root dot, with at least
/// two LDH labels and not itself a public suffix. The error says what is wrong.
pub(crate) fn normalise_domain(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("is empty");
    }
    if !name.is_ascii() {
        return Err("is not ASCII; write internationalised names in their xn-- form");
    }
    let name = name.to_ascii_lowercase();
    if name.len() > 253 {
        return Err("is longer than 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("needs at least two labels");
    }
    for label in &labels {
        if label.is_empty() {
            return Err("has an empty label");
        }
        if label.len() > 63 {
            return Err("has a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("has a character other than a letter, digit, hyphen or dot");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label that starts or ends with a hyphen");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("is an address, not a domain");
    }
    // A registered suffix such as `co.uk` or `github.io` is shared by unrelated owners.
    if psl::domain(name.as_bytes()).is_none() {
        return Err("is a public suffix, shared by unrelated owners");
    }
    Ok(name)
}

/// A name from evidence (certificate, PTR, NTLM) in lookup form: trimmed, lower case, without
/// the root dot, a wildcard `*.x` as `x`. `None` for names that cannot name an organisation:
/// single labels (`EXCH01`), address literals and empty names.
pub(crate) fn lookup_form(raw: &str) -> Option<Cow<'_, str>> {
    let name = raw.trim();
    let name = name.strip_prefix("*.").unwrap_or(name);
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name.contains('.') || name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// The registrable domain of a name in lookup form (`mail.klinikum.example` →
/// `klinikum.example`). A TLD the Public Suffix List does not know (`.example`, `.local`)
/// counts as a suffix of one label, the list's default rule.
pub(crate) fn registrable(name: &str) -> Option<&str> {
    let domain = psl::domain(name.as_bytes())?;
    let len = domain.as_bytes().len();
    name.get(name.len().checked_sub(len)?..)
}

/// The organisation-id form of a display name: lower-case ASCII words joined by hyphens,
/// German umlauts spelt out (`Praxis Dr. Müller` → `praxis-dr-mueller`).
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        let spelt = match c {
            'ä' => "ae",
            'ö' => "oe",
            'ü' => "ue",
            'ß' => "ss",
            c if c.is_ascii_alphanumeric() => {
                if gap && !out.is_empty() {
                    out.push('-');
                }
                gap = false;
                out.push(c);
                continue;
            }
            _ => {
                gap = true;
                continue;
            }
        };
        if gap && !out.is_empty() {
            out.push('-');
        }
        gap = false;
        out.push_str(spelt);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_domain(raw: &str, expected: Result<&str, &str>) {
        let got = normalise_domain(raw);
        assert_eq!(got.as_deref().map_err(|e| *e), expected, "{raw:?}");
    }

    #[test]
    fn domains_normalise_or_say_why() {
        check_domain(
            "Klinikum-Buchholz.Example.",
            Ok("klinikum-buchholz.example"),
        );
        check_domain(" stadt.musterstadt.de ", Ok("stadt.musterstadt.de"));
        check_domain("praxis.local", Ok("praxis.local"));
        check_domain("xn--mnchen-3ya.de", Ok("xn--mnchen-3ya.de"));
        check_domain("", Err("is empty"));
        check_domain("example", Err("needs at least two labels"));
        check_domain("a..example", Err("has an empty label"));
        check_domain(
            "*.klinikum.example",
            Err("has a character other than a letter, digit, hyphen or dot"),
        );
        check_domain(
            "mail_1.example",
            Err("has a character other than a letter, digit, hyphen or dot"),
        );
        check_domain(
            "-a.example",
            Err("has a label that starts or ends with a hyphen"),
        );
        check_domain("192.0.2.1", Err("is an address, not a domain"));
        check_domain(
            "co.uk",
            Err("is a public suffix, shared by unrelated owners"),
        );
        check_domain(
            "github.io",
            Err("is a public suffix, shared by unrelated owners"),
        );
        check_domain(
            "münchen.de",
            Err("is not ASCII; write internationalised names in their xn-- form"),
        );
        let long = format!("{}.example", "a".repeat(64));
        check_domain(&long, Err("has a label longer than 63 characters"));
    }

    #[test]
    fn evidence_names_take_lookup_form() {
        assert_eq!(
            lookup_form("*.Klinikum.example.").as_deref(),
            Some("klinikum.example")
        );
        assert_eq!(
            lookup_form("mail.klinikum.example").as_deref(),
            Some("mail.klinikum.example")
        );
        assert_eq!(lookup_form("EXCH01"), None);
        assert_eq!(lookup_form("192.0.2.7"), None);
        assert_eq!(lookup_form("2001:db8::1"), None);
        assert_eq!(lookup_form(""), None);
    }

    #[test]
    fn registrable_domain_follows_the_list_and_its_default_rule() {
        assert_eq!(
            registrable("mail.klinikum.example"),
            Some("klinikum.example")
        );
        assert_eq!(registrable("a.b.klinikum.co.uk"), Some("klinikum.co.uk"));
        assert_eq!(registrable("dc.corp.local"), Some("corp.local"));
        assert_eq!(registrable("x.github.io"), Some("x.github.io"));
        assert_eq!(registrable("co.uk"), None);
    }

    #[test]
    fn slugs_spell_out_umlauts() {
        assert_eq!(slug("Praxis Dr. Müller"), "praxis-dr-mueller");
        assert_eq!(slug("  Weißenburg & Co. KG "), "weissenburg-co-kg");
        assert_eq!(slug("Grünau"), "gruenau");
        assert_eq!(slug("!!!"), "");
    }
}
