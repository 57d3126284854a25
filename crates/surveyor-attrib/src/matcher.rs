//! Attribution of one server to one organisation: indices over the registry, and the rules
//! that decide when the evidence disagrees.
//!
//! The rules, strongest first (the first that matches decides; `docs/attribution.md` has
//! the reasoning and the conflict cases):
//!
//! 1. Certificate domain: every name of the certificate that can name an organisation lies
//!    under the registered domains of one organisation. Names of ict-hosting organisations
//!    are set aside when the other names point to one non-hosting organisation (the tenant),
//!    and a certificate that names only a hoster does not count when the address lies in a
//!    non-hosting organisation's prefix (a managed server in the customer's own network).
//!    High confidence, medium when the prefix belongs to another non-hosting organisation.
//! 2. CIDR: the longest registry prefix holding the address. High, medium for ict-hosting.
//! 3. PTR domain: the PTR name lies under a registered domain. Medium.
//! 4. NTLM domain: the AD DNS domain lies under a registered domain, or its first label is the
//!    first label of exactly one organisation's registered domain. Low.
//! 5. ASN: the origin AS is registered to an organisation. Low.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use surveyor_model::observation::Confidence;
use surveyor_model::{Attribution, AttributionRule, Sector};

use crate::lpm::{AddressTable, Ranges};
use crate::names;
use crate::registry::Registry;

/// First labels of AD domains so common that they name no one (`corp.local`).
const GENERIC_AD_LABELS: [&str; 10] = [
    "ad", "corp", "domain", "home", "intern", "internal", "lan", "local", "office", "example",
];

/// What is known about one server; everything but the address is optional.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub ip: IpAddr,
    /// DNS names of its TLS certificate (subject CN and SAN), as presented.
    pub certificate_names: &'a [String],
    /// The PTR name of its address.
    pub ptr_name: Option<&'a str>,
    /// The AD DNS domain of its NTLM challenge.
    pub ntlm_dns_domain: Option<&'a str>,
    /// The origin AS of its address.
    pub asn: Option<u32>,
}

impl Evidence<'static> {
    /// Evidence of the address alone; add the rest with struct update syntax.
    pub fn from_ip(ip: IpAddr) -> Evidence<'static> {
        Evidence {
            ip,
            certificate_names: &[],
            ptr_name: None,
            ntlm_dns_domain: None,
            asn: None,
        }
    }
}

/// The longest registry prefix holding an address, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixMatch<'r> {
    pub organisation: &'r str,
    pub sector: Sector,
    pub prefix: IpNet,
}

/// Indices over one registry, built once and shared by every lookup.
#[derive(Debug, Clone)]
pub struct Attributor {
    orgs: Vec<Org>,
    /// Every registry prefix with its organisation; `prefix_index` holds indices into it.
    nets: Vec<(IpNet, usize)>,
    prefix_index: AddressTable,
    /// Registered domain → organisation.
    domains: HashMap<String, usize>,
    /// First label of a registered domain → organisation, `None` when several share it.
    first_labels: HashMap<String, Option<usize>>,
    asns: HashMap<u32, usize>,
    /// Organisation id → index into `orgs`.
    ids: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
struct Org {
    id: String,
    sector: Sector,
    country: Option<String>,
}

impl Org {
    fn hosting(&self) -> bool {
        self.sector == Sector::IctHosting
    }
}

impl Attributor {
    pub fn new(registry: &Registry) -> Attributor {
        let mut orgs = Vec::with_capacity(registry.len());
        let mut nets = Vec::new();
        let mut ranges = Ranges::default();
        let mut domains = HashMap::new();
        let mut first_labels: HashMap<String, Option<usize>> = HashMap::new();
        let mut asns = HashMap::new();
        let mut ids = HashMap::with_capacity(registry.len());
        for (i, org) in registry.organisations().iter().enumerate() {
            ids.insert(org.id.clone(), i);
            orgs.push(Org {
                id: org.id.clone(),
                sector: org.sector,
                country: org.country.clone(),
            });
            // The registry guarantees unique prefixes, domains and AS numbers.
            for net in &org.cidrs {
                // u32::MAX marks "no prefix"; four billion prefixes do not fit in memory anyway.
                let Some(index) = u32::try_from(nets.len()).ok().filter(|&n| n != u32::MAX) else {
                    break;
                };
                ranges.push_net(*net, index);
                nets.push((*net, i));
            }
            for domain in &org.domains {
                domains.insert(domain.clone(), i);
                let first = domain.split('.').next().unwrap_or(domain);
                first_labels
                    .entry(first.to_owned())
                    .and_modify(|owner| {
                        if *owner != Some(i) {
                            *owner = None;
                        }
                    })
                    .or_insert(Some(i));
            }
            for &asn in &org.asns {
                asns.insert(asn, i);
            }
        }
        Attributor {
            orgs,
            nets,
            prefix_index: ranges.build(),
            domains,
            first_labels,
            asns,
            ids,
        }
    }

