//! What every data file shares: reading rows leniently, dates, product names, load errors.

use serde::de::DeserializeOwned;
use surveyor_model::Family;
use time::{Date, Month};

/// Why a data file other than the build table did not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {reason}")]
pub struct TableError {
    /// The file name under `data/`, e.g. `cves.csv`.
    pub file: &'static str,
    /// 1-based line of the row; 0 when the problem is not one row's.
    pub line: u64,
    pub reason: String,
}

/// A problem with one record while reading a file row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowIssue {
    pub line: u64,
    /// `true` when the record is not even valid CSV (wrong number of fields, bad quoting).
    pub csv: bool,
    pub reason: String,
}

/// Reads every record and parses those that deserialize, keeping going after bad ones so that
/// `surveyor kb check` can report all of a file's problems at once.
pub(crate) fn read_rows<R, T>(
    text: &str,
    parse: impl Fn(R) -> Result<T, String>,
) -> (Vec<(u64, T)>, Vec<RowIssue>)
where
    R: DeserializeOwned,
{
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut issues = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(text, p.byte()));
                issues.push(RowIssue {
                    line,
                    csv: true,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(text, p.byte()));
        let parsed = record
            .deserialize::<R>(None)
            .map_err(|e| e.to_string())
            .and_then(&parse);
        match parsed {
            Ok(t) => rows.push((line, t)),
            Err(reason) => issues.push(RowIssue {
                line,
                csv: false,
                reason,
            }),
        }
    }
    (rows, issues)
}

/// The 1-based line of byte offset `byte`: csv counts only LFs (BurntSushi/rust-csv#395), so
/// a file saved with CRLF or CR line ends would name the wrong line in every error.
fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    // csv may place a record at the LF of the CRLF before it; a record never starts with one.
    while matches!(bytes.get(end), Some(b'\r' | b'\n')) {
        end += 1;
    }
    let head = &bytes[..end];
    let breaks = head
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && head.get(i + 1) != Some(&b'\n')))
        .count();
    1 + breaks as u64
}

/// The product name used in every data file ("Exchange Server 2016") to a family.
pub(crate) fn family_of_product(product: &str) -> Option<Family> {
    Family::ALL
        .into_iter()
        .find(|f| f.product_name() == product.trim())
}

/// `YYYY-MM-DD`.
pub(crate) fn parse_day(s: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), format).map_err(|_| format!("bad date {s:?} (want YYYY-MM-DD)"))
}

/// An optional `YYYY-MM-DD`: empty means not known.
pub(crate) fn parse_optional_day(s: &str) -> Result<Option<Date>, String> {
    if s.trim().is_empty() {
        Ok(None)
    } else {
        parse_day(s).map(Some)
    }
}

/// A release date as the sources give it: `YYYY-MM-DD`, or `YYYY-MM` when only the month is
/// known. Returns the exact date (if any) and the first and last day the release can have
/// happened on.
pub(crate) fn parse_release(s: &str) -> Result<(Option<Date>, (Date, Date)), String> {
    if let Ok(d) = parse_day(s) {
        return Ok((Some(d), (d, d)));
    }
    let bad = || format!("bad release_date {s:?}");
    let (year, month) = s.trim().split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || month.len() != 2 {
        return Err(bad());
    }
    let year: i32 = year.parse().map_err(|_| bad())?;
    let month: u8 = month.parse().map_err(|_| bad())?;
    let month = Month::try_from(month).map_err(|_| bad())?;
    let first = Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
    let last = Date::from_calendar_date(year, month, month.length(year)).map_err(|_| bad())?;
    Ok((None, (first, last)))
}

/// `true`/`false`.
pub(crate) fn parse_bool(field: &str, s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{field} must be true or false, not {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn line_numbers_count_crlf_and_cr_line_ends() {
        // Found by the `builds` fuzz target: csv counts only LFs.
        for end in ["\n", "\r\n", "\r"] {
            let text = ["h", "ok", "bad"].join(end);
            let line = |needle: &str| line_at(&text, text.find(needle).unwrap() as u64);
            assert_eq!((line("h"), line("ok"), line("bad")), (1, 2, 3), "{end:?}");
        }
    }

    #[test]
    fn release_dates() {
        let d = date!(2025 - 10 - 14);
        assert_eq!(parse_release("2025-10-14"), Ok((Some(d), (d, d))));
        assert_eq!(
            parse_release("2024-02"),
            Ok((None, (date!(2024 - 02 - 01), date!(2024 - 02 - 29))))
        );
        for bad in ["2024-13", "2024", "24-02", "2024-02-30", "", "2024-2"] {
            assert!(parse_release(bad).is_err(), "{bad:?}");
        }
    }
}
