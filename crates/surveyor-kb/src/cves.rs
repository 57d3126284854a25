//! CVEs and the first build that fixes each on each CU, from `data/cves.csv`.

use std::collections::BTreeMap;

use serde::Deserialize;
use surveyor_model::{Build, Family};
use time::Date;

use crate::table::{parse_bool, parse_day, read_rows, TableError};

/// The file name, as problems and errors name it.
pub const FILE: &str = "cves.csv";

pub use surveyor_model::observation::Severity;

/// `critical`, `important`, `moderate`, `low` or `unknown`.
fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::ALL
        .into_iter()
        .find(|v| v.as_str() == s.trim())
        .ok_or_else(|| format!("bad severity {s:?}"))
}

/// One (CVE, CU) row: the first build of that CU that contains the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CveFix {
    /// `CVE-YYYY-NNNN`.
    pub cve: String,
    /// The first fixed build on its CU (4 parts, a row of the build table).
    pub fixed: Build,
    /// The update that ships it, as the build table names it: `Oct25SU`, `RU30`, `CU14`.
    pub update: String,
    /// The day Microsoft published the CVE: the fixing update's release date unless the note
    /// says otherwise (a zero-day, a fix shipped before disclosure). Before that day a verdict
    /// does not list the CVE.
    pub published: Date,
    pub severity: Severity,
    /// `None` when our sources do not say.
    pub exploited_in_the_wild: Option<bool>,
    /// The fix works only with configuration a scan cannot see (Extended Protection, a setting
    /// override, manual steps).
    pub config_dependent: bool,
    pub note: String,
    pub source: String,
}

impl CveFix {
    pub fn family(&self) -> Option<Family> {
        self.fixed.family()
    }

    /// (year, number), for ordering CVEs by number rather than text.
    pub fn sort_key(&self) -> (u32, u32) {
        cve_key(&self.cve).unwrap_or((0, 0))
    }
}

/// All CVE rows, in file order.
#[derive(Debug, Clone, Default)]
pub struct CveTable {
    fixes: Vec<CveFix>,
    /// Per family, its CVEs by number, each as (a row of it, its rows lowest CU first), as
    /// indices into `fixes`: built once, read for every classified server.
    families: BTreeMap<Family, FamilyIndex>,
}

/// One family's CVEs by number: (a row of the CVE, its rows lowest CU first), as indices.
type FamilyIndex = Vec<(usize, Vec<usize>)>;

#[derive(Deserialize)]
pub(crate) struct Row {
    cve: String,
    fixed_build: String,
    update: String,
    published: String,
    severity: String,
    exploited_in_the_wild: String,
    config_dependent: String,
    note: String,
    source: String,
}

impl CveTable {
    /// The table shipped with Surveyor.
    pub fn builtin() -> &'static CveTable {
        &crate::KnowledgeBase::builtin().cves
    }

    /// Parses `cve,fixed_build,update,published,severity,exploited_in_the_wild,config_dependent,
    /// note,source`.
    /// A CVE listed twice for one CU is an error: which row would count?
    pub fn from_csv(text: &str) -> Result<CveTable, TableError> {
        let err = |line, reason| TableError {
            file: FILE,
            line,
            reason,
        };
        let (rows, issues) = read_rows(text, parse_row);
        if let Some(issue) = issues.into_iter().next() {
            return Err(err(issue.line, issue.reason));
        }
        let mut table = CveTable::default();
        for (line, fix) in rows {
            if table.find(&fix.cve, fix.fixed).is_some() {
                return Err(err(
                    line,
                    format!("{} is listed twice for CU {}", fix.cve, fix.fixed.cu()),
                ));
            }
            table.fixes.push(fix);
        }
        table.families = index_by_family(&table.fixes);
        Ok(table)
    }

    pub fn iter(&self) -> impl Iterator<Item = &CveFix> {
        self.fixes.iter()
    }

    pub fn len(&self) -> usize {
        self.fixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fixes.is_empty()
    }

    /// The row of `cve` for the CU of `build`.
    pub fn find(&self, cve: &str, build: Build) -> Option<&CveFix> {
        self.fixes
            .iter()
            .find(|f| f.cve == cve && f.fixed.cu() == build.cu())
    }

    /// Every row of one CVE, on any family.
    pub fn rows_of<'a>(&'a self, cve: &'a str) -> impl Iterator<Item = &'a CveFix> {
        self.fixes.iter().filter(move |f| f.cve == cve)
    }

    /// The CVEs with at least one row for `family`, ordered by number, each with its rows for
    /// that family (lowest CU first).
    pub fn for_family(&self, family: Family) -> Vec<(&str, Vec<&CveFix>)> {
        self.families.get(&family).map_or_else(Vec::new, |cves| {
            cves.iter()
                .map(|(cve, rows)| {
                    let rows = rows.iter().map(|&i| &self.fixes[i]).collect();
                    (self.fixes[*cve].cve.as_str(), rows)
                })
                .collect()
        })
    }
}

