//! What `surveyor kb` prints: everything the knowledge base knows about one build on a day (JSON
//! for programs, text for people), an Exchange Online enforcement stage, and a check's summary.

use serde_json::{json, Value};
use surveyor_model::observation::CveExposure;
use surveyor_model::Build;
use time::Date;

use crate::{enforcement_stage, Assessment, CveFix, KnowledgeBase, Problem};

/// Why there is nothing to show for a build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShowError {
    #[error("{0} is an Exchange Online build, never on-premises")]
    ExchangeOnline(Build),
    #[error("{0} is not a build of any on-premises Exchange generation")]
    NotOnPremises(Build),
}

/// One build as a knowledge base sees it on a day, with the facts behind the verdict.
pub struct Shown<'a> {
    kb: &'a KnowledgeBase,
    pub assessment: Assessment,
    pub as_of: Date,
}

impl KnowledgeBase {
    /// Everything this knowledge base knows about `build` as of `as_of`.
    pub fn show(&self, build: Build, as_of: Date) -> Result<Shown<'_>, ShowError> {
        match self.assess(build, as_of) {
            Some(assessment) => Ok(Shown {
                kb: self,
                assessment,
                as_of,
            }),
            None if build.major == 15 && build.minor >= 20 => Err(ShowError::ExchangeOnline(build)),
            None => Err(ShowError::NotOnPremises(build)),
        }
    }
}

