//! Invents plausible German organisations, their `.example` domains and server names.
//!
//! Everything lives under `.example` (RFC 2606) so a leaked truth file or certificate can
//! never point at a real organisation.

use std::collections::{HashMap, HashSet};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Towns as (domain label, display name).
const TOWNS: &[(&str, &str)] = &[
    ("musterstadt", "Musterstadt"),
    ("neustadt", "Neustadt"),
    ("altdorf", "Altdorf"),
    ("bergheim", "Bergheim"),
    ("lindenau", "Lindenau"),
    ("rosenfeld", "Rosenfeld"),
    ("waldkirchen", "Waldkirchen"),
    ("seehausen", "Seehausen"),
    ("buchholz", "Buchholz"),
    ("eichenau", "Eichenau"),
    ("hohenfels", "Hohenfels"),
    ("falkenberg", "Falkenberg"),
    ("sonnenberg", "Sonnenberg"),
    ("steinbach", "Steinbach"),
    ("wiesental", "Wiesental"),
    ("gruenau", "Grünau"),
    ("kirchheim", "Kirchheim"),
    ("tannhausen", "Tannhausen"),
    ("muehlhausen", "Mühlhausen"),
    ("birkenfeld", "Birkenfeld"),
    ("ostheim", "Ostheim"),
    ("weissenburg", "Weißenburg"),
    ("friedrichsau", "Friedrichsau"),
    ("lauterbach", "Lauterbach"),
];

/// Family names as (domain label, display name).
const SURNAMES: &[(&str, &str)] = &[
    ("mueller", "Müller"),
    ("schmidt", "Schmidt"),
    ("schneider", "Schneider"),
    ("fischer", "Fischer"),
    ("weber", "Weber"),
    ("meyer", "Meyer"),
    ("wagner", "Wagner"),
    ("becker", "Becker"),
    ("schulz", "Schulz"),
    ("hoffmann", "Hoffmann"),
    ("koch", "Koch"),
    ("richter", "Richter"),
    ("klein", "Klein"),
    ("wolf", "Wolf"),
    ("schroeder", "Schröder"),
    ("neumann", "Neumann"),
    ("schwarz", "Schwarz"),
    ("zimmermann", "Zimmermann"),
    ("braun", "Braun"),
    ("krueger", "Krüger"),
    ("hartmann", "Hartmann"),
    ("lange", "Lange"),
];

/// Organisation kinds: domain pattern, display pattern (`{}` is the town or surname) and
/// sector. Sectors are the target groups BSI names in its Exchange warnings.
const TOWN_KINDS: &[(&str, &str, &str)] = &[
    ("stadtwerke-{}", "Stadtwerke {}", "municipal-utility"),
    ("gymnasium-{}", "Gymnasium {}", "school"),
    ("gemeinde-{}", "Gemeinde {}", "municipality"),
    ("klinikum-{}", "Klinikum {}", "hospital"),
    ("kreisverwaltung-{}", "Kreisverwaltung {}", "municipality"),
    ("wohnbau-{}", "Wohnungsbaugesellschaft {} mbH", "business"),
    ("volkshochschule-{}", "Volkshochschule {}", "school"),
    ("hochschule-{}", "Hochschule {}", "university"),
    ("diakonie-{}", "Diakonisches Werk {}", "social-services"),
];
const PERSON_KINDS: &[(&str, &str, &str)] = &[
    ("praxis-{}", "Praxis Dr. {}", "medical-practice"),
    ("kanzlei-{}", "Kanzlei {} & Partner", "law-firm"),
    ("autohaus-{}", "Autohaus {} GmbH", "business"),
    ("{}-maschinenbau", "{} Maschinenbau GmbH", "business"),
    ("steuerberatung-{}", "Steuerberatung {}", "tax-adviser"),
    ("{}-logistik", "{} Logistik GmbH & Co. KG", "business"),
];

