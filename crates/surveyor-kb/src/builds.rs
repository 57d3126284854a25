//! The table of released Exchange builds, loaded from the CSV shipped with the crate.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use surveyor_model::{Build, Family};
use time::Date;

/// The build table compiled into the binary. Checked by a test, so a broken edit of the CSV
/// fails the build's tests rather than a scan.
static BUILTIN: LazyLock<BuildTable> = LazyLock::new(|| {
    BuildTable::from_csv(include_str!("../data/exchange-builds.csv"))
        .expect("the built-in build table parses (checked by tests)")
});

/// One released build: a CU, or an update (SU/HU/RU) on a CU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub family: Family,
    pub build: Build,
    /// The update name as Microsoft writes it, without the product: "CU23 Oct25SU", "RTM".
    pub name: String,
    /// Release date; `None` when the sources give only a month.
    pub released: Option<Date>,
    /// Where the row comes from, verbatim from the CSV.
    pub source: String,
}

impl BuildInfo {
    /// "Exchange Server 2016 CU23 Oct25SU".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.family.product_name(), self.name)
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
struct Row {
    product: String,
    version_name: String,
    build: String,
    release_date: String,
    source: String,
}

impl BuildTable {
    /// The table shipped with Surveyor.
    pub fn builtin() -> &'static BuildTable {
        &BUILTIN
    }

    /// Parses `product,version_name,build,release_date,source` rows. Every row must be valid:
    /// a table that silently dropped lines would silently misname servers.
    pub fn from_csv(text: &str) -> Result<BuildTable, BuildTableError> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut by_build = BTreeMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| BuildTableError::Csv(e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            let row: Row = record.deserialize(None).map_err(|e| BuildTableError::Row {
                line,
                reason: e.to_string(),
            })?;
            let info = parse_row(row).map_err(|reason| BuildTableError::Row { line, reason })?;
            if by_build.insert(info.build, info.clone()).is_some() {
                return Err(BuildTableError::Duplicate {
                    line,
                    build: info.build,
                });
            }
        }
        Ok(BuildTable { by_build })
    }

    pub fn len(&self) -> usize {
        self.by_build.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_build.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &BuildInfo> {
        self.by_build.values()
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

fn parse_row(row: Row) -> Result<BuildInfo, String> {
    let family = match row.product.as_str() {
        "Exchange Server 2007" => Family::E2007,
        "Exchange Server 2010" => Family::E2010,
        "Exchange Server 2013" => Family::E2013,
        "Exchange Server 2016" => Family::E2016,
        "Exchange Server 2019" => Family::E2019,
        "Exchange Server SE" => Family::Se,
        other => return Err(format!("unknown product {other:?}")),
    };
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
    let released = parse_date(&row.release_date)?;
    Ok(BuildInfo {
        family,
        build,
        name,
        released,
        source: row.source,
    })
}

/// `YYYY-MM-DD`, or `YYYY-MM` when a source gives only the month (recorded as unknown day).
fn parse_date(s: &str) -> Result<Option<Date>, String> {
    let full = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(s, full) {
        return Ok(Some(d));
    }
    // A month-only date still has to name a real month.
    if s.len() == 7 && Date::parse(&format!("{s}-01"), full).is_ok() {
        return Ok(None);
    }
    Err(format!("bad release_date {s:?}"))
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
        assert_eq!(table.cu_rows(b("15.2.2562")).count(), 12);
    }

    fn load_err(csv: &str) -> String {
        BuildTable::from_csv(csv).unwrap_err().to_string()
    }

    #[test]
    fn broken_tables_are_rejected_with_a_reason() {
        let head = "product,version_name,build,release_date,source\n";
        let e = load_err(&format!(
            "{head}Exchange Server 2016,CU23,15.1.2507,2022-04-20,x\n"
        ));
        assert!(e.contains("lacks a revision"), "{e}");
        let e = load_err(&format!(
            "{head}Exchange Server 2016,CU23,15.2.2507.6,2022-04-20,x\n"
        ));
        assert!(e.contains("does not belong"), "{e}");
        let e = load_err(&format!(
            "{head}Exchange Server 2099,CU1,15.1.1.1,2022-04-20,x\n"
        ));
        assert!(e.contains("unknown product"), "{e}");
        let e = load_err(&format!(
            "{head}Exchange Server 2016,CU23,15.1.2507.6,2022-13-20,x\n"
        ));
        assert!(e.contains("bad release_date"), "{e}");
        let row = "Exchange Server 2016,CU23,15.1.2507.6,2022-04,x\n";
        let e = load_err(&format!("{head}{row}{row}"));
        assert!(e.contains("appears twice"), "{e}");
        let e = load_err(&format!("{head}Exchange Server 2016,CU23\n"));
        assert!(e.contains("not valid CSV"), "{e}");
    }
}