    /// The registry's country of an organisation (by id), when it gives one.
    pub fn country_of(&self, organisation: &str) -> Option<&str> {
        let &i = self.ids.get(organisation)?;
        self.orgs[i].country.as_deref()
    }

    /// Number of prefixes in the longest-prefix-match table.
    pub fn prefixes(&self) -> usize {
        self.nets.len()
    }

    /// The longest registry prefix holding `ip` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn longest_prefix(&self, ip: IpAddr) -> Option<PrefixMatch<'_>> {
        let (i, prefix) = self.lpm(ip)?;
        let org = &self.orgs[i];
        Some(PrefixMatch {
            organisation: &org.id,
            sector: org.sector,
            prefix,
        })
    }

    /// The organisation whose registered domain holds `name` (the longest such domain), for a
    /// DNS name from any source.
    pub fn organisation_of_name(&self, name: &str) -> Option<&str> {
        let name = names::lookup_form(name)?;
        self.by_name(&name).map(|i| self.orgs[i].id.as_str())
    }

    /// Applies the rules in order; `None` when no rule matches.
    pub fn attribute(&self, evidence: &Evidence<'_>) -> Option<Attribution> {
        let cidr = self.lpm(evidence.ip);
        if let Some((i, name)) = self.by_certificate(evidence.certificate_names, cidr) {
            // A certificate against another non-hosting organisation's own network: still
            // the certificate's, but less sure (a reverse proxy, a shared certificate).
            let disputed = cidr.is_some_and(|(c, _)| c != i && !self.orgs[c].hosting());
            let confidence = if disputed {
                Confidence::Medium
            } else {
                Confidence::High
            };
            let matched = name.trim().to_owned();
            return Some(self.attribution(
                i,
                AttributionRule::CertificateDomain,
                confidence,
                matched,
            ));
        }
        if let Some((i, prefix)) = cidr {
            // A hoster's range holds its customers' servers too.
            let confidence = if self.orgs[i].hosting() {
                Confidence::Medium
            } else {
                Confidence::High
            };
            return Some(self.attribution(
                i,
                AttributionRule::Cidr,
                confidence,
                prefix.to_string(),
            ));
        }
        if let Some(ptr) = evidence.ptr_name.and_then(names::lookup_form) {
            if let Some(i) = self.by_name(&ptr) {
                let matched = ptr.into_owned();
                return Some(self.attribution(
                    i,
                    AttributionRule::PtrDomain,
                    Confidence::Medium,
                    matched,
                ));
            }
        }
        if let Some(domain) = evidence.ntlm_dns_domain.and_then(ntlm_form) {
            if let Some(i) = self.by_ntlm(&domain) {
                let matched = domain.into_owned();
                return Some(self.attribution(
                    i,
                    AttributionRule::NtlmDomain,
                    Confidence::Low,
                    matched,
                ));
            }
        }
        if let Some(asn) = evidence.asn {
            if let Some(&i) = self.asns.get(&asn) {
                let matched = format!("AS{asn}");
                return Some(self.attribution(i, AttributionRule::Asn, Confidence::Low, matched));
            }
        }
        None
    }

    fn attribution(
        &self,
        i: usize,
        rule: AttributionRule,
        confidence: Confidence,
        matched: String,
    ) -> Attribution {
        Attribution {
            organisation: self.orgs[i].id.clone(),
            sector: self.orgs[i].sector,
            rule,
            confidence,
            matched,
        }
    }

    fn lpm(&self, ip: IpAddr) -> Option<(usize, IpNet)> {
        let index = self.prefix_index.get(ip)?;
        let &(net, org) = self.nets.get(usize::try_from(index).ok()?)?;
        Some((org, net))
    }

