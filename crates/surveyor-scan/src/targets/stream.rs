//! Target lists read as a stream: parsed line by line as they arrive and numbered in the
//! order their targets come out, so that a scan probes from the first line and holds no more
//! of its input than one line, however long the input is.
//!
//! Order: entries in input order; one entry's targets (a prefix's addresses crossed with the
//! ports, or an explicit target on its port or on each port) in a keyed permutation of that
//! entry, so that a prefix line is not walked address by address. A target's position is its
//! index in that order: the same for the same input, ports and seed however fast the input
//! arrives, so a checkpoint's positions mean the same when the input is read again. Shard `i`
//! of `K` takes the positions `≡ i (mod K)`.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use ipnet::IpNet;

use super::parse::parse_line;
use super::space::{addresses_in, nth_address};
use super::{
    scheme_for_port, Entry, Exclusions, InputFormat, Order, PortSpec, Target, TargetError,
};
use crate::permute::Permutation;

/// The longest line read; a longer one is an error (no supported format has such lines, and
/// a stream without newlines must not grow memory without bound).
pub const MAX_LINE: usize = 64 * 1024;

/// Parses a target list one line at a time, in any supported format; with
/// [`InputFormat::Auto`] the format is decided by the first line that is neither blank nor a
/// `//` line, as for a whole list.
#[derive(Debug)]
pub struct LineParser {
    name: String,
    format: InputFormat,
    lines: u64,
    /// The first `//` line seen before the format was known. Every format rejects such a
    /// line, so once the format is known (or the input ends) it is the error to report.
    held: Option<(u64, String)>,
}

impl LineParser {
    /// `name` names the input in errors (`NAME line N`).
    pub fn new(name: impl Into<String>, format: InputFormat) -> LineParser {
        LineParser {
            name: name.into(),
            format,
            lines: 0,
            held: None,
        }
    }

    /// Lines seen so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// How errors name line `n`.
    pub fn origin(&self, n: u64) -> String {
        format!("{} line {n}", self.name)
    }

    /// Parses the next line, appending its entries to `entries`.
    pub fn line(&mut self, raw: &str, entries: &mut Vec<Entry>) -> Result<(), TargetError> {
        self.lines += 1;
        if self.format == InputFormat::Auto {
            let line = raw.trim();
            if !InputFormat::decides(line) {
                if !line.is_empty() && self.held.is_none() {
                    self.held = Some((self.lines, raw.to_string()));
                }
                return Ok(());
            }
            self.format = InputFormat::detect(line);
            self.report_held()?;
        }
        parse_line(self.format, raw, &self.origin(self.lines), entries)
    }

    /// The end of the input: reports a line the format detection held back.
    pub fn finish(&mut self) -> Result<(), TargetError> {
        if self.format == InputFormat::Auto {
            self.format = InputFormat::Plain;
        }
        self.report_held()
    }

    fn report_held(&mut self) -> Result<(), TargetError> {
        match self.held.take() {
            Some((n, held)) => parse_line(self.format, &held, &self.origin(n), &mut Vec::new()),
            None => Ok(()),
        }
    }
}

/// Why reading a stream of targets stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A line is not a target (or names excluded space): the input must be corrected.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The input could not be read.
    #[error("{origin}: could not read: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads `input` line by line to its end: parses each line, checks each entry against the
