//! The table of released Exchange builds, loaded from the CSV shipped with the crate.

use std::collections::BTreeMap;

use serde::Deserialize;
use surveyor_model::{Build, Family};
use time::Date;

use crate::table::{family_of_product, parse_release, read_rows};

/// One released build: a CU, or an update (SU/HU/RU) on a CU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub family: Family,
    pub build: Build,
    /// The update name as Microsoft writes it, without the product: "CU23 Oct25SU", "RTM".
    pub name: String,
    /// Release date; `None` when the sources give only a month.
    pub released: Option<Date>,
    /// The first and last day the release can have happened on: the same day twice for a dated
    /// row, the month's first and last day for a month-only row.
    pub released_between: (Date, Date),
    /// Where the row comes from, verbatim from the CSV.
    pub source: String,
    /// Whether the sources are thin or disagree about this row.
    pub flag: Flag,
}

/// The `flag` column: what the `UNCERTAIN`/`CONFLICT` markers in a row's source say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flag {
    /// Confirmed by the main sources.
    #[default]
    None,
    /// One source only, or a date derived from the update's month.
    Uncertain,
    /// The main sources give different builds or names for this update.
    Conflict,
}

impl Flag {
    /// The CSV spelling: empty, `uncertain` or `conflict`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::None => "",
            Flag::Uncertain => "uncertain",
            Flag::Conflict => "conflict",
        }
    }

    fn parse(s: &str) -> Result<Flag, String> {
        match s.trim() {
            "" => Ok(Flag::None),
            "uncertain" => Ok(Flag::Uncertain),
            "conflict" => Ok(Flag::Conflict),
            other => Err(format!(
                "bad flag {other:?} (want empty, uncertain or conflict)"
            )),
        }
    }
}

impl BuildInfo {
    /// "Exchange Server 2016 CU23 Oct25SU".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.family.product_name(), self.name)
    }

    /// The last day by which the build had certainly been released: what "released on or
    /// before a date" compares, so that a month-only row counts from the end of its month.
    pub fn available_by(&self) -> Date {
        self.released_between.1
    }

    /// Whether the row is a security or hotfix update (`Oct25SU`, `Apr24HU`, `Aug23SUv2`)
    /// rather than a CU, service pack, rollup or interim fix.
    pub fn is_update(&self) -> bool {
        self.name.split_whitespace().any(|word| {
            let word = word.trim_matches(|c: char| c == '(' || c == ')');
            let word = match word.rfind('v') {
                Some(i) if i > 0 && word[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &word[..i],
                _ => word,
            };
            word.len() == 7
                && word.is_ascii()
                && (word.ends_with("SU") || word.ends_with("HU"))
                && word[3..5].bytes().all(|b| b.is_ascii_digit())
        })
    }
}

/// Why a build table did not load.
#[derive(Debug, thiserror::Error)]
pub enum BuildTableError {
    #[error("build table line {line}: {reason}")]
    Row { line: u64, reason: String },
    #[error("build table is not valid CSV: {0}")]
    Csv(String),
    #[error("build table line {line}: build {build} appears twice")]
    Duplicate { line: u64, build: Build },
}

/// All known builds, indexed by build number.
#[derive(Debug, Clone, Default)]
pub struct BuildTable {
    by_build: BTreeMap<Build, BuildInfo>,
}

#[derive(Deserialize)]
pub(crate) struct Row {
    product: String,
    version_name: String,
    build: String,
    release_date: String,
    source: String,
    flag: String,
}

