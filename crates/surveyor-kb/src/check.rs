//! `surveyor kb check`: consistency of the data files, within and across them.
//!
//! Loading a file stops at its first bad row; checking reads every row and reports every
//! problem, then cross-checks what loaded. A problem the data already documents (a row flagged
//! `conflict` or `uncertain`) is reported but does not fail the check.

use std::collections::BTreeMap;
use std::fmt;

use surveyor_model::{Build, Family};
use time::Date;

use crate::builds::{self, BuildInfo, BuildTable, Flag};
use crate::cves::{self, CveFix};
use crate::esu::{self, EsuPeriod};
use crate::exchange_online;
use crate::knowledge::Sources;
use crate::lifecycle::{self, Lifecycle};
use crate::table::read_rows;

/// The build table's file name.
pub const BUILDS_FILE: &str = "exchange-builds.csv";

/// One thing wrong with the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file under `crates/surveyor-kb/data/`.
    pub file: &'static str,
    /// 1-based line, when the problem is one row's.
    pub line: Option<u64>,
    /// `true` when a row involved is flagged `conflict` or `uncertain`: the data already says
    /// its sources disagree or are thin, so the check reports it without failing.
    pub documented: bool,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        f.write_str(&self.message)?;
        if self.documented {
            f.write_str(" (documented)")?;
        }
        Ok(())
    }
}

/// Checks the data files: every row parses (dates, builds, products, flags), a row's flag
/// agrees with the markers in its source, builds of a CU increase with their release dates,
/// every lifecycle product is known and every family has one, ESU periods and eligible CUs
/// match the build table, and every CVE's fixed build and every Exchange Online minimum is a
/// row of the build table with the update it names.
pub fn check(sources: &Sources<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let builds = check_builds(sources.builds, &mut problems);
    let lifecycle = check_lifecycle(sources.lifecycle, &mut problems);
    let periods = check_esu(sources.esu, &builds, &lifecycle, &mut problems);
    check_esu_updates(&builds, &lifecycle, &periods, &mut problems);
    check_cves(sources.cves, &builds, &mut problems);
    check_exchange_online(sources.exchange_online, &builds, &mut problems);
    problems
}

fn error(file: &'static str, line: Option<u64>, message: String) -> Problem {
    Problem {
        file,
        line,
        documented: false,
        message,
    }
}

/// Rows that parsed, by build, with their lines; duplicates and parse errors are problems.
fn check_builds(text: &str, problems: &mut Vec<Problem>) -> BuildTable {
    let (rows, issues) = read_rows(text, builds::parse_row);
    for issue in issues {
        problems.push(error(BUILDS_FILE, Some(issue.line), issue.reason));
    }
    let mut lines: BTreeMap<Build, u64> = BTreeMap::new();
    let mut kept = Vec::new();
    for (line, info) in rows {
        if let Some(first) = lines.get(&info.build) {
            problems.push(error(
                BUILDS_FILE,
                Some(line),
                format!("build {} appears twice (first on line {first})", info.build),
            ));
            continue;
        }
        let marked = if info.source.contains("CONFLICT") {
            Flag::Conflict
        } else if info.source.contains("UNCERTAIN") {
            Flag::Uncertain
        } else {
            Flag::None
        };
        if marked != info.flag {
            problems.push(error(
                BUILDS_FILE,
                Some(line),
                format!(
                    "flag {:?} disagrees with the source's markers (want {:?})",
                    info.flag.as_str(),
                    marked.as_str()
                ),
            ));
        }
        lines.insert(info.build, line);
        kept.push(info);
    }
    // Within a CU a higher revision is a later update: its release cannot be before a lower
    // revision's. Month-only dates compare by their whole month.
    let by_cu = group_by_cu(&kept);
    for rows in by_cu.values() {
        for (i, later) in rows.iter().enumerate() {
            for earlier in &rows[..i] {
                if earlier.released_between.0 > later.released_between.1 {
                    problems.push(Problem {
                        file: BUILDS_FILE,
                        line: lines.get(&later.build).copied(),
                        documented: earlier.flag != Flag::None || later.flag != Flag::None,
                        message: format!(
                            "{} ({}) is released before the lower revision {} ({})",
                            later.build,
                            show_release(later),
                            earlier.build,
                            show_release(earlier)
                        ),
                    });
                }
            }
        }
    }
    BuildTable::from_rows(kept)
}

fn group_by_cu(rows: &[BuildInfo]) -> BTreeMap<Build, Vec<&BuildInfo>> {
    let mut by_cu: BTreeMap<Build, Vec<&BuildInfo>> = BTreeMap::new();
    for r in rows {
        by_cu.entry(r.build.cu()).or_default().push(r);
    }
    for rows in by_cu.values_mut() {
        rows.sort_by_key(|r| r.build);
    }
    by_cu
}

