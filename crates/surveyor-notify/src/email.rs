//! E-mails from minijinja templates, one subject and one body per language; the built-in
//! templates are compiled in, and each can be replaced.

use std::collections::HashMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::plan::{Bundle, Finding, Language, Recipient};
use crate::NotifyError;

/// A rendered e-mail: plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Email {
    pub subject: String,
    pub body: String,
}

/// Which part of an e-mail a template renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Subject,
    Body,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Body => "body",
        }
    }
}

/// The templates, by language and part. Undefined variables are errors, not empty text, so a
/// template that asks for data a bundle does not have fails loudly.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Who signs: `{{ sender }}`.
    pub sender: String,
    /// The re-notification window, for reminders: `{{ renotify_days }}`.
    pub renotify_days: i64,
}

impl Templates {
    /// The built-in German and English templates.
    pub fn builtin(sender: &str, renotify_days: i64) -> Templates {
        let mut t = Templates {
            env: Environment::new(),
            sender: sender.to_string(),
            renotify_days,
        };
        t.env.set_undefined_behavior(UndefinedBehavior::Strict);
        let builtin: HashMap<(Language, Part), &'static str> = HashMap::from([
            (
                (Language::En, Part::Subject),
                include_str!("../templates/subject.en.txt"),
            ),
            (
                (Language::En, Part::Body),
                include_str!("../templates/body.en.txt"),
            ),
            (
                (Language::De, Part::Subject),
                include_str!("../templates/subject.de.txt"),
            ),
            (
                (Language::De, Part::Body),
                include_str!("../templates/body.de.txt"),
            ),
        ]);
        for ((language, part), source) in builtin {
            // The built-in templates are checked by the tests; a syntax error is a bug here.
            t.env
                .add_template(name(language, part), source)
                .expect("built-in template parses");
        }
        t
    }

    /// Replaces one template; a syntax error is reported with its line.
    pub fn set(
        &mut self,
        language: Language,
        part: Part,
        source: String,
    ) -> Result<(), NotifyError> {
        self.env
            .add_template_owned(name(language, part), source)
            .map_err(|e| template_error(language, part, &e))
    }

    /// The e-mail of a bundle, in the recipient's language.
    pub fn render(&self, bundle: &Bundle) -> Result<Email, NotifyError> {
        #[derive(Serialize)]
        struct Context<'a> {
            recipient: &'a Recipient,
            findings: &'a [Finding],
            scan: i64,
            as_of: String,
            sender: &'a str,
            renotify_days: i64,
            /// Exploited CVEs any server has, and how many servers have one: the first lines.
            exploited: Vec<&'a str>,
            exploited_servers: usize,
            /// "2026-10-02 (3f2a9c01d4e5)": the knowledge base that judged the scan.
            knowledge_base: Option<String>,
        }
        let context = Context {
            recipient: &bundle.recipient,
            findings: &bundle.findings,
            scan: bundle.scan.0,
            as_of: bundle.as_of.to_string(),
            sender: &self.sender,
            renotify_days: self.renotify_days,
            exploited: bundle.exploited_cves(),
            exploited_servers: bundle
                .findings
                .iter()
                .filter(|f| !f.exploited_cves.is_empty())
                .count(),
            knowledge_base: bundle.knowledge_base.as_ref().map(|kb| {
                format!(
                    "{} ({})",
                    kb.newest_release,
                    &kb.digest[..12.min(kb.digest.len())]
                )
            }),
        };
        let language = bundle.recipient.language;
        let render = |part: Part| {
            self.env
                .get_template(name(language, part))
                .and_then(|t| t.render(&context))
                .map_err(|e| template_error(language, part, &e))
        };
        let subject = render(Part::Subject)?;
        // A header holds one line.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Email {
            subject,
            body: wrap(&render(Part::Body)?, WIDTH) + "\n",
        })
    }
}

/// Lines of mail stay short enough to be sent as 8bit text and read in any client.
const WIDTH: usize = 72;

/// Breaks lines longer than `width` characters at spaces; continuation lines keep the
/// indentation (and step past a list dash).
fn wrap(text: &str, width: usize) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.chars().count() <= width {
            out.push(line.to_string());
            continue;
        }
        let indent_len = line.len() - line.trim_start().len();
        let mut indent = line[..indent_len].to_string();
        if line.trim_start().starts_with("- ") {
            indent.push_str("  ");
        }
        let mut current = line[..indent_len].to_string();
        let mut empty = true;
        for word in line.split_whitespace() {
            if !empty && current.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::replace(&mut current, indent.clone()));
                empty = true;
            }
            if !empty {
                current.push(' ');
            }
            current.push_str(word);
            empty = false;
        }
        out.push(current);
    }
    out.join("\n")
}

fn name(language: Language, part: Part) -> &'static str {
    match (language, part) {
        (Language::De, Part::Subject) => "subject.de",
        (Language::De, Part::Body) => "body.de",
        (Language::En, Part::Subject) => "subject.en",
        (Language::En, Part::Body) => "body.en",
    }
}

fn template_error(language: Language, part: Part, e: &minijinja::Error) -> NotifyError {
    let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
    NotifyError::Template(format!(
        "the {} {} template{line}: {}",
        language.as_str(),
        part.as_str(),
        e.detail().unwrap_or(e.kind().to_string().as_str())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_at_spaces_keeping_their_indentation() {
        let text = "short\n   - one two three four five six\n   plain words here again";
        assert_eq!(
            wrap(text, 16),
            "short\n   - one two\n     three four\n     five six\n   plain words\n   here again"
        );
        assert_eq!(
            wrap("averyveryverylongword x", 8),
            "averyveryverylongword\nx"
        );
    }
}