impl BuildTable {
    /// The table shipped with Surveyor.
    pub fn builtin() -> &'static BuildTable {
        &crate::KnowledgeBase::builtin().builds
    }

    /// Parses `product,version_name,build,release_date,source,flag` rows. Every row must be
    /// valid: a table that silently dropped lines would silently misname servers.
    pub fn from_csv(text: &str) -> Result<BuildTable, BuildTableError> {
        let (rows, issues) = read_rows(text, parse_row);
        if let Some(issue) = issues.into_iter().next() {
            return Err(if issue.csv {
                BuildTableError::Csv(issue.reason)
            } else {
                BuildTableError::Row {
                    line: issue.line,
                    reason: issue.reason,
                }
            });
        }
        let mut by_build = BTreeMap::new();
        for (line, info) in rows {
            let build = info.build;
            if by_build.insert(build, info).is_some() {
                return Err(BuildTableError::Duplicate { line, build });
            }
        }
        Ok(BuildTable { by_build })
    }

    /// A table of rows that already parsed; a later row with the same build replaces an
    /// earlier one (callers report duplicates themselves).
    pub(crate) fn from_rows(rows: Vec<BuildInfo>) -> BuildTable {
        BuildTable {
            by_build: rows.into_iter().map(|r| (r.build, r)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_build.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_build.is_empty()
    }

    /// Every row, lowest build first.
    pub fn iter(&self) -> impl Iterator<Item = &BuildInfo> {
        self.by_build.values()
    }

    /// Every row of one family, lowest build first.
    pub fn family_rows(&self, family: Family) -> impl Iterator<Item = &BuildInfo> {
        self.by_build.values().filter(move |i| i.family == family)
    }

    /// The row for exactly this build.
    pub fn exact(&self, build: Build) -> Option<&BuildInfo> {
        self.by_build.get(&build)
    }

    /// All rows of one CU (same major.minor.build), lowest revision first.
    pub fn cu_rows(&self, build: Build) -> impl Iterator<Item = &BuildInfo> {
        let lo = Build {
            revision: Some(0),
            ..build.cu()
        };
        let hi = Build {
            revision: Some(u32::MAX),
            ..build.cu()
        };
        self.by_build.range(lo..=hi).map(|(_, info)| info)
    }

    /// The CU release itself: the lowest revision known for that CU.
    pub fn cu_release(&self, build: Build) -> Option<&BuildInfo> {
        self.cu_rows(build).next()
    }

    /// The CU's name ("Exchange Server 2019 CU9"), without the remarks some rows carry.
    pub fn cu_name(&self, build: Build) -> Option<String> {
        let info = self.cu_release(build)?;
        let name = info.name.split(" (").next().unwrap_or(&info.name);
        Some(format!("{} {}", info.family.product_name(), name))
    }

    /// The newest row of the CU whose revision is not above `build`'s: real servers sometimes
    /// report a revision one or two below the official build (OWA folder vs product build), so
    /// the closest lower known update is the best name for an unknown revision.
    pub fn closest_lower(&self, build: Build) -> Option<&BuildInfo> {
        let rev = build.revision?;
        self.cu_rows(build)
            .take_while(|info| info.build.revision <= Some(rev))
            .last()
    }
}

pub(crate) fn parse_row(row: Row) -> Result<BuildInfo, String> {
    let family = family_of_product(&row.product)
        .ok_or_else(|| format!("unknown product {:?}", row.product))?;
    let build: Build = row.build.parse().map_err(|e| format!("{e}"))?;
    if !build.is_exact() {
        return Err(format!("build {build} lacks a revision"));
    }
    if build.family() != Some(family) {
        return Err(format!(
            "build {build} does not belong to {}",
            family.product_name()
        ));
    }
    let name = row.version_name.trim().to_string();
    if name.is_empty() {
        return Err("empty version_name".into());
    }
    let (released, released_between) = parse_release(&row.release_date)?;
    Ok(BuildInfo {
        family,
        build,
        name,
        released,
        released_between,
        source: row.source,
        flag: Flag::parse(&row.flag)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_loads_every_row() {
        let table = BuildTable::builtin();
        let lines = include_str!("../data/exchange-builds.csv").lines().count() - 1;
        assert_eq!(table.len(), lines);
        let se_rtm = table.exact("15.2.2562.17".parse().unwrap()).unwrap();
        assert_eq!(se_rtm.full_name(), "Exchange Server SE RTM");
        assert_eq!(se_rtm.released, Some(time::macros::date!(2025 - 07 - 01)));
        assert_eq!(se_rtm.flag, Flag::None);
        // A month-only row: available by the month's last day.
        let month = table.exact("15.0.620.34".parse().unwrap()).unwrap();
        assert_eq!((month.released, month.flag), (None, Flag::Uncertain));
        assert_eq!(month.available_by(), time::macros::date!(2013 - 08 - 31));
        let conflict = table.exact("15.1.1415.10".parse().unwrap()).unwrap();
        assert_eq!(conflict.flag, Flag::Conflict);
    }

    #[test]
    fn cu_lookups() {
        let table = BuildTable::builtin();
        let b = |s: &str| s.parse::<Build>().unwrap();
        assert_eq!(table.cu_release(b("15.1.2507")).unwrap().name, "CU23");
        assert_eq!(table.cu_release(b("15.2.1748.39")).unwrap().name, "CU15");
        assert_eq!(
            table.closest_lower(b("15.1.2507.62")).unwrap().name,
            "CU23 Oct25SU"
        );
        assert_eq!(table.closest_lower(b("15.2.858.1")), None);
        assert_eq!(
            table.cu_name(b("15.2.858")).unwrap(),
            "Exchange Server 2019 CU9"
        );
        // Every row of the CU, however many updates it has had: counted in the file itself.
        let in_file = include_str!("../data/exchange-builds.csv")
            .lines()
            .filter(|l| l.contains(",15.2.2562."))
            .count();
        assert_eq!(table.cu_rows(b("15.2.2562")).count(), in_file);
        assert!(table
            .cu_rows(b("15.2.2562"))
            .all(|r| r.build.cu() == b("15.2.2562")));
    }

    #[test]
    fn updates_are_told_from_cus_by_name() {
        let table = BuildTable::builtin();
        let is_update = |s: &str| table.exact(s.parse().unwrap()).unwrap().is_update();
        assert!(is_update("15.1.2507.61")); // CU23 Oct25SU
        assert!(is_update("15.2.1544.11")); // CU14 Apr24HU
        assert!(is_update("15.2.1118.37")); // CU12 Aug23SUv2
        assert!(is_update("15.2.221.14")); // RTM + KB4471389 (Jan19SU)
        assert!(!is_update("15.1.2507.6")); // CU23
        assert!(!is_update("15.2.2562.17")); // RTM
        assert!(!is_update("14.3.496.0")); // SP3 RU30
        assert!(!is_update("15.0.620.34")); // CU1 + KB2874216v2
    }

    fn load_err(csv: &str) -> String {
        BuildTable::from_csv(csv).unwrap_err().to_string()
    }

    #[test]
    fn broken_tables_are_rejected_with_a_reason() {
        let head = "product,version_name,build,release_date,source,flag\n";
        let e = load_err(&format!(
            "{head}Exchange Server 2016,CU23,15.1.2507,2022-04-20,x,\n"
        ));
        assert!(e.contains("lacks a revision"), "{e}");
        let e = load_err(&format!(
            "{head}Exchange Server 2016,CU23,15.2.2507.6,2022-04-20,x,\n"
        ));
        assert!(e.contains("does not belong"), "{e}");
        let e = load_err(&format!(
            "{head}Exchange Server 2099,CU1,15.1.1.1,2022-04-20,x,\n"
        ));
        assert!(e.contains("unknown product"), "{e}");
        let e = load_err(&format!(
            "{head}Exchange Server 2016,CU23,15.1.2507.6,2022-13-20,x,\n"
        ));
        assert!(e.contains("bad release_date"), "{e}");
        let e = load_err(&format!(
            "{head}Exchange Server 2016,CU23,15.1.2507.6,2022-04-20,x,maybe\n"
        ));
        assert!(e.contains("bad flag"), "{e}");
        let row = "Exchange Server 2016,CU23,15.1.2507.6,2022-04,x,uncertain\n";
        let e = load_err(&format!("{head}{row}{row}"));
        assert!(e.contains("appears twice"), "{e}");
        let e = load_err(&format!("{head}Exchange Server 2016,CU23\n"));
        assert!(e.contains("not valid CSV"), "{e}");
    }

    #[test]
    fn errors_name_the_right_line_whatever_the_line_ends() {
        // The `builds` fuzz target found CRLF files reported one line too low.
        let rows = [
            "product,version_name,build,release_date,source,flag",
            "Exchange Server 2016,CU23,15.1.2507.6,2022-04-20,x,",
            "Exchange Server 2016,CU23,15.1.2507.9,2022-13-20,x,",
        ];
        for end in ["\n", "\r\n", "\r"] {
            let e = load_err(&rows.join(end));
            assert!(e.contains("line 3"), "{end:?}: {e}");
        }
    }
}