fn show_release(r: &BuildInfo) -> String {
    match r.released {
        Some(d) => d.to_string(),
        None => format!(
            "{}-{:02}",
            r.released_between.0.year(),
            u8::from(r.released_between.0.month())
        ),
    }
}

fn check_lifecycle(text: &str, problems: &mut Vec<Problem>) -> Vec<Lifecycle> {
    let (rows, issues) = read_rows(text, lifecycle::parse_row);
    for issue in issues {
        problems.push(error(lifecycle::FILE, Some(issue.line), issue.reason));
    }
    let mut kept: Vec<Lifecycle> = Vec::new();
    for (line, row) in rows {
        if kept.iter().any(|l| l.family == row.family) {
            problems.push(error(
                lifecycle::FILE,
                Some(line),
                format!("{} appears twice", row.family.product_name()),
            ));
            continue;
        }
        kept.push(row);
    }
    for family in Family::ALL {
        if !kept.iter().any(|l| l.family == family) {
            problems.push(error(
                lifecycle::FILE,
                None,
                format!("no row for {}", family.product_name()),
            ));
        }
    }
    kept
}

fn extended_end(lifecycle: &[Lifecycle], family: Family) -> Option<Date> {
    lifecycle
        .iter()
        .find(|l| l.family == family)
        .and_then(|l| l.extended_end)
}

fn check_esu(
    text: &str,
    builds: &BuildTable,
    lifecycle: &[Lifecycle],
    problems: &mut Vec<Problem>,
) -> Vec<EsuPeriod> {
    let (rows, issues) = read_rows(text, esu::parse_row);
    for issue in issues {
        problems.push(error(esu::FILE, Some(issue.line), issue.reason));
    }
    let mut previous: Option<&EsuPeriod> = None;
    for (line, period) in &rows {
        if let Some(p) = previous {
            if period.period <= p.period || period.start <= p.end {
                problems.push(error(
                    esu::FILE,
                    Some(*line),
                    format!(
                        "period {} must follow period {} (higher number, starting after {})",
                        period.period, p.period, p.end
                    ),
                ));
            }
        }
        for cu in &period.eligible {
            let Some(release) = builds.cu_release(*cu) else {
                problems.push(error(
                    esu::FILE,
                    Some(*line),
                    format!("eligible CU {cu} is not in the build table"),
                ));
                continue;
            };
            match extended_end(lifecycle, release.family) {
                Some(end) if period.start > end => {}
                Some(end) => problems.push(error(
                    esu::FILE,
                    Some(*line),
                    format!(
                        "period {} starts on {} but {} is supported until {end}",
                        period.period,
                        period.start,
                        release.family.product_name()
                    ),
                )),
                None => problems.push(error(
                    esu::FILE,
                    Some(*line),
                    format!(
                        "eligible CU {cu} belongs to {}, which has no end of extended support",
                        release.family.product_name()
                    ),
                )),
            }
        }
        previous = Some(period);
    }
    rows.into_iter().map(|(_, p)| p).collect()
}

/// Every update of a product with an ESU programme released past its extended support must
/// come from an ESU period that covers its CU: anything else contradicts the lifecycle or ESU
/// data. (Products without ESU did get emergency updates after their end, such as 2010 RU31 and
/// RU32; those are facts, not contradictions.)
fn check_esu_updates(
    builds: &BuildTable,
    lifecycle: &[Lifecycle],
    periods: &[EsuPeriod],
    problems: &mut Vec<Problem>,
) {
    let has_esu = |family: Family| {
        periods
            .iter()
            .flat_map(|p| &p.eligible)
            .any(|cu| cu.family() == Some(family))
    };
    for row in builds.iter().filter(|r| has_esu(r.family)) {
        let Some(end) = extended_end(lifecycle, row.family) else {
            continue;
        };
        if row.released_between.0 <= end {
            continue;
        }
        let (from, to) = row.released_between;
        let covered = periods
            .iter()
            .any(|p| p.eligible.contains(&row.build.cu()) && p.start <= from && to <= p.end);
        if !covered {
            problems.push(Problem {
                file: BUILDS_FILE,
                line: None,
                documented: row.flag != Flag::None,
                message: format!(
                    "{} {} is released after the end of extended support ({end}) but no ESU \
                     period of esu.csv covers its CU and date",
                    row.build,
                    row.full_name()
                ),
            });
        }
    }
}

