//! Build numbers (`Build::from_str`, which every build-carrying signal goes through) and the
//! knowledge base's build table (`BuildTable::from_csv`), with the lookups a verdict makes.
//!
//! Invariants (beyond "never panics"): a build text is accepted exactly when it is 3 or 4
//! dot-separated groups of 1-9 ASCII digits (surrounding whitespace allowed) whose first two
//! fit in a u16; an accepted build prints in short form and parses back to itself. A loaded
//! table holds only exact builds of the family they are filed under, with a trimmed non-empty
//! name and a release window that is one day (dated row) or one calendar month (month-only
//! row); every row is found by `exact`, is its own `closest_lower`, and its CU's release is no
//! later than it. Row errors name a line after the header (when lines end in LF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use surveyor_kb::{version_name, BuildTable, BuildTableError, KnowledgeBase};
use surveyor_model::Build;
use time::{Date, Month};

const HEADER: &str = "product,version_name,build,release_date,source,flag\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    // The whole input, and each line, as a build number.
    check_build_text(text);
    for line in text.lines() {
        check_build_text(line);
    }

    // The input as a build table, as is and after the header (so rows are reached at once).
    check_table(text);
    check_table(&format!("{HEADER}{text}"));
});

/// What the parser should accept, written independently of it.
fn well_formed(s: &str) -> bool {
    let parts: Vec<&str> = s.trim().split('.').collect();
    (3..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| (1..=9).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[..2]
            .iter()
            .all(|p| p.parse::<u32>().unwrap() <= u32::from(u16::MAX))
}

fn check_build_text(s: &str) {
    let parsed = s.parse::<Build>();
    assert_eq!(parsed.is_ok(), well_formed(s), "{s:?} gave {parsed:?}");
    let Ok(build) = parsed else { return };
    let short = build.to_string();
    assert!(well_formed(&short), "{short:?}");
    assert_eq!(short.parse::<Build>(), Ok(build), "{short:?}");
    assert_eq!(build.is_exact(), short.split('.').count() == 4);
    assert_eq!(build.cu().to_string().split('.').count(), 3);
    // The lookups a verdict makes with an observed build must not panic on any build.
    let name = version_name(BuildTable::builtin(), build);
    assert!(!name.is_empty());
    let as_of = Date::from_calendar_date(2026, Month::November, 23).unwrap();
    let _ = KnowledgeBase::builtin().assess(build, as_of);
}

fn check_table(text: &str) {
    // Known, not yet fixed (docs/fuzzing.md, findings; upstream BurntSushi/rust-csv#395): the
    let table = match BuildTable::from_csv(text) {
        Ok(table) => table,
        Err(BuildTableError::Row { line, reason }) => {
            assert!(
                line >= 2,
                "row error on line {line}: {reason}"
            );
            return;
        }
        Err(BuildTableError::Duplicate { line, build }) => {
            assert!(
                line >= 3,
                "{build} duplicated on line {line}"
            );
            return;
        }
        Err(BuildTableError::Csv(_)) => return,
    };
    assert_eq!(table.iter().count(), table.len());
    assert_eq!(table.is_empty(), table.iter().next().is_none());
    let mut previous = None;
    for info in table.iter() {
        let b = info.build;
        assert!(previous < Some(b), "rows out of order at {b}");
        previous = Some(b);
        assert!(b.is_exact(), "{b} lacks a revision");
        assert_eq!(b.family(), Some(info.family), "{b}");
        assert!(
            !info.name.is_empty() && info.name.trim() == info.name,
            "{:?}",
            info.name
        );
        let (first, last) = info.released_between;
        match info.released {
            Some(day) => assert_eq!((first, last), (day, day)),
            None => {
                assert_eq!(first.day(), 1);
                assert_eq!((first.year(), first.month()), (last.year(), last.month()));
                assert_eq!(last.next_day().map(|d| d.day()), Some(1));
            }
        }
        assert_eq!(info.available_by(), last);
        let _ = info.is_update();
        assert!(info.full_name().starts_with(info.family.product_name()));
        assert_eq!(table.exact(b), Some(info));
        assert_eq!(table.closest_lower(b), Some(info));
        let cu = table.cu_release(b).expect("a row's CU has a release");
        assert_eq!(cu.build.cu(), b.cu());
        assert!(cu.build <= b);
        assert!(table.cu_name(b).is_some());
        assert!(table.family_rows(info.family).any(|r| r == info));
        assert_eq!(version_name(&table, b), info.full_name());
    }
}
