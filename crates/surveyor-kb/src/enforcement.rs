//! Exchange Online's transport-based enforcement against persistently vulnerable on-premises
//! servers: which stage a server that Exchange Online first flagged on one day is in on another.
//!
//! The model follows the Microsoft Exchange Team's posts (2023, via exchange-fingerprinting.md
//! §3): 30 days of reporting only, then throttling that grows every 10 days, blocking from day
//! 60 that grows every 10 days, and a complete block from day 90. A tenant may pause
//! enforcement for up to 90 days per calendar year. How many minutes per hour each stage
//! throttles or blocks is not published in our sources, so the model names stages, not minutes.

use time::{Date, Duration};

/// Days of reporting only before throttling starts.
pub const REPORT_ONLY_DAYS: u32 = 30;
/// The day blocking starts.
pub const BLOCKING_FROM_DAY: u32 = 60;
/// The day the complete block starts.
pub const COMPLETE_BLOCK_FROM_DAY: u32 = 90;
/// Each throttling and blocking stage lasts this long before the next, harsher one.
pub const STAGE_DAYS: u32 = 10;
/// The most a tenant can pause enforcement per calendar year.
pub const MAX_PAUSE_DAYS_PER_YEAR: u32 = 90;

/// What Exchange Online does with mail from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageKind {
    /// `as_of` is before the server was first flagged.
    NotYetFlagged,
    /// The server is listed in the tenant's report; mail flows.
    ReportOnly,
    /// Connections are throttled part of each hour: `450 4.7.230`, senders queue and retry.
    Throttling,
    /// Connections are refused part of each hour (`550 5.7.230`, a permanent failure, an
    /// NDR) and throttled for another part (`450 4.7.230`): a sender sees both.
    Blocking,
    /// All mail from the server is refused with `550 5.7.230`.
    CompleteBlock,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::NotYetFlagged => "not-yet-flagged",
            StageKind::ReportOnly => "report-only",
            StageKind::Throttling => "throttling",
            StageKind::Blocking => "blocking",
            StageKind::CompleteBlock => "complete-block",
        }
    }
}

/// The enforcement stage on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub kind: StageKind,
    /// 1 (report only) to 8 (complete block); 0 before the server was flagged.
    pub number: u8,
    /// Days of enforcement so far: days since first flagged minus the pause days that count.
    pub enforcement_day: u32,
    /// The pause days that counted: at most 90 per calendar year touched, and never more than
    /// the days elapsed.
    pub paused_days_counted: u32,
    /// The SMTP replies Exchange Online gives in this stage, mildest first (`n` is not
    /// published); empty while mail flows.
    pub smtp_replies: &'static [&'static str],
    /// When the next stage starts if enforcement is not paused again; `None` at the last stage.
    pub next_stage_on: Option<Date>,
}

const THROTTLE_REPLY: &str = "450 4.7.230 Connecting Exchange server version is out-of-date; \
                              connection to Exchange Online throttled for n mins/hr.";
const BLOCK_REPLY: &str = "550 5.7.230 Connecting Exchange server version is out-of-date; \
                           connection to Exchange Online blocked for n mins/hr.";

