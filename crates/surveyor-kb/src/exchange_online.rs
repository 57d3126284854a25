//! The lowest build Exchange Online accepts mail from, from `data/exchange-online.csv`.
//!
//! Besides the staged enforcement against persistently vulnerable servers ([`crate::enforcement`]),
//! Exchange Online sets a bar for servers that send through an OnPremises connector: from a
//! day on, a server of a family the rule names must run at least a given update of its CU.
//! Microsoft raises the bar over time, so every rule is a row with the day it takes effect.

use serde::Deserialize;
use surveyor_model::observation::ExchangeOnlineBar;
use surveyor_model::{Build, Family};
use time::Date;

use crate::table::{parse_day, read_rows, TableError};

/// The file name, as problems and errors name it.
pub const FILE: &str = "exchange-online.csv";

/// One row: from `effective` on, servers on the CU of `minimum` must run at least `minimum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimumBuild {
    pub effective: Date,
    pub minimum: Build,
    /// The update `minimum` is, as the build table names it (`Oct25SU`).
    pub update: String,
    pub source: String,
}

/// Every rule, in file order.
#[derive(Debug, Clone, Default)]
pub struct ExchangeOnlineTable {
    rows: Vec<MinimumBuild>,
}

#[derive(Deserialize)]
pub(crate) struct Row {
    effective: String,
    minimum_build: String,
    update: String,
    source: String,
}

impl ExchangeOnlineTable {
    /// Parses `effective,minimum_build,update,source`.
    pub fn from_csv(text: &str) -> Result<ExchangeOnlineTable, TableError> {
        let (rows, issues) = read_rows(text, parse_row);
        if let Some(issue) = issues.into_iter().next() {
            return Err(TableError {
                file: FILE,
                line: issue.line,
                reason: issue.reason,
            });
        }
        Ok(ExchangeOnlineTable {
            rows: rows.into_iter().map(|(_, r)| r).collect(),
        })
    }

    pub fn rows(&self) -> &[MinimumBuild] {
        &self.rows
    }

    /// The bar in force for `build` on `as_of`: the family's newest rule that has taken
    /// effect. `None` when no rule names the family by then. A CU the rule does not list is
    /// below the bar; a 3-part build on a listed CU cannot show its update (`meets: None`).
    pub fn bar(&self, build: Build, as_of: Date) -> Option<ExchangeOnlineBar> {
        let family = build.family()?;
        let since = self
            .in_family(family)
            .map(|r| r.effective)
            .filter(|d| *d <= as_of)
            .max()?;
        let in_force: Vec<&MinimumBuild> = self
            .in_family(family)
            .filter(|r| r.effective == since)
            .collect();
        let update = in_force
            .first()
            .map(|r| r.update.clone())
            .unwrap_or_default();
        let meets = match in_force.iter().find(|r| r.minimum.cu() == build.cu()) {
            None => Some(false),
            Some(r) => build.revision.map(|rev| Some(rev) >= r.minimum.revision),
        };
        Some(ExchangeOnlineBar {
            since,
            minimum_update: update,
            meets,
        })
    }

    fn in_family(&self, family: Family) -> impl Iterator<Item = &MinimumBuild> {
        self.rows
            .iter()
            .filter(move |r| r.minimum.family() == Some(family))
    }
}

pub(crate) fn parse_row(row: Row) -> Result<MinimumBuild, String> {
    let minimum: Build = row.minimum_build.parse().map_err(|e| format!("{e}"))?;
    if !minimum.is_exact() {
        return Err(format!("minimum_build {minimum} lacks a revision"));
    }
    if minimum.family().is_none() {
        return Err(format!(
            "minimum_build {minimum} is no on-premises Exchange build"
        ));
    }
    let update = row.update.trim().to_string();
    if update.is_empty() {
        return Err("empty update".into());
    }
    Ok(MinimumBuild {
        effective: parse_day(&row.effective)?,
        minimum,
        update,
        source: row.source,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    const RULES: &str = "effective,minimum_build,update,source
2026-09-08,15.1.2507.61,Oct25SU,x
2026-09-08,15.2.1748.39,Oct25SU,x
2027-03-09,15.2.1748.50,Mar27SU,x
";

    fn bar(build: &str, on: Date) -> Option<ExchangeOnlineBar> {
        ExchangeOnlineTable::from_csv(RULES)
            .unwrap()
            .bar(build.parse().unwrap(), on)
    }

    #[test]
    fn the_newest_rule_of_the_family_in_force_decides() {
        let before = date!(2026 - 09 - 07);
        assert_eq!(bar("15.1.2507.58", before), None);
        let on = date!(2026 - 09 - 08);
        let b = bar("15.1.2507.58", on).unwrap();
        assert_eq!((b.since, b.meets), (on, Some(false)));
        assert_eq!(b.minimum_update, "Oct25SU");
        assert_eq!(bar("15.1.2507.61", on).unwrap().meets, Some(true));
        // A CU the rule does not list is below it; a CU-only build cannot show its update.
        assert_eq!(bar("15.1.2375.37", on).unwrap().meets, Some(false));
        assert_eq!(bar("15.1.2507", on).unwrap().meets, None);
        // A later rule raises the bar for its family only.
        let later = date!(2027 - 04 - 01);
        assert_eq!(bar("15.2.1748.39", later).unwrap().meets, Some(false));
        assert_eq!(bar("15.1.2507.61", later).unwrap().meets, Some(true));
        // No rule names SE.
        assert_eq!(bar("15.2.2562.17", later), None);
    }

    #[test]
    fn broken_rows_are_rejected() {
        let head = "effective,minimum_build,update,source\n";
        let err = |body: &str| {
            ExchangeOnlineTable::from_csv(&format!("{head}{body}"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("2026-09-31,15.1.2507.61,Oct25SU,x\n").contains("line 2: bad date"));
        assert!(err("2026-09-08,15.1.2507,Oct25SU,x\n").contains("revision"));
        assert!(err("2026-09-08,15.20.1.1,Oct25SU,x\n").contains("on-premises"));
        assert!(err("2026-09-08,15.1.2507.61,,x\n").contains("empty update"));
    }
}