    /// A name in lookup form → the organisation of the longest registered domain holding it,
    /// looking no higher than its registrable domain.
    fn by_name(&self, name: &str) -> Option<usize> {
        let floor = names::registrable(name)?.len();
        let mut candidate = name;
        loop {
            if let Some(&i) = self.domains.get(candidate) {
                return Some(i);
            }
            if candidate.len() <= floor {
                return None;
            }
            candidate = candidate.split_once('.')?.1;
        }
    }

    /// Rule 1; returns the organisation and the first of its names.
    fn by_certificate<'n>(
        &self,
        raw_names: &'n [String],
        cidr: Option<(usize, IpNet)>,
    ) -> Option<(usize, &'n str)> {
        let mut tenants: Vec<(usize, &'n str)> = Vec::new();
        let mut hosters: Vec<(usize, &'n str)> = Vec::new();
        for raw in raw_names {
            // Single labels and addresses name no organisation; skip them.
            let Some(name) = names::lookup_form(raw) else {
                continue;
            };
            // One name outside the registry: not a certificate of one organisation.
            let i = self.by_name(&name)?;
            let list = if self.orgs[i].hosting() {
                &mut hosters
            } else {
                &mut tenants
            };
            if list.iter().all(|&(j, _)| j != i) {
                list.push((i, raw));
            }
        }
        match (tenants.as_slice(), hosters.as_slice()) {
            ([tenant], _) => Some(*tenant),
            ([], [hoster]) => {
                let customer_network = cidr.is_some_and(|(c, _)| !self.orgs[c].hosting());
                (!customer_network).then_some(*hoster)
            }
            _ => None,
        }
    }

    /// Rule 4 on a domain in NTLM form.
    fn by_ntlm(&self, domain: &str) -> Option<usize> {
        if domain.contains('.') {
            if let Some(i) = self.by_name(domain) {
                return Some(i);
            }
        }
        let first = domain.split('.').next()?;
        if GENERIC_AD_LABELS.contains(&first) {
            return None;
        }
        self.first_labels.get(first).copied().flatten()
    }
}

/// An AD DNS domain trimmed and lower case; unlike other names it may be one label.
fn ntlm_form(raw: &str) -> Option<Cow<'_, str>> {
    let name = raw.trim();
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    Some(if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use crate::registry::Format;

    const REGISTRY: &str = "\
id,name,sector,cidrs,asns,domains
hoster,Hosting AG,ict-hosting,198.51.100.0/22 2001:db8::/32,64500,hoster.example
cloud,Cloud GmbH,ict-hosting,,64501,cloud.example
klinikum,Klinikum Buchholz,hospital,198.51.100.128/25,,klinikum-buchholz.example
stadt,Stadt Musterstadt,municipality,192.0.2.0/24,,musterstadt.example
gymnasium,Gymnasium Musterstadt,school,,,gymnasium.musterstadt.example
kanzlei,Kanzlei Weber,law-firm,2001:db8:5::/48,,kanzlei-weber.example
praxis-a,Praxis A,medical-practice,,,praxis.example
praxis-b,Praxis B,medical-practice,,,praxis.local
corp,Corp AG,business,,,corp.example
";

    static ATTRIBUTOR: LazyLock<Attributor> =
        LazyLock::new(|| Attributor::new(&Registry::parse(REGISTRY, Format::Csv).unwrap()));

    /// What attributing the evidence gives, as `organisation rule confidence matched`.
    fn check(evidence: Evidence<'_>, expected: &str) {
        let got = match ATTRIBUTOR.attribute(&evidence) {
            Some(a) => format!(
                "{} {} {} {}",
                a.organisation,
                a.rule.as_str(),
                a.confidence.as_str(),
                a.matched
            ),
            None => "none".to_owned(),
        };
        assert_eq!(got, expected, "{evidence:?}");
    }

    fn ip(text: &str) -> Evidence<'static> {
        Evidence::from_ip(text.parse().unwrap())
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn an_organisations_country_by_id() {
        let registry = Registry::parse(
            "id,name,sector,country,cidrs\nstadt,Stadt,municipality,de,192.0.2.0/24\n\
             hoster,Hoster,ict-hosting,,198.51.100.0/24\n",
            Format::Csv,
        )
        .unwrap();
        let attributor = Attributor::new(&registry);
        assert_eq!(attributor.country_of("stadt"), Some("DE"));
        assert_eq!(attributor.country_of("hoster"), None);
        assert_eq!(attributor.country_of("unknown"), None);
    }

    #[test]
    fn cidr_longest_prefix_wins_and_hosting_is_medium() {
        check(ip("198.51.100.200"), "klinikum cidr high 198.51.100.128/25");
        check(ip("198.51.100.5"), "hoster cidr medium 198.51.100.0/22");
        check(ip("2001:db8:5::25"), "kanzlei cidr high 2001:db8:5::/48");
        check(ip("2001:db8:6::25"), "hoster cidr medium 2001:db8::/32");
        check(ip("::ffff:192.0.2.9"), "stadt cidr high 192.0.2.0/24");
        check(ip("203.0.113.1"), "none");
    }

    #[test]
    fn certificate_beats_a_hosters_range() {
        let cert = names(&[
            "mail.klinikum-buchholz.example",
            "autodiscover.klinikum-buchholz.example",
        ]);
        check(
            Evidence {
                certificate_names: &cert,
                ..ip("198.51.100.5")
            },
            "klinikum certificate-domain high mail.klinikum-buchholz.example",
        );
    }

    #[test]
    fn certificate_conflict_rules() {
        let klinikum = names(&["mail.klinikum-buchholz.example"]);
        // Another non-hosting organisation's own network: the certificate decides, less sure.
        check(
            Evidence {
                certificate_names: &klinikum,
                ..ip("192.0.2.7")
            },
            "klinikum certificate-domain medium mail.klinikum-buchholz.example",
        );
        // A hoster's platform name beside the tenant's names is the platform's, not the owner.
        let mixed = names(&["host17.hoster.example", "mail.musterstadt.example"]);
        check(
            Evidence {
                certificate_names: &mixed,
                ..ip("192.0.2.7")
            },
            "stadt certificate-domain high mail.musterstadt.example",
        );
        // Only a hoster's name, in a customer's own network: a managed server; CIDR decides.
        let hoster = names(&["host17.hoster.example"]);
        check(
            Evidence {
                certificate_names: &hoster,
                ..ip("192.0.2.7")
            },
            "stadt cidr high 192.0.2.0/24",
        );
        // Only a hoster's name anywhere else: the hoster's own server.
        check(
            Evidence {
                certificate_names: &hoster,
                ..ip("203.0.113.1")
            },
            "hoster certificate-domain high host17.hoster.example",
        );
        check(
            Evidence {
                certificate_names: &hoster,
                ..ip("198.51.100.5")
            },
            "hoster certificate-domain high host17.hoster.example",
        );
        // Two tenants, two hosters, or a name outside the registry: no certificate rule.
        for cert in [
            names(&["mail.klinikum-buchholz.example", "mail.musterstadt.example"]),
            names(&["a.hoster.example", "b.cloud.example"]),
            names(&["mail.klinikum-buchholz.example", "www.elsewhere.example"]),
            names(&["github.io"]),
        ] {
            check(
                Evidence {
                    certificate_names: &cert,
                    ..ip("192.0.2.7")
                },
                "stadt cidr high 192.0.2.0/24",
            );
        }
    }

    #[test]
    fn certificate_names_are_normalised() {
        for (cert, matched) in [
            (
                names(&["*.Klinikum-Buchholz.example"]),
                "*.Klinikum-Buchholz.example",
            ),
            (
                names(&["EXCH01", "192.0.2.5", "mail.klinikum-buchholz.example."]),
                "mail.klinikum-buchholz.example.",
            ),
        ] {
            check(
                Evidence {
                    certificate_names: &cert,
                    ..ip("203.0.113.1")
                },
                &format!("klinikum certificate-domain high {matched}"),
            );
        }
        // Names of only single labels or addresses say nothing.
        let none = names(&["EXCH01", "203.0.113.1"]);
        check(
            Evidence {
                certificate_names: &none,
                ..ip("203.0.113.1")
            },
            "none",
        );
    }

    #[test]
    fn the_longest_registered_domain_wins() {
        let school = names(&["www.gymnasium.musterstadt.example"]);
        check(
            Evidence {
                certificate_names: &school,
                ..ip("203.0.113.1")
            },
            "gymnasium certificate-domain high www.gymnasium.musterstadt.example",
        );
        assert_eq!(
            ATTRIBUTOR.organisation_of_name("www.musterstadt.example"),
            Some("stadt")
        );
        assert_eq!(
            ATTRIBUTOR.organisation_of_name("musterstadt.example"),
            Some("stadt")
        );
        assert_eq!(ATTRIBUTOR.organisation_of_name("example"), None);
        assert_eq!(ATTRIBUTOR.organisation_of_name("other.example"), None);
    }

    #[test]
    fn weaker_rules_in_order() {
        let outside = "203.0.113.1";
        check(
            Evidence {
                ptr_name: Some("Mail.Kanzlei-Weber.example."),
                ..ip(outside)
            },
            "kanzlei ptr-domain medium mail.kanzlei-weber.example",
        );
        check(
            Evidence {
                ntlm_dns_domain: Some("KANZLEI-WEBER.local"),
                ..ip(outside)
            },
            "kanzlei ntlm-domain low kanzlei-weber.local",
        );
        check(
            Evidence {
                ntlm_dns_domain: Some("ad.musterstadt.example"),
                ..ip(outside)
            },
            "stadt ntlm-domain low ad.musterstadt.example",
        );
        check(
            Evidence {
                ntlm_dns_domain: Some("KANZLEI-WEBER"),
                ..ip(outside)
            },
            "kanzlei ntlm-domain low kanzlei-weber",
        );
        check(
            Evidence {
                ntlm_dns_domain: Some("praxis.local"),
                ..ip(outside)
            },
            "praxis-b ntlm-domain low praxis.local",
        );
        // Shared first label, generic first label: no NTLM rule.
        check(
            Evidence {
                ntlm_dns_domain: Some("praxis.intern"),
                ..ip(outside)
            },
            "none",
        );
        check(
            Evidence {
                ntlm_dns_domain: Some("corp.local"),
                ..ip(outside)
            },
            "none",
        );
        check(
            Evidence {
                asn: Some(64501),
                ..ip(outside)
            },
            "cloud asn low AS64501",
        );
        check(
            Evidence {
                asn: Some(64999),
                ..ip(outside)
            },
            "none",
        );
        check(
            Evidence {
                ptr_name: Some("www.musterstadt.example"),
                ntlm_dns_domain: Some("kanzlei-weber.local"),
                asn: Some(64500),
                ..ip(outside)
            },
            "stadt ptr-domain medium www.musterstadt.example",
        );
        check(
            Evidence {
                ntlm_dns_domain: Some("kanzlei-weber.local"),
                asn: Some(64500),
                ..ip(outside)
            },
            "kanzlei ntlm-domain low kanzlei-weber.local",
        );
        // CIDR beats every weaker rule.
        check(
            Evidence {
                ptr_name: Some("www.musterstadt.example"),
                asn: Some(64501),
                ..ip("198.51.100.5")
            },
            "hoster cidr medium 198.51.100.0/22",
        );
    }

    proptest::proptest! {
        #[test]
        fn any_evidence_attributes_to_a_registered_organisation(
            ip in proptest::prelude::any::<std::net::IpAddr>(),
            cert in proptest::collection::vec("[A-Za-z0-9.*_-]{0,30}", 0..4),
            ptr in proptest::option::of("[A-Za-z0-9.-]{0,30}"),
            ntlm in proptest::option::of("[A-Za-z0-9.-]{0,30}"),
            asn in proptest::option::of(64490u32..64510),
        ) {
            let evidence = Evidence {
                ip,
                certificate_names: &cert,
                ptr_name: ptr.as_deref(),
                ntlm_dns_domain: ntlm.as_deref(),
                asn,
            };
            if let Some(a) = ATTRIBUTOR.attribute(&evidence) {
                proptest::prop_assert!(ATTRIBUTOR.orgs.iter().any(|o| o.id == a.organisation && o.sector == a.sector));
            }
        }
    }

    #[test]
    fn longest_prefix_reports_the_prefix() {
        assert_eq!(ATTRIBUTOR.prefixes(), 5);
        let hit = ATTRIBUTOR
            .longest_prefix("198.51.100.129".parse().unwrap())
            .unwrap();
        assert_eq!(hit.organisation, "klinikum");
        assert_eq!(hit.sector, Sector::Hospital);
        assert_eq!(hit.prefix.to_string(), "198.51.100.128/25");
    }
}