/// The index behind [`CveTable::for_family`].
fn index_by_family(fixes: &[CveFix]) -> BTreeMap<Family, FamilyIndex> {
    // Per family: (year, number, id) → rows.
    type ByNumber<'a> = BTreeMap<(u32, u32, &'a str), Vec<usize>>;
    let mut grouped: BTreeMap<Family, ByNumber<'_>> = BTreeMap::new();
    for (i, fix) in fixes.iter().enumerate() {
        let Some(family) = fix.family() else { continue };
        let key = cve_key(&fix.cve).unwrap_or((0, 0));
        grouped
            .entry(family)
            .or_default()
            .entry((key.0, key.1, fix.cve.as_str()))
            .or_default()
            .push(i);
    }
    grouped
        .into_iter()
        .map(|(family, cves)| {
            let cves = cves
                .into_values()
                .map(|mut rows| {
                    rows.sort_by_key(|&i| fixes[i].fixed);
                    (rows[0], rows)
                })
                .collect();
            (family, cves)
        })
        .collect()
}

/// `CVE-2021-26855` → (2021, 26855).
fn cve_key(cve: &str) -> Option<(u32, u32)> {
    let rest = cve.strip_prefix("CVE-")?;
    let (year, number) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if year.len() != 4 || number.len() < 4 || !digits(year) || !digits(number) {
        return None;
    }
    Some((year.parse().ok()?, number.parse().ok()?))
}

pub(crate) fn parse_row(row: Row) -> Result<CveFix, String> {
    let cve = row.cve.trim().to_string();
    if cve_key(&cve).is_none() {
        return Err(format!("bad CVE id {cve:?} (want CVE-YYYY-NNNN)"));
    }
    let fixed: Build = row.fixed_build.parse().map_err(|e| format!("{e}"))?;
    if !fixed.is_exact() {
        return Err(format!("fixed_build {fixed} lacks a revision"));
    }
    if fixed.family().is_none() {
        return Err(format!(
            "fixed_build {fixed} is no on-premises Exchange build"
        ));
    }
    let update = row.update.trim().to_string();
    if update.is_empty() {
        return Err("empty update".into());
    }
    let exploited_in_the_wild = match row.exploited_in_the_wild.trim() {
        "unknown" => None,
        other => Some(
            parse_bool("exploited_in_the_wild", other).map_err(|e| format!("{e} (or unknown)"))?,
        ),
    };
    Ok(CveFix {
        cve,
        fixed,
        update,
        published: parse_day(&row.published)?,
        severity: parse_severity(&row.severity)?,
        exploited_in_the_wild,
        config_dependent: parse_bool("config_dependent", &row.config_dependent)?,
        note: row.note,
        source: row.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table() {
        let t = CveTable::builtin();
        let lines = include_str!("../data/cves.csv").lines().count() - 1;
        assert_eq!(t.len(), lines);
        let pl = t
            .find("CVE-2021-26855", "15.1.2106".parse().unwrap())
            .unwrap();
        assert_eq!(pl.fixed.to_string(), "15.1.2106.13");
        assert_eq!(pl.severity, Severity::Critical);
        assert_eq!(pl.exploited_in_the_wild, Some(true));
        let se = t.for_family(Family::Se);
        assert!(se.iter().any(|(cve, _)| *cve == "CVE-2024-21410"));
        assert!(se.iter().all(|(_, rows)| rows.len() == 1));
        let e2010: Vec<&str> = t
            .for_family(Family::E2010)
            .iter()
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(e2010, ["CVE-2020-0688", "CVE-2020-0692", "CVE-2021-26857"]);
    }

    #[test]
    fn the_family_index_lists_every_row_once_in_order() {
        let t = CveTable::builtin();
        for family in Family::ALL {
            let listed = t.for_family(family);
            // Every row of the family appears once, under its own CVE.
            let mut seen: Vec<*const CveFix> = Vec::new();
            for (cve, rows) in &listed {
                assert!(rows
                    .iter()
                    .all(|f| f.cve == *cve && f.family() == Some(family)));
                assert!(rows.windows(2).all(|w| w[0].fixed <= w[1].fixed), "{cve}");
                seen.extend(rows.iter().map(|f| *f as *const CveFix));
            }
            let all = t.iter().filter(|f| f.family() == Some(family)).count();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), all, "{family:?}");
            // CVEs by number, each once.
            let keys: Vec<_> = listed.iter().map(|(c, _)| cve_key(c).unwrap()).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{family:?}");
        }
    }

    #[test]
    fn broken_rows_are_rejected() {
        let head = "cve,fixed_build,update,published,severity,exploited_in_the_wild,config_dependent,note,source\n";
        let err = |body: &str| {
            CveTable::from_csv(&format!("{head}{body}"))
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("CVE-21-1,15.1.2507.61,Oct25SU,2025-10-14,unknown,unknown,false,,x\n")
                .contains("bad CVE")
        );
        assert!(
            err("CVE-2025-59249,15.1.2507,Oct25SU,2025-10-14,unknown,unknown,false,,x\n")
                .contains("revision")
        );
        assert!(
            err("CVE-2025-59249,15.20.1.1,Oct25SU,2025-10-14,unknown,unknown,false,,x\n")
                .contains("on-premises")
        );
        assert!(
            err("CVE-2025-59249,15.1.2507.61,Oct25SU,2025-10-14,severe,unknown,false,,x\n")
                .contains("severity")
        );
        assert!(
            err("CVE-2025-59249,15.1.2507.61,Oct25SU,2025-10-14,unknown,maybe,false,,x\n")
                .contains("unknown")
        );
        assert!(
            err("CVE-2025-59249,15.1.2507.61,Oct25SU,Oct 2025,unknown,unknown,false,,x\n")
                .contains("bad date")
        );
        let row = "CVE-2025-59249,15.1.2507.61,Oct25SU,2025-10-14,unknown,unknown,false,,x\n";
        assert!(err(&format!("{row}{row}")).contains("twice"));
    }
}