impl Shown<'_> {
    /// The JSON form: the verdict's fields plus the build row and CVE facts behind them.
    pub fn document(&self) -> Result<Value, serde_json::Error> {
        let (kb, a, as_of) = (self.kb, &self.assessment, self.as_of);
        let row = a.row.as_ref().map(|r| {
            json!({
                "build": r.build.to_string(),
                "name": r.full_name(),
                "released": r.released.map(|d| d.to_string()),
                "released_month": r.released.is_none().then(|| month(r.released_between.0)),
                "source": r.source,
                "flag": (!r.flag.as_str().is_empty()).then(|| r.flag.as_str()),
            })
        });
        let lifecycle = kb.lifecycle.get(a.family).map(|l| {
            json!({
                "mainstream_end": l.mainstream_end.map(|d| d.to_string()),
                "extended_end": l.extended_end.map(|d| d.to_string()),
                "modern_lifecycle": l.modern_lifecycle,
                "source": l.source,
            })
        });
        let esu_period = kb.esu.period_on(as_of).map(|p| p.period);
        let cves: Vec<Value> = a
            .cves
            .iter()
            .map(|c| {
                let fact = cve_fact(kb, a, c);
                json!({
                    "cve": c.cve,
                    "status": c.status.as_str(),
                    "fixed_in": c.fixed_in.map(|b| b.to_string()),
                    "update": c.fixed_in.and(fact.map(|f| f.update.clone())),
                    "published": fact.map(|f| f.published.to_string()),
                    "severity": c.severity.as_str(),
                    "exploited": c.exploited,
                    "exploited_in_the_wild": fact.and_then(|f| f.exploited_in_the_wild),
                    "config_dependent": fact.map(|f| f.config_dependent),
                    "note": fact.map(|f| f.note.clone()),
                    "source": fact.map(|f| f.source.clone()),
                })
            })
            .collect();
        Ok(json!({
            "build": a.build.to_string(),
            "family": a.family,
            "version_name": a.version_name,
            "build_precision": a.precision,
            "known_build": row,
            "as_of": as_of.to_string(),
            "support": a.support,
            "support_reason": a.support_reason,
            "lifecycle": lifecycle,
            "esu_patched": a.esu_patched,
            "esu_eligible_cu": kb.esu.is_eligible(a.build),
            "esu_period_on_as_of": esu_period,
            "patch_level": serde_json::to_value(&a.patch_level)?,
            "upgrade_path": a.upgrade_path,
            "exchange_online": a.exchange_online,
            "cves": cves,
            "knowledge_base": {
                "digest": kb.stamp.digest,
                "newest_release": kb.stamp.newest_release.to_string(),
            },
        }))
    }

    /// The text form: one labelled line per fact, one per CVE.
    pub fn text(&self) -> String {
        let (kb, a, as_of) = (self.kb, &self.assessment, self.as_of);
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            out.push_str(&format!("{label:<15} {value}\n"));
        };
        line("build", a.build.to_string());
        line("name", a.version_name.clone());
        line("family", a.family.product_name().to_string());
        line("precision", a.precision.as_str().to_string());
        match &a.row {
            Some(r) => {
                let released = match r.released {
                    Some(d) => d.to_string(),
                    None => format!("{} (month only)", month(r.released_between.0)),
                };
                line("released", released);
                if r.build != a.build {
                    line(
                        "named after",
                        format!("{} (closest lower known update)", r.build),
                    );
                }
                if !r.flag.as_str().is_empty() {
                    line("flag", r.flag.as_str().to_string());
                }
                line("source", r.source.clone());
            }
            None => line("released", "unknown (no exact update level)".into()),
        }
        line(
            "support",
            format!(
                "{} on {as_of} ({})",
                a.support.as_str(),
                a.support_reason.as_str()
            ),
        );
        if let Some(l) = kb.lifecycle.get(a.family) {
            let end = match (l.extended_end, l.modern_lifecycle) {
                (Some(end), _) => format!("extended support ends {end}"),
                (None, true) => "Modern Lifecycle: no fixed end, stay current".into(),
                (None, false) => "no end date recorded".into(),
            };
            line("lifecycle", end);
        }
        let esu = match (a.esu_patched, kb.esu.is_eligible(a.build)) {
            (true, _) => "ESU-only update installed".to_string(),
            (false, true) => "CU eligible for ESU; no ESU-only update seen".to_string(),
            (false, false) => "CU not eligible for ESU".to_string(),
        };
        line("esu", esu);
        let p = &a.patch_level;
        let days = |d: Option<u32>| d.map_or("unknown".to_string(), |d| format!("{d} days behind"));
        if let Some(u) = &p.newest_for_cu {
            line(
                "newest for CU",
                format!("{} {} ({})", u.build, u.name, days(p.days_behind_cu)),
            );
        }
        if let Some(u) = &p.newest_for_family {
            line(
                "newest family",
                format!("{} {} ({})", u.build, u.name, days(p.days_behind_family)),
            );
        }
        line("upgrade path", a.upgrade_path.as_str().to_string());
        if let Some(bar) = &a.exchange_online {
            let meets = match bar.meets {
                Some(true) => "meets it",
                Some(false) => "below it: Exchange Online refuses its mail",
                None => "cannot tell from the CU alone",
            };
            line(
                "Exchange Online",
                format!(
                    "OnPremises connectors need {} or later since {} ({meets})",
                    bar.minimum_update, bar.since
                ),
            );
        }
        line("CVEs", format!("{} published by {as_of}", a.cves.len()));
        for c in &a.cves {
            let fixed = match c.fixed_in {
                Some(b) => format!(" (fix {b})"),
                None => String::new(),
            };
            let exploited = if c.exploited { ", exploited" } else { "" };
            let facts = format!(" [{}{exploited}]", c.severity.as_str());
            out.push_str(&format!(
                "  {:<16} {}{fixed}{facts}\n",
                c.cve,
                c.status.as_str()
            ));
        }
        out.push_str(&format!("{:<15} {}\n", "knowledge base", kb.stamp));
        out
    }
}

/// The Exchange Online enforcement stage of a server first flagged on `first_seen`, as JSON.
pub fn enforcement_document(first_seen: Date, as_of: Date, paused_days: u32) -> Value {
    let s = enforcement_stage(first_seen, as_of, paused_days);
    json!({
        "first_seen": first_seen.to_string(),
        "as_of": as_of.to_string(),
        "stage": s.number,
        "kind": s.kind.as_str(),
        "enforcement_day": s.enforcement_day,
        "paused_days_counted": s.paused_days_counted,
        "smtp_replies": s.smtp_replies,
        "next_stage_on": s.next_stage_on.map(|d| d.to_string()),
        "note": "minutes throttled or blocked per stage are not published in our sources",
    })
}