/// Every sector an organisation can have.
pub const SECTORS: &[&str] = &[
    "hospital",
    "medical-practice",
    "school",
    "university",
    "social-services",
    "law-firm",
    "tax-adviser",
    "municipal-utility",
    "municipality",
    "business",
];

/// An invented organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Organisation {
    /// Display name, used as the certificate's O=.
    pub(crate) name: String,
    /// DNS domain under `.example`.
    pub(crate) domain: String,
    /// One of [`SECTORS`].
    pub(crate) sector: &'static str,
    /// Language for notifications: `"de"`, or `"en"` for some universities and businesses.
    pub(crate) language: &'static str,
}

impl Organisation {
    /// The domain without `.example`, used for the invented AD domain `<slug>.local`.
    pub(crate) fn slug(&self) -> &str {
        self.domain.strip_suffix(".example").unwrap_or(&self.domain)
    }
}

/// Domains given out so far, and per base name the next number to try, so that the
/// thousandth "stadtwerke-x" costs one lookup, not a thousand.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    domains: HashSet<String>,
    next: HashMap<String, u32>,
}

#[cfg(test)]
impl Taken {
    pub(crate) fn len(&self) -> usize {
        self.domains.len()
    }
}

/// Draws an organisation whose domain is not yet taken, and records it.
pub(crate) fn organisation(rng: &mut ChaCha8Rng, taken: &mut Taken) -> Organisation {
    let ((pattern, display, sector), (slug, word)) = if rng.gen_bool(0.5) {
        (
            TOWN_KINDS[rng.gen_range(0..TOWN_KINDS.len())],
            TOWNS[rng.gen_range(0..TOWNS.len())],
        )
    } else {
        (
            PERSON_KINDS[rng.gen_range(0..PERSON_KINDS.len())],
            SURNAMES[rng.gen_range(0..SURNAMES.len())],
        )
    };
    // International research and export-oriented firms often ask for English reports.
    let english = match sector {
        "university" => 0.4,
        "business" => 0.15,
        _ => 0.0,
    };
    let language = if rng.gen_bool(english) { "en" } else { "de" };
    let base = pattern.replace("{}", slug);
    let mut name = display.replace("{}", word);
    // Big fleets run out of combinations; real registries solve that with a number too.
    let mut domain = format!("{base}.example");
    let mut n = 2;
    if taken.domains.contains(&domain) {
        n = taken.next.get(&base).copied().unwrap_or(2);
        loop {
            domain = format!("{base}-{n}.example");
            n += 1;
            if !taken.domains.contains(&domain) {
                break;
            }
        }
        taken.next.insert(base, n);
    }
    if n > 2 {
        name = format!("{name} ({})", n - 1);
    }
    taken.domains.insert(domain.clone());
    Organisation {
        name,
        domain,
        sector,
        language,
    }
}

/// A NetBIOS name for an Exchange front end, in the styles admins actually use.
pub(crate) fn netbios_name(rng: &mut ChaCha8Rng, family_tag: &str) -> String {
    let n = rng.gen_range(1..=4);
    match rng.gen_range(0..5) {
        0 | 1 => format!("EX{family_tag}-{n:02}"),
        2 => format!("EXCH{n:02}"),
        3 => format!("MAIL{n:02}"),
        _ => {
            // Never renamed after setup: Windows' random WIN-XXXXXXXXXXX name.
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            let tail: String = (0..11)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            format!("WIN-{tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn domains_are_unique_valid_and_under_example() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut taken = Taken::default();
        for _ in 0..1000 {
            let org = organisation(&mut rng, &mut taken);
            assert!(org.domain.ends_with(".example"), "{}", org.domain);
            assert!(org
                .domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
            assert!(!org.name.is_empty());
            assert!(SECTORS.contains(&org.sector));
            assert!(["de", "en"].contains(&org.language));
        }
        assert_eq!(taken.len(), 1000);
    }

    #[test]
    fn netbios_names_fit_fifteen_characters() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..200 {
            let name = netbios_name(&mut rng, "19");
            assert!(name.len() <= 15, "{name}");
        }
    }
}
