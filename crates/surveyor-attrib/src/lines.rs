//! What the line-based tables (AS, country) share: the walk over their lines, the listing of
//! their bad lines and the reading of a CIDR prefix.

use std::fmt;

use ipnet::IpNet;

/// How many bad lines an error lists before it only counts the rest.
const SHOWN_PROBLEMS: usize = 50;

/// Calls `parse` on every line but blank ones and `#` comments (trimmed); every line it
/// refuses, by number, or nothing.
pub(crate) fn each_line(
    text: &str,
    mut parse: impl FnMut(&str) -> Result<(), String>,
) -> Result<(), Vec<(usize, String)>> {
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Err(reason) = parse(line) {
            problems.push((index + 1, reason));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `line N: reason`, one per line, the first [`SHOWN_PROBLEMS`] of them, then how many more.
pub(crate) fn write_problems(
    f: &mut fmt::Formatter<'_>,
    problems: &[(usize, String)],
) -> fmt::Result {
    for (i, (line, reason)) in problems.iter().take(SHOWN_PROBLEMS).enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        write!(f, "line {line}: {reason}")?;
    }
    if problems.len() > SHOWN_PROBLEMS {
        write!(f, "\nand {} more", problems.len() - SHOWN_PROBLEMS)?;
    }
    Ok(())
}

/// A prefix as written (`198.51.100.0/24`), refused when it has host bits set.
pub(crate) fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not a prefix"))?;
    if net.trunc() != net {
        return Err(format!(
            "{net} has host bits set (the prefix is {})",
            net.trunc()
        ));
    }
    Ok(net)
}
