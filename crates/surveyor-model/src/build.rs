//! Exchange build numbers and product families.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An Exchange build number: `major.minor.build` (a CU, as the OWA resource path shows it) or
/// `major.minor.build.revision` (an exact update level, as X-OWA-Version shows it).
///
/// Parsing accepts the zero-padded long form real servers send (`15.02.2562.037`); display is
/// always the short form without padding (`15.2.2562.37`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Build {
    pub major: u16,
    pub minor: u16,
    pub build: u32,
    pub revision: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Exchange build number (want 3 or 4 dotted integers): {input:?}")]
pub struct BuildParseError {
    input: String,
}

impl Build {
    pub const fn new(major: u16, minor: u16, build: u32, revision: Option<u32>) -> Build {
        Build {
            major,
            minor,
            build,
            revision,
        }
    }

    /// The CU part of the build (`15.1.2507`), dropping the revision.
    pub fn cu(self) -> Build {
        Build {
            revision: None,
            ..self
        }
    }

    /// Whether the revision is known, i.e. the exact update level.
    pub fn is_exact(self) -> bool {
        self.revision.is_some()
    }

    /// The product family this build belongs to, if it is a known Exchange generation.
    ///
    /// SE shares 15.2 with 2019; SE starts at build 2562 (RTM 15.2.2562.17), the rule
    /// Microsoft's CSS-Exchange HealthChecker uses.
    pub fn family(self) -> Option<Family> {
        match (self.major, self.minor) {
            (8, _) => Some(Family::E2007),
            (14, _) => Some(Family::E2010),
            (15, 0) => Some(Family::E2013),
            (15, 1) => Some(Family::E2016),
            (15, 2) if self.build >= 2562 => Some(Family::Se),
            (15, 2) => Some(Family::E2019),
            _ => None,
        }
    }
}

impl FromStr for Build {
    type Err = BuildParseError;

    fn from_str(s: &str) -> Result<Build, BuildParseError> {
        let err = || BuildParseError {
            input: s.chars().take(64).collect(),
        };
        let parts: Vec<&str> = s.trim().split('.').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(err());
        }
        let num = |p: &str| -> Result<u32, BuildParseError> {
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        let major = u16::try_from(num(parts[0])?).map_err(|_| err())?;
        let minor = u16::try_from(num(parts[1])?).map_err(|_| err())?;
        let build = num(parts[2])?;
        let revision = parts.get(3).map(|p| num(p)).transpose()?;
        Ok(Build {
            major,
            minor,
            build,
            revision,
        })
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)?;
        if let Some(rev) = self.revision {
            write!(f, ".{rev}")?;
        }
        Ok(())
    }
}

impl Serialize for Build {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Build {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Build, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An on-premises Exchange product generation, as a census counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "2007")]
    E2007,
    #[serde(rename = "2010")]
    E2010,
    #[serde(rename = "2013")]
    E2013,
    #[serde(rename = "2016")]
    E2016,
    #[serde(rename = "2019")]
    E2019,
    #[serde(rename = "SE")]
    Se,
}

impl Family {
    /// All families, oldest first: the row order of a census table.
    pub const ALL: [Family; 6] = [
        Family::E2007,
        Family::E2010,
        Family::E2013,
        Family::E2016,
        Family::E2019,
        Family::Se,
    ];

    /// The short label used in JSON and tables ("2016", "SE").
    pub fn as_str(self) -> &'static str {
        match self {
            Family::E2007 => "2007",
            Family::E2010 => "2010",
            Family::E2013 => "2013",
            Family::E2016 => "2016",
            Family::E2019 => "2019",
            Family::Se => "SE",
        }
    }

    /// The product name as Microsoft writes it.
    pub fn product_name(self) -> &'static str {
        match self {
            Family::E2007 => "Exchange Server 2007",
            Family::E2010 => "Exchange Server 2010",
            Family::E2013 => "Exchange Server 2013",
            Family::E2016 => "Exchange Server 2016",
            Family::E2019 => "Exchange Server 2019",
            Family::Se => "Exchange Server SE",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = String;

    fn from_str(s: &str) -> Result<Family, String> {
        Family::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown Exchange family {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<(&str, Option<Family>)>) {
        let got = input
            .parse::<Build>()
            .ok()
            .map(|b| (b.to_string(), b.family()));
        let expected = expected.map(|(s, f)| (s.to_string(), f));
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn parses_builds_and_families() {
        check("15.1.2507.61", Some(("15.1.2507.61", Some(Family::E2016))));
        check("15.02.2562.037", Some(("15.2.2562.37", Some(Family::Se))));
        check("15.2.2561", Some(("15.2.2561", Some(Family::E2019))));
        check("15.2.1748", Some(("15.2.1748", Some(Family::E2019))));
        check("15.0.1497.12", Some(("15.0.1497.12", Some(Family::E2013))));
        check("14.3.123.4", Some(("14.3.123.4", Some(Family::E2010))));
        check("8.3.485.1", Some(("8.3.485.1", Some(Family::E2007))));
        check("15.20.1240.20", Some(("15.20.1240.20", None)));
        check(" 15.1.2507 ", Some(("15.1.2507", Some(Family::E2016))));
        check("15.1", None);
        check("15.1.2507.61.1", None);
        check("15.1.x.1", None);
        check("15.1.-3", None);
        check("15..2507", None);
        check("99999999.1.1", None);
        check("", None);
    }

    #[test]
    fn serde_uses_short_form() {
        let b: Build = serde_json::from_str("\"15.01.2507.061\"").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"15.1.2507.61\"");
        assert_eq!(serde_json::to_string(&Family::Se).unwrap(), "\"SE\"");
        assert_eq!("se".parse::<Family>().unwrap(), Family::Se);
    }
}
