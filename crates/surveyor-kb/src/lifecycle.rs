//! Product lifecycle: when each Exchange generation left support, from `data/lifecycle.csv`.

use serde::Deserialize;
use surveyor_model::{Family, Support};
use time::Date;

use crate::table::{family_of_product, parse_bool, parse_optional_day, read_rows, TableError};

/// The file name, as problems and errors name it.
pub const FILE: &str = "lifecycle.csv";

/// One product's lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub family: Family,
    /// Last day of mainstream support, when a source gives it.
    pub mainstream_end: Option<Date>,
    /// Last day of extended support; `None` under the Modern Lifecycle Policy.
    pub extended_end: Option<Date>,
    /// Modern Lifecycle Policy: no fixed end, supported while kept current.
    pub modern_lifecycle: bool,
    pub source: String,
}

/// The lifecycle of every family.
#[derive(Debug, Clone, Default)]
pub struct LifecycleTable {
    rows: Vec<Lifecycle>,
}

#[derive(Deserialize)]
pub(crate) struct Row {
    product: String,
    mainstream_end: String,
    extended_end: String,
    modern_lifecycle: String,
    source: String,
}

impl LifecycleTable {
    /// The table shipped with Surveyor.
    pub fn builtin() -> &'static LifecycleTable {
        &crate::KnowledgeBase::builtin().lifecycle
    }

    /// Parses `product,mainstream_end,extended_end,modern_lifecycle,source`. Every family must
    /// have exactly one row: a family without a lifecycle would silently count as supported.
    pub fn from_csv(text: &str) -> Result<LifecycleTable, TableError> {
        let err = |line, reason| TableError {
            file: FILE,
            line,
            reason,
        };
        let (rows, issues) = read_rows(text, parse_row);
        if let Some(issue) = issues.into_iter().next() {
            return Err(err(issue.line, issue.reason));
        }
        let mut table = LifecycleTable::default();
        for (line, row) in rows {
            if table.get(row.family).is_some() {
                return Err(err(line, format!("{} appears twice", row.family)));
            }
            table.rows.push(row);
        }
        if let Some(missing) = Family::ALL.into_iter().find(|f| table.get(*f).is_none()) {
            return Err(err(0, format!("no row for {}", missing.product_name())));
        }
        Ok(table)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lifecycle> {
        self.rows.iter()
    }

    pub fn get(&self, family: Family) -> Option<&Lifecycle> {
        self.rows.iter().find(|l| l.family == family)
    }

    /// The last day of extended support; `None` for the Modern Lifecycle (SE).
    pub fn extended_end(&self, family: Family) -> Option<Date> {
        self.get(family).and_then(|l| l.extended_end)
    }

    /// Product-level support on a date. Support ends after the end date: on 2025-10-14
    /// Exchange 2019 was still supported (that day's SU was its last public one).
    pub fn support_on(&self, family: Family, on: Date) -> Support {
        match self.extended_end(family) {
            Some(end) if on > end => Support::Unsupported,
            _ => Support::Supported,
        }
    }
}

/// The last day of extended support in the built-in table. SE follows the Modern Lifecycle
/// Policy and has no fixed end.
///
/// The paid Extended Security Update programme for 2016/2019 is not support: Microsoft says
/// so, and so does the census.
pub fn end_of_support(family: Family) -> Option<Date> {
    LifecycleTable::builtin().extended_end(family)
}

/// Product-level support status of a family on a date, from the built-in table.
pub fn support_on(family: Family, on: Date) -> Support {
    LifecycleTable::builtin().support_on(family, on)
}

pub(crate) fn parse_row(row: Row) -> Result<Lifecycle, String> {
    let family = family_of_product(&row.product)
        .ok_or_else(|| format!("unknown product {:?}", row.product))?;
    let mainstream_end = parse_optional_day(&row.mainstream_end)?;
    let extended_end = parse_optional_day(&row.extended_end)?;
    let modern_lifecycle = parse_bool("modern_lifecycle", &row.modern_lifecycle)?;
    match (modern_lifecycle, extended_end) {
        (true, Some(_)) => {
            return Err("a Modern Lifecycle product has no extended_end".into());
        }
        (false, None) => return Err("extended_end is missing".into()),
        _ => {}
    }
    if let (Some(m), Some(e)) = (mainstream_end, extended_end) {
        if m > e {
            return Err(format!("mainstream_end {m} is after extended_end {e}"));
        }
    }
    Ok(Lifecycle {
        family,
        mainstream_end,
        extended_end,
        modern_lifecycle,
        source: row.source,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn check(family: Family, on: Date, expected: Support) {
        assert_eq!(support_on(family, on), expected, "{family} on {on}");
    }

    #[test]
    fn support_dates() {
        use Support::*;
        check(Family::E2019, date!(2025 - 10 - 14), Supported);
        check(Family::E2019, date!(2025 - 10 - 15), Unsupported);
        check(Family::E2016, date!(2026 - 11 - 23), Unsupported);
        check(Family::E2013, date!(2023 - 04 - 11), Supported);
        check(Family::E2013, date!(2023 - 04 - 12), Unsupported);
        check(Family::E2010, date!(2020 - 10 - 14), Unsupported);
        check(Family::E2007, date!(2017 - 04 - 12), Unsupported);
        check(Family::Se, date!(2030 - 01 - 01), Supported);
        assert_eq!(end_of_support(Family::Se), None);
        let t = LifecycleTable::builtin();
        assert_eq!(
            t.get(Family::E2019).unwrap().mainstream_end,
            Some(date!(2024 - 01 - 09))
        );
    }

    #[test]
    fn broken_tables_are_rejected() {
        let head = "product,mainstream_end,extended_end,modern_lifecycle,source\n";
        let err = |body: &str| {
            LifecycleTable::from_csv(&format!("{head}{body}"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("Exchange Server 2099,,2030-01-01,false,x\n").contains("unknown product"));
        assert!(err("Exchange Server SE,,2030-01-01,true,x\n").contains("Modern Lifecycle"));
        assert!(err("Exchange Server 2016,,,false,x\n").contains("missing"));
        assert!(err("Exchange Server 2016,,2025-10-14,yes,x\n").contains("true or false"));
        assert!(err("Exchange Server 2016,,2025-10-14,false,x\n").contains("no row for"));
    }
}