fn check_cves(text: &str, builds: &BuildTable, problems: &mut Vec<Problem>) {
    let (rows, issues) = read_rows(text, cves::parse_row);
    for issue in issues {
        problems.push(error(cves::FILE, Some(issue.line), issue.reason));
    }
    let mut seen: BTreeMap<(String, Build), u64> = BTreeMap::new();
    let mut published: BTreeMap<String, (Date, u64)> = BTreeMap::new();
    for (line, fix) in &rows {
        let fix: &CveFix = fix;
        let key = (fix.cve.clone(), fix.fixed.cu());
        if let Some(first) = seen.insert(key, *line) {
            problems.push(error(
                cves::FILE,
                Some(*line),
                format!(
                    "{} is listed twice for CU {} (first on line {first})",
                    fix.cve,
                    fix.fixed.cu()
                ),
            ));
        }
        match published.get(&fix.cve) {
            Some((date, first)) if *date != fix.published => problems.push(error(
                cves::FILE,
                Some(*line),
                format!(
                    "{} published {} here but {date} on line {first}",
                    fix.cve, fix.published
                ),
            )),
            Some(_) => {}
            None => {
                published.insert(fix.cve.clone(), (fix.published, *line));
            }
        }
        match builds.exact(fix.fixed) {
            None => problems.push(error(
                cves::FILE,
                Some(*line),
                format!(
                    "{}: fixed build {} is not in the build table",
                    fix.cve, fix.fixed
                ),
            )),
            Some(row) if !row.name.contains(&fix.update) => problems.push(error(
                cves::FILE,
                Some(*line),
                format!(
                    "{}: update {:?} does not match the build table's name {:?} for {}",
                    fix.cve, fix.update, row.name, fix.fixed
                ),
            )),
            Some(_) => {}
        }
    }
}

