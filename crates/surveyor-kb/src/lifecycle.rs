//! Product lifecycle: when each Exchange generation left support.

use surveyor_model::{Family, Support};
use time::macros::date;
use time::Date;

/// The last day of extended support, from Microsoft's lifecycle pages (see
/// `docs/knowledge-base.md`). SE follows the Modern Lifecycle Policy and has no fixed end.
///
/// The paid Extended Security Update programme for 2016/2019 (to 2026-04-14, then a second
/// period to October 2026) is not support: Microsoft says so, and so does the census.
pub fn end_of_support(family: Family) -> Option<Date> {
    match family {
        Family::E2007 => Some(date!(2017 - 04 - 11)),
        Family::E2010 => Some(date!(2020 - 10 - 13)),
        Family::E2013 => Some(date!(2023 - 04 - 11)),
        Family::E2016 | Family::E2019 => Some(date!(2025 - 10 - 14)),
        Family::Se => None,
    }
}

/// Support status of a family on a date. Support ends after the end date: on 2025-10-14
/// Exchange 2019 was still supported (that day's SU was its last public one).
pub fn support_on(family: Family, on: Date) -> Support {
    match end_of_support(family) {
        Some(end) if on > end => Support::Unsupported,
        _ => Support::Supported,
    }
}

#[cfg(test)]
mod tests {
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
    }
}