/// The enforcement stage on `as_of` of a server first flagged on `first_seen`, when the tenant
/// paused enforcement for `paused_days` in all (capped at 90 per calendar year).
pub fn enforcement_stage(first_seen: Date, as_of: Date, paused_days: u32) -> Stage {
    if as_of < first_seen {
        return Stage {
            kind: StageKind::NotYetFlagged,
            number: 0,
            enforcement_day: 0,
            paused_days_counted: 0,
            smtp_replies: &[],
            next_stage_on: Some(first_seen),
        };
    }
    let elapsed = u32::try_from((as_of - first_seen).whole_days()).unwrap_or(u32::MAX);
    let years = u32::try_from(as_of.year() - first_seen.year() + 1).unwrap_or(1);
    let paused = paused_days
        .min(MAX_PAUSE_DAYS_PER_YEAR.saturating_mul(years))
        .min(elapsed);
    let day = elapsed - paused;
    let (kind, number, next_at) = if day < REPORT_ONLY_DAYS {
        (StageKind::ReportOnly, 1, Some(REPORT_ONLY_DAYS))
    } else if day < BLOCKING_FROM_DAY {
        let step = (day - REPORT_ONLY_DAYS) / STAGE_DAYS;
        let next = REPORT_ONLY_DAYS + (step + 1) * STAGE_DAYS;
        (StageKind::Throttling, 2 + step as u8, Some(next))
    } else if day < COMPLETE_BLOCK_FROM_DAY {
        let step = (day - BLOCKING_FROM_DAY) / STAGE_DAYS;
        let next = BLOCKING_FROM_DAY + (step + 1) * STAGE_DAYS;
        (StageKind::Blocking, 5 + step as u8, Some(next))
    } else {
        (StageKind::CompleteBlock, 8, None)
    };
    // The blocking stages still throttle the rest of each hour (stage 5: 30 minutes
    // throttled, 5 blocked; docs/knowledge-base.md).
    let smtp_replies: &'static [&'static str] = match kind {
        StageKind::Throttling => &[THROTTLE_REPLY],
        StageKind::Blocking => &[THROTTLE_REPLY, BLOCK_REPLY],
        StageKind::CompleteBlock => &[BLOCK_REPLY],
        StageKind::NotYetFlagged | StageKind::ReportOnly => &[],
    };
    Stage {
        kind,
        number,
        enforcement_day: day,
        paused_days_counted: paused,
        smtp_replies,
        next_stage_on: next_at.map(|n| as_of + Duration::days(i64::from(n - day))),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    /// Signals in: (first seen, as of, paused); out: (kind, number, day, next stage).
    fn check(
        first_seen: Date,
        as_of: Date,
        paused: u32,
        expected: (StageKind, u8, u32, Option<Date>),
    ) {
        let s = enforcement_stage(first_seen, as_of, paused);
        assert_eq!(
            (s.kind, s.number, s.enforcement_day, s.next_stage_on),
            expected,
            "{first_seen} → {as_of}, paused {paused}"
        );
    }

    #[test]
    fn stages() {
        use StageKind::*;
        let f = date!(2026 - 01 - 01);
        check(f, date!(2025 - 12 - 31), 0, (NotYetFlagged, 0, 0, Some(f)));
        check(f, f, 0, (ReportOnly, 1, 0, Some(date!(2026 - 01 - 31))));
        check(
            f,
            date!(2026 - 01 - 30),
            0,
            (ReportOnly, 1, 29, Some(date!(2026 - 01 - 31))),
        );
        check(
            f,
            date!(2026 - 01 - 31),
            0,
            (Throttling, 2, 30, Some(date!(2026 - 02 - 10))),
        );
        check(
            f,
            date!(2026 - 02 - 10),
            0,
            (Throttling, 3, 40, Some(date!(2026 - 02 - 20))),
        );
        check(
            f,
            date!(2026 - 02 - 28),
            0,
            (Throttling, 4, 58, Some(date!(2026 - 03 - 02))),
        );
        check(
            f,
            date!(2026 - 03 - 02),
            0,
            (Blocking, 5, 60, Some(date!(2026 - 03 - 12))),
        );
        check(
            f,
            date!(2026 - 03 - 31),
            0,
            (Blocking, 7, 89, Some(date!(2026 - 04 - 01))),
        );
        check(f, date!(2026 - 04 - 01), 0, (CompleteBlock, 8, 90, None));
        // A pause pushes every later stage back by its length.
        check(
            f,
            date!(2026 - 03 - 02),
            30,
            (Throttling, 2, 30, Some(date!(2026 - 03 - 12))),
        );
        // At most 90 days a calendar year count, and never more than have passed.
        check(f, date!(2026 - 07 - 01), 200, (CompleteBlock, 8, 91, None));
        check(
            f,
            date!(2026 - 01 - 10),
            200,
            (ReportOnly, 1, 0, Some(date!(2026 - 02 - 09))),
        );
        check(
            date!(2025 - 12 - 01),
            date!(2026 - 06 - 01),
            200,
            (ReportOnly, 1, 2, Some(date!(2026 - 06 - 29))),
        );
    }

    #[test]
    fn replies_follow_the_stage() {
        let f = date!(2026 - 01 - 01);
        let codes = |on| -> Vec<&str> {
            enforcement_stage(f, on, 0)
                .smtp_replies
                .iter()
                .map(|r| &r[..11])
                .collect()
        };
        assert!(codes(f).is_empty());
        assert_eq!(codes(date!(2026 - 02 - 01)), ["450 4.7.230"]);
        // Stage 5 (days 60-70) throttles and blocks: both replies.
        assert_eq!(codes(date!(2026 - 03 - 05)), ["450 4.7.230", "550 5.7.230"]);
        assert_eq!(codes(date!(2026 - 06 - 01)), ["550 5.7.230"]);
    }
}