/// A check's problems, one a line, and how many of them the data does not document.
pub fn check_summary(problems: &[Problem]) -> String {
    let mut out = String::new();
    for p in problems {
        out.push_str(&format!("{p}\n"));
    }
    let undocumented = problems.iter().filter(|p| !p.documented).count();
    out.push_str(&format!(
        "{} problems, {undocumented} undocumented\n",
        problems.len()
    ));
    out
}

fn month(d: Date) -> String {
    format!("{}-{:02}", d.year(), u8::from(d.month()))
}

/// The CVE row a status rests on: the host CU's row, else the newest row of its family (the
/// one a newer CU inherits), else any.
fn cve_fact<'a>(kb: &'a KnowledgeBase, a: &Assessment, c: &'a CveExposure) -> Option<&'a CveFix> {
    c.fixed_in
        .and_then(|b| kb.cves.find(&c.cve, b))
        .or_else(|| {
            kb.cves
                .rows_of(&c.cve)
                .filter(|f| f.family() == Some(a.family))
                .max_by_key(|f| f.fixed)
        })
        .or_else(|| kb.cves.rows_of(&c.cve).next())
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn show(build: &str) -> Result<Shown<'static>, ShowError> {
        KnowledgeBase::builtin().show(build.parse().unwrap(), date!(2026 - 03 - 01))
    }

    #[test]
    fn builds_that_are_not_on_premises_say_why() {
        let check = |build: &str, expected: &str| {
            assert_eq!(
                show(build).err().map(|e| e.to_string()).as_deref(),
                Some(expected)
            );
        };
        check(
            "15.20.8398.27",
            "15.20.8398.27 is an Exchange Online build, never on-premises",
        );
        check(
            "16.0.1.1",
            "16.0.1.1 is not a build of any on-premises Exchange generation",
        );
    }

    #[test]
    fn the_text_and_the_document_tell_the_same_build() {
        let shown = show("15.1.2507.6").unwrap();
        let text = shown.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "build           15.1.2507.6");
        assert_eq!(lines[2], "family          Exchange Server 2016");
        assert!(lines.contains(&"released        2022-04-20"));
        assert!(lines
            .last()
            .is_some_and(|l| l.starts_with("knowledge base  ")));
        let doc = shown.document().unwrap();
        assert_eq!(doc["build"], "15.1.2507.6");
        assert_eq!(doc["known_build"]["released"], "2022-04-20");
        assert_eq!(doc["as_of"], "2026-03-01");
        assert_eq!(
            doc["knowledge_base"]["digest"],
            KnowledgeBase::builtin().stamp.digest
        );
        let cves = doc["cves"].as_array().unwrap();
        assert_eq!(cves.len(), shown.assessment.cves.len());
        assert!(text.contains(&format!(
            "CVEs            {} published by 2026-03-01",
            cves.len()
        )));
    }

    #[test]
    fn an_enforcement_document_names_its_stage() {
        let doc = enforcement_document(date!(2026 - 09 - 01), date!(2026 - 09 - 20), 0);
        assert_eq!(doc["kind"], "report-only");
        assert_eq!(doc["first_seen"], "2026-09-01");
        let doc = enforcement_document(date!(2026 - 09 - 01), date!(2026 - 12 - 15), 0);
        assert_eq!(doc["kind"], "complete-block");
    }

    #[test]
    fn a_check_summary_counts_the_undocumented() {
        let problem = |documented| Problem {
            file: "cves.csv",
            line: Some(3),
            documented,
            message: "a CVE fixed twice".into(),
        };
        let text = check_summary(&[problem(true), problem(false)]);
        assert_eq!(text.lines().count(), 3);
        assert_eq!(text.lines().last(), Some("2 problems, 1 undocumented"));
        assert_eq!(check_summary(&[]), "0 problems, 0 undocumented\n");
    }
}