/// built-in exclusions (an entry wholly inside an excluded range is an error naming its line,
/// as for a whole list; blocklisted addresses are skipped later, during the scan) and hands
/// each entry to `each`, which may block (backpressure) or stop the reading by breaking.
/// Holds at most one line ([`MAX_LINE`]).
pub fn read_entries(
    mut input: impl BufRead,
    parser: &mut LineParser,
    exclusions: &Exclusions,
    mut each: impl FnMut(Entry) -> ControlFlow<()>,
) -> Result<(), StreamError> {
    let mut buf = Vec::new();
    let mut entries = Vec::new();
    loop {
        buf.clear();
        let read = std::io::Read::take(&mut input, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf);
        let origin = || parser.origin(parser.lines() + 1);
        match read {
            Ok(0) => break,
            Ok(n) if n > MAX_LINE => {
                return Err(StreamError::Target(TargetError::Malformed {
                    origin: origin(),
                    input: String::from_utf8_lossy(&buf[..80]).into_owned(),
                    expected: "a line shorter than 64 KiB",
                }))
            }
            Ok(_) => {}
            Err(source) => {
                return Err(StreamError::Read {
                    origin: origin(),
                    source,
                })
            }
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            return Err(StreamError::Target(TargetError::Malformed {
                origin: origin(),
                input: String::from_utf8_lossy(&buf[..buf.len().min(80)]).into_owned(),
                expected: "a line of UTF-8 text",
            }));
        };
        entries.clear();
        parser.line(text, &mut entries)?;
        let origin = parser.origin(parser.lines());
        for entry in entries.drain(..) {
            let net = match &entry {
                Entry::Net(net) => *net,
                Entry::Target(t) => IpNet::from(t.ip),
            };
            exclusions.check(net, &origin)?;
            if each(entry).is_break() {
                return Ok(());
            }
        }
    }
    parser.finish()?;
    Ok(())
}

/// Numbers a stream's targets and says which of them this scan probes: those of its shard,
/// and, when resuming, those the checkpoint does not call done.
#[derive(Debug)]
pub struct StreamWalk {
    ports: Arc<[PortSpec]>,
    order: Order,
    /// Positions numbered so far.
    numbered: u128,
    /// Resuming: positions below `from` are done, except `pending`.
    from: u128,
    pending: BTreeSet<u128>,
}

impl StreamWalk {
    /// A walk from the start (`from` 0, nothing pending) or from a checkpoint's frontier.
    pub fn new(ports: &[PortSpec], order: Order, from: u128, pending: BTreeSet<u128>) -> Self {
        StreamWalk {
            ports: ports.into(),
            order,
            numbered: 0,
            from,
            pending,
        }
    }

    /// Positions numbered so far: every target of the entries walked, in every shard.
    pub fn numbered(&self) -> u128 {
        self.numbered
    }

    /// How many targets (positions) `entry` stands for.
    pub fn count(&self, entry: &Entry) -> u128 {
        let per_address = self.ports.len() as u128;
        match entry {
            Entry::Net(net) => addresses_in(net).saturating_mul(per_address),
            Entry::Target(t) if t.port == 0 => per_address,
            Entry::Target(_) => 1,
        }
    }

    /// Numbers `entry`'s targets and returns, lazily, those this scan probes with their
    /// positions: first those a checkpoint left pending, then the rest in the entry's keyed
    /// permutation.
    pub fn walk(&mut self, entry: Entry) -> EntryWalk {
        let start = self.numbered;
        let count = self.count(&entry);
        let end = start.saturating_add(count);
        self.numbered = end;
        let shards = u128::from(self.order.shards.max(1));
        let shard = u128::from(self.order.shard);
        let lo = start.max(self.from);
        let first = lo + (shard + shards - lo % shards) % shards;
        let done_below = end.min(self.from);
        let redo: Vec<u128> = if start < done_below {
            self.pending.range(start..done_below).copied().collect()
        } else {
            Vec::new()
        };
        let kind = match entry {
            Entry::Net(net) => Kind::Net(net),
            Entry::Target(t) if t.port == 0 => Kind::EachPort(t),
            Entry::Target(t) => {
                let scheme = self
                    .ports
                    .iter()
                    .find(|p| p.port == t.port)
                    .map_or_else(|| scheme_for_port(t.port), |p| p.scheme);
                Kind::One(Target { scheme, ..t })
            }
        };
        // Mixed with the entry's start, so equal prefixes on two lines are not walked alike.
        let key = self.order.seed ^ (start as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        EntryWalk {
            kind,
            ports: self.ports.clone(),
            start,
            end,
            perm: (count > 1).then(|| Permutation::new(count, key)),
            redo: redo.into_iter(),
            cursor: first,
            step: shards,
        }
    }
}

/// What one entry expands to.
#[derive(Debug)]
enum Kind {
    Net(IpNet),
    /// An explicit target without a port: one target per port of the scan.
    EachPort(Target),
    One(Target),
}

/// One entry's targets for this scan, with their positions (see [`StreamWalk::walk`]).
#[derive(Debug)]
pub struct EntryWalk {
    kind: Kind,
    ports: Arc<[PortSpec]>,
    start: u128,
    end: u128,
    perm: Option<Permutation>,
    redo: std::vec::IntoIter<u128>,
    cursor: u128,
    step: u128,
}

impl EntryWalk {
    fn target(&self, position: u128) -> Target {
        let offset = position - self.start;
        let index = self.perm.as_ref().map_or(offset, |p| p.at(offset));
        let per_address = self.ports.len() as u128;
        match &self.kind {
            Kind::One(t) => t.clone(),
            Kind::EachPort(t) => {
                let spec = self.ports[index as usize];
                Target {
                    port: spec.port,
                    scheme: spec.scheme,
                    ..t.clone()
                }
            }
            Kind::Net(net) => {
                let spec = self.ports[(index % per_address) as usize];
                let ip: IpAddr = nth_address(net, index / per_address);
                Target {
                    ip,
                    port: spec.port,
                    scheme: spec.scheme,
                    domain: None,
                }
            }
        }
    }
}

impl Iterator for EntryWalk {
    type Item = (u128, Target);

