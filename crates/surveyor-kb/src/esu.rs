//! The paid Extended Security Update programme for 2016/2019, from `data/esu.csv`.
//!
//! ESU is not support (Microsoft says so, and BSI counts that way): it only decides whether a
//! build is an ESU-only update, which the verdict reports as `esu_patched`.

use serde::Deserialize;
use surveyor_model::Build;
use time::Date;

use crate::table::{parse_day, read_rows, TableError};

/// The file name, as problems and errors name it.
pub const FILE: &str = "esu.csv";

/// One ESU period: the dates it covers and the CUs that receive its updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsuPeriod {
    pub period: u8,
    pub start: Date,
    pub end: Date,
    /// Eligible CUs as 3-part builds (`15.1.2507`).
    pub eligible: Vec<Build>,
    pub source: String,
}

impl EsuPeriod {
    pub fn covers(&self, on: Date) -> bool {
        self.start <= on && on <= self.end
    }
}

/// All ESU periods, in order.
#[derive(Debug, Clone, Default)]
pub struct EsuTable {
    periods: Vec<EsuPeriod>,
}

#[derive(Deserialize)]
pub(crate) struct Row {
    period: String,
    start: String,
    end: String,
    eligible_cus: String,
    source: String,
}

impl EsuTable {
    /// The table shipped with Surveyor.
    pub fn builtin() -> &'static EsuTable {
        &crate::KnowledgeBase::builtin().esu
    }

    /// Parses `period,start,end,eligible_cus,source`; `eligible_cus` is a space-separated list
    /// of 3-part builds.
    pub fn from_csv(text: &str) -> Result<EsuTable, TableError> {
        let (rows, issues) = read_rows(text, parse_row);
        if let Some(issue) = issues.into_iter().next() {
            return Err(TableError {
                file: FILE,
                line: issue.line,
                reason: issue.reason,
            });
        }
        Ok(EsuTable {
            periods: rows.into_iter().map(|(_, p)| p).collect(),
        })
    }

    pub fn periods(&self) -> &[EsuPeriod] {
        &self.periods
    }

    /// Whether any period covers this build's CU.
    pub fn is_eligible(&self, build: Build) -> bool {
        self.periods
            .iter()
            .any(|p| p.eligible.contains(&build.cu()))
    }

    /// The period running on a date, if any.
    pub fn period_on(&self, on: Date) -> Option<&EsuPeriod> {
        self.periods.iter().find(|p| p.covers(on))
    }
}

pub(crate) fn parse_row(row: Row) -> Result<EsuPeriod, String> {
    let period: u8 = row
        .period
        .trim()
        .parse()
        .map_err(|_| format!("bad period {:?}", row.period))?;
    let start = parse_day(&row.start)?;
    let end = parse_day(&row.end)?;
    if start > end {
        return Err(format!("start {start} is after end {end}"));
    }
    let eligible = row
        .eligible_cus
        .split_whitespace()
        .map(|s| {
            let b: Build = s.parse().map_err(|e| format!("{e}"))?;
            if b.is_exact() {
                return Err(format!("eligible CU {b} must have 3 parts"));
            }
            Ok(b)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if eligible.is_empty() {
        return Err("no eligible CUs".into());
    }
    Ok(EsuPeriod {
        period,
        start,
        end,
        eligible,
        source: row.source,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn builtin_periods() {
        let t = EsuTable::builtin();
        assert_eq!(t.periods().len(), 2);
        assert!(t.is_eligible("15.1.2507.69".parse().unwrap()));
        assert!(t.is_eligible("15.2.1748".parse().unwrap()));
        assert!(!t.is_eligible("15.2.1258.39".parse().unwrap()));
        assert_eq!(t.period_on(date!(2026 - 04 - 14)).unwrap().period, 1);
        // Period 2 runs to the end of October 2026.
        assert_eq!(t.period_on(date!(2026 - 10 - 31)).unwrap().period, 2);
        assert_eq!(t.period_on(date!(2026 - 11 - 01)), None);
    }

    #[test]
    fn broken_rows_are_rejected() {
        let head = "period,start,end,eligible_cus,source\n";
        let err = |body: &str| {
            EsuTable::from_csv(&format!("{head}{body}"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("1,2026-04-14,2025-10-15,15.1.2507,x\n").contains("after end"));
        assert!(err("1,2025-10-15,2026-04-14,15.1.2507.61,x\n").contains("3 parts"));
        assert!(err("1,2025-10-15,2026-04-14,,x\n").contains("no eligible"));
        assert!(err("one,2025-10-15,2026-04-14,15.1.2507,x\n").contains("bad period"));
    }
}