fn check_exchange_online(text: &str, builds: &BuildTable, problems: &mut Vec<Problem>) {
    let file = exchange_online::FILE;
    let (rows, issues) = read_rows(text, exchange_online::parse_row);
    for issue in issues {
        problems.push(error(file, Some(issue.line), issue.reason));
    }
    let mut seen: BTreeMap<(Date, Build), u64> = BTreeMap::new();
    for (line, rule) in &rows {
        if let Some(first) = seen.insert((rule.effective, rule.minimum.cu()), *line) {
            problems.push(error(
                file,
                Some(*line),
                format!(
                    "CU {} has two minimums from {} (first on line {first})",
                    rule.minimum.cu(),
                    rule.effective
                ),
            ));
        }
        match builds.exact(rule.minimum) {
            None => problems.push(error(
                file,
                Some(*line),
                format!("minimum build {} is not in the build table", rule.minimum),
            )),
            Some(row) if !row.name.contains(&rule.update) => problems.push(error(
                file,
                Some(*line),
                format!(
                    "update {:?} does not match the build table's name {:?} for {}",
                    rule.update, row.name, rule.minimum
                ),
            )),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped data has no problem but documented ones.
    #[test]
    fn shipped_data_is_consistent() {
        let problems = check(&Sources::BUILTIN);
        let undocumented: Vec<String> = problems
            .iter()
            .filter(|p| !p.documented)
            .map(ToString::to_string)
            .collect();
        assert!(undocumented.is_empty(), "{undocumented:#?}");
    }

    const BUILDS: &str = "product,version_name,build,release_date,source,flag
Exchange Server 2016,CU22 Nov22SU,15.1.2375.37,2022-11-08,MS,
Exchange Server 2016,CU23,15.1.2507.6,2022-04-20,MS,
Exchange Server 2016,CU23 Oct25SU,15.1.2507.61,2025-10-14,MS,
Exchange Server 2016,CU23 Dec25SU,15.1.2507.63,2025-12-09,MS,
";
    const LIFECYCLE: &str = "product,mainstream_end,extended_end,modern_lifecycle,source
Exchange Server 2007,,2017-04-11,false,x
Exchange Server 2010,,2020-10-13,false,x
Exchange Server 2013,,2023-04-11,false,x
Exchange Server 2016,,2025-10-14,false,x
Exchange Server 2019,,2025-10-14,false,x
Exchange Server SE,,,true,x
";
    const ESU: &str = "period,start,end,eligible_cus,source
1,2025-10-15,2026-04-14,15.1.2507,x
";
    const CVES: &str = "cve,fixed_build,update,published,severity,exploited_in_the_wild,config_dependent,note,source
CVE-2025-59249,15.1.2507.61,Oct25SU,2025-10-14,unknown,unknown,false,,x
";
    const EXO: &str = "effective,minimum_build,update,source
2026-09-08,15.1.2507.61,Oct25SU,x
";

    /// Sources with one file replaced; the problems found, as text.
    fn problems_with(file: &str, text: &str) -> Vec<String> {
        let mut s = Sources {
            builds: BUILDS,
            lifecycle: LIFECYCLE,
            esu: ESU,
            cves: CVES,
            exchange_online: EXO,
        };
        match file {
            "builds" => s.builds = text,
            "lifecycle" => s.lifecycle = text,
            "esu" => s.esu = text,
            "cves" => s.cves = text,
            "exo" => s.exchange_online = text,
            _ => {}
        }
        check(&s).iter().map(ToString::to_string).collect()
    }

    fn check_one(file: &str, text: &str, expected: &[&str]) {
        let got = problems_with(file, text);
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (g, e) in got.iter().zip(expected) {
            assert!(g.contains(e), "{g:?} should contain {e:?}");
        }
    }

    #[test]
    fn problems_are_found() {
        check_one("none", "", &[]);
        // Dates out of order within a CU; documented when a row is flagged.
        let swapped = BUILDS.replace("2025-10-14,MS,", "2026-01-14,MS,");
        check_one("builds", &swapped, &["released before the lower revision"]);
        let flagged = BUILDS.replace(
            "2025-10-14,MS,",
            "2026-01-14,MS CONFLICT: two sources,conflict",
        );
        check_one("builds", &flagged, &["(documented)"]);
        // A flag without its marker, a bad date, a duplicate.
        let unflagged = BUILDS.replace("2022-04-20,MS,", "2022-04-20,MS,uncertain");
        check_one(
            "builds",
            &unflagged,
            &["disagrees with the source's markers"],
        );
        let bad_date = BUILDS.replace("2022-04-20", "2022-04-31");
        check_one("builds", &bad_date, &["line 3: bad release_date"]);
        let twice = format!("{BUILDS}Exchange Server 2016,CU23,15.1.2507.6,2022-04-20,MS,\n");
        check_one("builds", &twice, &["appears twice"]);
        // An ESU-only update outside every period.
        let late =
            format!("{BUILDS}Exchange Server 2016,CU23 Jun26SU,15.1.2507.69,2026-06-09,MS,\n");
        check_one("builds", &late, &["no ESU period"]);
        // Lifecycle: unknown product, missing family.
        let unknown = format!("{LIFECYCLE}Exchange Server 2099,,2030-01-01,false,x\n");
        check_one("lifecycle", &unknown, &["unknown product"]);
        let missing = LIFECYCLE.replace("Exchange Server SE,,,true,x\n", "");
        check_one("lifecycle", &missing, &["no row for Exchange Server SE"]);
        // ESU: a CU the build table lacks, a period during support.
        let esu_cu = ESU.replace("15.1.2507", "15.1.2308");
        check_one("esu", &esu_cu, &["not in the build table", "no ESU period"]);
        let esu_early = ESU.replace("2025-10-15", "2025-10-01");
        check_one("esu", &esu_early, &["supported until 2025-10-14"]);
        // CVEs: unknown fixed build, wrong update name, disagreeing publication dates.
        let unknown_build = CVES.replace("15.1.2507.61", "15.1.2507.62");
        check_one("cves", &unknown_build, &["not in the build table"]);
        let wrong_update = CVES.replace(",Oct25SU,", ",Nov25SU,");
        check_one("cves", &wrong_update, &["does not match"]);
        let dates = format!(
            "{CVES}CVE-2025-59249,15.1.2375.37,Nov22SU,2022-11-08,unknown,unknown,false,,x\n"
        );
        check_one(
            "cves",
            &dates,
            &["published 2022-11-08 here but 2025-10-14"],
        );
        let bad =
            format!("{CVES}CVE-2025-1,15.1.2507.63,Dec25SU,2025-10-14,unknown,unknown,false,,x\n");
        check_one("cves", &bad, &["line 3: bad CVE id"]);
        // Exchange Online: a minimum the build table lacks, a wrong name, a CU twice.
        let exo_build = EXO.replace("15.1.2507.61", "15.1.2507.62");
        check_one(
            "exo",
            &exo_build,
            &["line 2: minimum build 15.1.2507.62 is not"],
        );
        let exo_name = EXO.replace("Oct25SU", "Dec25SU");
        check_one("exo", &exo_name, &["does not match"]);
        let exo_twice = format!("{EXO}2026-09-08,15.1.2507.63,Dec25SU,x\n");
        check_one(
            "exo",
            &exo_twice,
            &["line 3: CU 15.1.2507 has two minimums"],
        );
    }
}