    fn next(&mut self) -> Option<(u128, Target)> {
        let position = match self.redo.next() {
            Some(p) => p,
            None if self.cursor < self.end => {
                let p = self.cursor;
                self.cursor = self.cursor.saturating_add(self.step);
                p
            }
            None => return None,
        };
        Some((position, self.target(position)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ports(list: &[u16]) -> Vec<PortSpec> {
        list.iter().map(|&p| PortSpec::from(p)).collect()
    }

    /// The one place tests read a stream: every line of `text` through `read_entries` and a
    /// walk; returns the targets as `ip:port` by position, or the error's text.
    fn stream(
        text: &str,
        ports: &[PortSpec],
        order: Order,
        from: u128,
        pending: &[u128],
    ) -> Result<BTreeMap<u128, String>, String> {
        let mut parser = LineParser::new("stdin", InputFormat::Auto);
        let mut walk = StreamWalk::new(ports, order, from, pending.iter().copied().collect());
        let mut out = BTreeMap::new();
        let exclusions = Exclusions::builtin(true);
        read_entries(text.as_bytes(), &mut parser, &exclusions, |entry| {
            for (p, t) in walk.walk(entry) {
                assert!(out.insert(p, format!("{}:{}", t.ip, t.port)).is_none());
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn everything(text: &str, ports: &[PortSpec]) -> BTreeMap<u128, String> {
        stream(text, ports, Order::default(), 0, &[]).unwrap()
    }

    #[test]
    fn lines_come_out_in_order_and_a_prefix_in_its_own_permutation() {
        let text = "127.0.2.9\n# comment\n\n127.1.0.0/28\n127.9.9.9\n";
        let all = everything(text, &ports(&[443]));
        assert_eq!(all.len(), 18);
        assert_eq!(all[&0], "127.0.2.9:443");
        assert_eq!(all[&17], "127.9.9.9:443");
        let prefix: Vec<&String> = (1..17).map(|p| &all[&p]).collect();
        let mut sorted = prefix.clone();
        sorted.sort_by_key(|s| s.split(':').next().unwrap().parse::<IpAddr>().unwrap());
        assert_ne!(prefix, sorted, "the prefix is permuted");
        let expected: Vec<String> = (0..16).map(|i| format!("127.1.0.{i}:443")).collect();
        assert_eq!(
            sorted.into_iter().cloned().collect::<Vec<_>>(),
            expected,
            "and complete"
        );
        // The same input, seed and ports number the same way.
        assert_eq!(everything(text, &ports(&[443])), all);
        let reseeded = stream(
            text,
            &ports(&[443]),
            Order {
                seed: 1,
                ..Order::default()
            },
            0,
            &[],
        )
        .unwrap();
        assert_ne!(reseeded, all);
    }

    #[test]
    fn explicit_targets_keep_their_port_or_take_each() {
        let text = "127.0.0.7, mail.example.org, t, 8443\n127.0.0.8, owa.example.net\n";
        let all = everything(text, &ports(&[443, 25]));
        let got: Vec<&str> = all.values().map(String::as_str).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], "127.0.0.7:8443");
        let mut rest = got[1..].to_vec();
        rest.sort();
        assert_eq!(rest, ["127.0.0.8:25", "127.0.0.8:443"]);
    }

    #[test]
    fn shards_are_disjoint_and_complete_and_resume_repeats_and_skips_nothing() {
        let text = "127.2.0.0/26\n127.3.0.1\n127.4.0.0/29\n";
        let ports = ports(&[443, 80]);
        let all = everything(text, &ports);
        assert_eq!(all.len(), (64 + 1 + 8) * 2);
        let mut union = BTreeMap::new();
        for shard in 0..3 {
            let order = Order {
                seed: 0,
                shards: 3,
                shard,
            };
            for (p, t) in stream(text, &ports, order, 0, &[]).unwrap() {
                assert_eq!(p % 3, u128::from(shard));
                assert!(union.insert(p, t).is_none());
            }
        }
        assert_eq!(union, all, "the shards together are the whole");

        // Stopped after taking 100 positions with 3, 64 and 99 unfinished: a resume gives
        // exactly those and everything from 100 on.
        let resumed = stream(text, &ports, Order::default(), 100, &[3, 64, 99]).unwrap();
        let expected: BTreeMap<u128, String> = all
            .iter()
            .filter(|(&p, _)| p >= 100 || [3, 64, 99].contains(&p))
            .map(|(&p, t)| (p, t.clone()))
            .collect();
        assert_eq!(resumed, expected);
    }

    #[test]
    fn bad_lines_are_named_and_stop_the_stream_after_what_came_before() {
        let mut parser = LineParser::new("stdin", InputFormat::Auto);
        let mut seen = Vec::new();
        let err = read_entries(
            "127.0.0.1\n127.0.0.2\n127.0.0.300\n127.0.0.4\n".as_bytes(),
            &mut parser,
            &Exclusions::builtin(true),
            |entry| {
                seen.push(entry);
                ControlFlow::Continue(())
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("stdin line 3: \"127.0.0.300\""),
            "{err}"
        );
        assert_eq!(seen.len(), 2, "lines before the bad one were handed over");

        let check = |text: &[u8], want: &str| {
            let mut parser = LineParser::new("in", InputFormat::Auto);
            let err = read_entries(text, &mut parser, &Exclusions::builtin(false), |_| {
                ControlFlow::Continue(())
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(want), "{err}");
        };
        check(
            b"1.1.1.1\n127.0.0.1\n",
            "in line 2: 127.0.0.1/32 lies in 127.0.0.0/8",
        );
        check(b"1.1.1.1\n\xff\xfe\n", "in line 2");
        check(b"1.1.1.1\n\xff\xfe\n", "is not a line of UTF-8 text");
        let long = format!("1.1.1.1\n{}\n", "9".repeat(MAX_LINE + 1));
        check(long.as_bytes(), "in line 2");
        check(b"\n// note\n1.1.1.1\n", "in line 2: \"// note\"");
        check(b"// note\n", "in line 1");
        // Breaking stops the reading at once.
        let mut parser = LineParser::new("in", InputFormat::Auto);
        let mut n = 0;
        read_entries(
            "127.0.0.1\n127.0.0.2\nbad\n".as_bytes(),
            &mut parser,
            &Exclusions::builtin(true),
            |_| {
                n += 1;
                ControlFlow::Break(())
            },
        )
        .unwrap();
        assert_eq!((n, parser.lines()), (1, 1), "no line read after the break");
    }

    #[test]
    fn peer_formats_stream_as_they_parse_whole() {
        let texts = [
            "{\"saddr\": \"127.0.0.3\", \"sport\": 443}\n{\"saddr\": \"127.0.0.4\"}\n",
            "#masscan\nopen tcp 443 127.0.0.5 1700000000\n# end\n",
            "[\n{ \"ip\": \"127.0.0.7\", \"ports\": [ {\"port\": 25}, {\"port\": 443} ] },\n]\n",
            "127.0.0.7, mail.example.org, t, 8443\n",
        ];
        for text in texts {
            let whole = super::super::parse_target_list(text, "x", InputFormat::Auto).unwrap();
            let mut parser = LineParser::new("x", InputFormat::Auto);
            let mut streamed = Vec::new();
            for line in text.lines() {
                parser.line(line, &mut streamed).unwrap();
            }
            parser.finish().unwrap();
            assert_eq!(streamed, whole, "{text}");
        }
    }
}
