//! Organisations, sectors and attribution: who runs a server, so that a census can be counted
//! by sector and an organisation can be told.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::observation::Confidence;

/// The sector an organisation belongs to: the groups BSI names in its Exchange warnings, and the
/// wider economy. The mapping to NIS2 and KRITIS sectors is in `surveyor-attrib`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sector {
    Hospital,
    MedicalPractice,
    CareServices,
    School,
    University,
    SocialServices,
    LawFirm,
    TaxAdviser,
    Municipality,
    MunicipalUtility,
    Energy,
    Water,
    Transport,
    Finance,
    IctHosting,
    Manufacturing,
    Retail,
    /// Any other business.
    Business,
}

impl Sector {
    pub const ALL: [Sector; 18] = [
        Sector::Hospital,
        Sector::MedicalPractice,
        Sector::CareServices,
        Sector::School,
        Sector::University,
        Sector::SocialServices,
        Sector::LawFirm,
        Sector::TaxAdviser,
        Sector::Municipality,
        Sector::MunicipalUtility,
        Sector::Energy,
        Sector::Water,
        Sector::Transport,
        Sector::Finance,
        Sector::IctHosting,
        Sector::Manufacturing,
        Sector::Retail,
        Sector::Business,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sector::Hospital => "hospital",
            Sector::MedicalPractice => "medical-practice",
            Sector::CareServices => "care-services",
            Sector::School => "school",
            Sector::University => "university",
            Sector::SocialServices => "social-services",
            Sector::LawFirm => "law-firm",
            Sector::TaxAdviser => "tax-adviser",
            Sector::Municipality => "municipality",
            Sector::MunicipalUtility => "municipal-utility",
            Sector::Energy => "energy",
            Sector::Water => "water",
            Sector::Transport => "transport",
            Sector::Finance => "finance",
            Sector::IctHosting => "ict-hosting",
            Sector::Manufacturing => "manufacturing",
            Sector::Retail => "retail",
            Sector::Business => "business",
        }
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Sector {
    type Err = String;

    fn from_str(s: &str) -> Result<Sector, String> {
        Sector::ALL
            .into_iter()
            .find(|sector| sector.as_str() == s)
            .ok_or_else(|| format!("unknown sector {s:?}"))
    }
}

/// One organisation of the registry: what it is, which addresses and names are its, and whom
/// to tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// Stable id, unique in the registry (e.g. `klinikum-buchholz`).
    pub id: String,
    pub name: String,
    pub sector: Sector,
    #[serde(default)]
    pub subsector: Option<String>,
    /// ISO 3166-1 alpha-2, upper case (`DE`).
    #[serde(default)]
    pub country: Option<String>,
    /// NAICS code(s) as given, kept for researchers who map sectors themselves.
    #[serde(default)]
    pub naics: Option<String>,
    /// Prefixes the organisation holds (IPv4 and IPv6), host bits zero.
    #[serde(default)]
    pub cidrs: Vec<ipnet::IpNet>,
    /// Autonomous systems the organisation operates (hosting providers, large networks).
    #[serde(default)]
    pub asns: Vec<u32>,
    /// Registrable domains, lower case (`klinikum-buchholz.example`).
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub abuse_contact: Option<String>,
    /// Language notifications are written in (BCP 47, e.g. `de`).
    #[serde(default)]
    pub language: Option<String>,
}

/// How a server was attributed to an organisation, strongest evidence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttributionRule {
    /// The address lies in a prefix the registry gives the organisation (longest prefix wins).
    Cidr,
    /// A name of the server's TLS certificate is under one of the organisation's domains.
    CertificateDomain,
    /// The address's PTR name is under one of the organisation's domains.
    PtrDomain,
    /// The AD DNS domain of the server's NTLM challenge names the organisation.
    NtlmDomain,
    /// The address's origin AS belongs to the organisation (hosting providers).
    Asn,
}

impl AttributionRule {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributionRule::Cidr => "cidr",
            AttributionRule::CertificateDomain => "certificate-domain",
            AttributionRule::PtrDomain => "ptr-domain",
            AttributionRule::NtlmDomain => "ntlm-domain",
            AttributionRule::Asn => "asn",
        }
    }
}

/// The organisation a server is attributed to, with the rule that decided and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The registry's id of the organisation.
    pub organisation: String,
    pub sector: Sector,
    pub rule: AttributionRule,
    pub confidence: Confidence,
    /// What the rule matched: the prefix (`192.0.2.0/24`), the name
    /// (`mail.klinikum.example`) or the AS (`AS64500`).
    pub matched: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_round_trip_by_name() {
        for sector in Sector::ALL {
            assert_eq!(sector.as_str().parse::<Sector>(), Ok(sector));
            let json = serde_json::to_string(&sector).unwrap();
            assert_eq!(json, format!("\"{}\"", sector.as_str()));
        }
        assert!("hospitals".parse::<Sector>().is_err());
    }
}
