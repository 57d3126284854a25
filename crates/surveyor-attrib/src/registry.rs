//! The organisations registry: read from CSV or JSON, validated as a whole, written back in
//! one canonical form.
//!
//! Validation never stops at the first mistake: a CERT fixing a registry of thousands of
//! lines wants every bad line at once, each with its line number.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::value::RawValue;
use surveyor_model::{Organisation, Sector};

use crate::names;

/// The columns of the canonical CSV form, in the order [`Registry::to_csv`] writes them.
pub const CSV_COLUMNS: [&str; 11] = [
    "id",
    "name",
    "sector",
    "subsector",
    "country",
    "naics",
    "cidrs",
    "asns",
    "domains",
    "abuse_contact",
    "language",
];

/// How many problems [`RegistryError`]'s `Display` lists before it only counts the rest.
const SHOWN_PROBLEMS: usize = 50;

/// The syntax of a registry text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    Csv,
    Json,
    /// JSON when the first non-space character is `[` or `{`, CSV otherwise.
    #[default]
    Auto,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "auto" => Ok(Format::Auto),
            _ => Err(format!(
                "unknown registry format {s:?}; known: csv, json, auto"
            )),
        }
    }
}

/// A validated list of organisations: ids, domains, prefixes and AS numbers are unique,
/// prefixes have no host bits, domains are lower-case DNS names, countries upper case.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    organisations: Vec<Organisation>,
    by_id: HashMap<String, usize>,
}

impl PartialEq for Registry {
    fn eq(&self, other: &Registry) -> bool {
        self.organisations == other.organisations
    }
}

impl Eq for Registry {}

impl Registry {
    /// Validates organisations built in code; problems are located by index.
    pub fn new(organisations: Vec<Organisation>) -> Result<Registry, RegistryError> {
        let entries = organisations
            .into_iter()
            .enumerate()
            .map(|(index, organisation)| Entry {
                location: Location {
                    line: None,
                    index: Some(index),
                },
                organisation,
                derive_id: false,
                raw: None,
            })
            .collect();
        validate(entries, Vec::new())
    }

    /// Reads a registry in the canonical CSV form, the test-bed's legacy CSV form, or JSON.
    /// See `docs/attribution.md` for the formats.
    pub fn parse(text: &str, format: Format) -> Result<Registry, RegistryError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let json = match format {
            Format::Csv => false,
            Format::Json => true,
            Format::Auto => matches!(text.trim_start().chars().next(), Some('[' | '{')),
        };
        let (entries, problems) = if json {
            parse_json(text)
        } else {
            parse_csv(text)
        };
        validate(entries, problems)
    }

    pub fn organisations(&self) -> &[Organisation] {
        &self.organisations
    }

    pub fn get(&self, id: &str) -> Option<&Organisation> {
        self.by_id.get(id).map(|&i| &self.organisations[i])
    }

    pub fn len(&self) -> usize {
        self.organisations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.organisations.is_empty()
    }

    /// The canonical CSV form: the header [`CSV_COLUMNS`], lists separated by spaces.
    pub fn to_csv(&self) -> String {
        let mut out = csv::Writer::from_writer(Vec::new());
        let join = |items: Vec<String>| items.join(" ");
        out.write_record(CSV_COLUMNS)
            .expect("writing to memory cannot fail");
        for org in &self.organisations {
            out.write_record([
                org.id.as_str(),
                org.name.as_str(),
                org.sector.as_str(),
                org.subsector.as_deref().unwrap_or(""),
                org.country.as_deref().unwrap_or(""),
                org.naics.as_deref().unwrap_or(""),
                &join(org.cidrs.iter().map(IpNet::to_string).collect()),
                &join(org.asns.iter().map(u32::to_string).collect()),
                &org.domains.join(" "),
                org.abuse_contact.as_deref().unwrap_or(""),
                org.language.as_deref().unwrap_or(""),
            ])
            .expect("writing to memory cannot fail");
        }
        let bytes = out.into_inner().expect("writing to memory cannot fail");
        String::from_utf8(bytes).expect("every field is a Rust string")
    }

    /// The canonical JSON form: an array of organisations in their serde form.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.organisations)
            .expect("organisations serialise to JSON");
        text.push('\n');
        text
    }

    fn from_valid(organisations: Vec<Organisation>) -> Registry {
        let by_id = organisations
            .iter()
            .enumerate()
            .map(|(i, org)| (org.id.clone(), i))
            .collect();
        Registry {
            organisations,
            by_id,
        }
    }
}

/// Every problem found in a registry text, in text order. Never worth a retry: the text
/// must be fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    problems: Vec<Problem>,
}

impl RegistryError {
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{n} problem{} in the registry:",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in self.problems.iter().take(SHOWN_PROBLEMS) {
            write!(f, "\n{problem}")?;
        }
        if n > SHOWN_PROBLEMS {
            write!(f, "\nand {} more", n - SHOWN_PROBLEMS)?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

/// One thing wrong with one record (or with the text as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.kind)
    }
}

/// Where a problem is: the 1-based physical line (CSV, JSON), the 0-based index in the
/// organisations array (JSON, [`Registry::new`]), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: Option<usize>,
    pub index: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.index) {
            (Some(line), Some(index)) => write!(f, "line {line}, organisations[{index}]"),
            (Some(line), None) => write!(f, "line {line}"),
            (None, Some(index)) => write!(f, "organisations[{index}]"),
            (None, None) => f.write_str("registry"),
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// The text is not well-formed CSV or JSON, or a JSON record has the wrong shape.
    #[error("{reason}")]
    Syntax { reason: String },
    #[error("no header line; a CSV registry starts with its column names ({})", CSV_COLUMNS.join(","))]
    MissingHeader,
    #[error("unknown column {column:?}; known: {} (and the legacy organisation, cidr, domain)", CSV_COLUMNS.join(", "))]
    UnknownColumn { column: String },
    #[error("column {column:?} appears twice (name and organisation are one column)")]
    DuplicateColumn { column: String },
    #[error("no {column:?} column")]
    MissingColumn { column: &'static str },
    #[error("{found} fields where the header has {expected}")]
    FieldCount { expected: usize, found: usize },
    #[error("id {given:?} is not 1 to 255 letters, digits, dots, hyphens or underscores")]
    BadId { given: String },
    #[error("no id, and neither a domain nor a name to derive one from")]
    NoId,
    #[error("duplicate id {id:?}, first at {first}")]
    DuplicateId { id: String, first: Location },
    #[error("empty name")]
    EmptyName,
    #[error("{}", unknown_sector(given))]
    UnknownSector { given: String },
    #[error("prefix {given:?} {reason}")]
    BadCidr { given: String, reason: &'static str },
    #[error("prefix {given} has host bits set; the prefix is {canonical}")]
    HostBitsSet { given: String, canonical: IpNet },
    #[error("AS number {given:?} {reason}")]
    BadAsn { given: String, reason: &'static str },
    #[error("domain {given:?} {reason}")]
    BadDomain { given: String, reason: &'static str },
    #[error("country {given:?} is not two ASCII letters (ISO 3166-1 alpha-2, like DE)")]
    BadCountry { given: String },
    /// A domain, prefix or AS number twice in one organisation (`by` is `None`) or in two.
    #[error("{}", claimed(*what, value, by.as_ref()))]
    Claimed {
        what: Claim,
        value: String,
        by: Option<(String, Location)>,
    },
}

/// What can belong to one organisation only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Domain,
    Prefix,
    Asn,
}

impl ProblemKind {
    /// Text of the record that shows where in a JSON record the problem is.
    fn needle(&self) -> Option<&str> {
        match self {
            ProblemKind::BadId { given }
            | ProblemKind::BadCidr { given, .. }
            | ProblemKind::HostBitsSet { given, .. }
            | ProblemKind::BadAsn { given, .. }
            | ProblemKind::BadDomain { given, .. }
            | ProblemKind::BadCountry { given } => Some(given),
            ProblemKind::UnknownSector { given } if !given.is_empty() => Some(given),
            ProblemKind::DuplicateId { id, .. } => Some(id),
            ProblemKind::Claimed { value, .. } => Some(value),
            ProblemKind::EmptyName => Some("\"name\""),
            _ => None,
        }
    }
}

fn unknown_sector(given: &str) -> String {
    let known: Vec<&str> = Sector::ALL.iter().map(|s| s.as_str()).collect();
    if given.is_empty() {
        format!("no sector; known: {}", known.join(", "))
    } else {
        format!("unknown sector {given:?}; known: {}", known.join(", "))
    }
}

fn claimed(what: Claim, value: &str, by: Option<&(String, Location)>) -> String {
    let thing = match what {
        Claim::Domain => format!("domain {value}"),
        Claim::Prefix => format!("prefix {value}"),
        Claim::Asn => format!("AS{value}"),
    };
    match by {
        None => format!("{thing} is listed twice"),
        Some((id, location)) => format!("{thing} already belongs to {id:?} ({location})"),
    }
}

/// One record on its way to validation.
struct Entry<'a> {
    location: Location,
    organisation: Organisation,
    /// The id was left empty in a text and is derived from the domain or name.
    derive_id: bool,
    /// The record's JSON text, to find the line of a problem inside it.
    raw: Option<&'a str>,
}

fn validate(
    entries: Vec<Entry<'_>>,
    mut problems: Vec<Problem>,
) -> Result<Registry, RegistryError> {
    let mut organisations = Vec::with_capacity(entries.len());
    let mut places = Vec::with_capacity(entries.len());
    for entry in entries {
        let place = Place {
            location: entry.location,
            raw: entry.raw,
        };
        let mut found = Vec::new();
        organisations.push(check(entry.organisation, entry.derive_id, &mut found));
        problems.extend(found.into_iter().map(|kind| place.problem(kind)));
        places.push(place);
    }
    cross_check(&organisations, &places, &mut problems);
    if problems.is_empty() {
        Ok(Registry::from_valid(organisations))
    } else {
        problems.sort_by_key(|p| p.location);
        Err(RegistryError { problems })
    }
}

/// Where a record is, to locate its problems.
struct Place<'a> {
    location: Location,
    raw: Option<&'a str>,
}

impl Place<'_> {
    fn problem(&self, kind: ProblemKind) -> Problem {
        let mut location = self.location;
        if let (Some(raw), Some(line), Some(needle)) = (self.raw, location.line, kind.needle()) {
            let quoted = format!("\"{needle}\"");
            if let Some(at) = raw.find(&quoted).or_else(|| raw.find(needle)) {
                location.line = Some(line + LineIndex::new(&raw[..at]).line(at) - 1);
            }
        }
        Problem { location, kind }
    }
}

/// Normalises one organisation and reports what is wrong with it alone.
fn check(mut org: Organisation, derive_id: bool, problems: &mut Vec<ProblemKind>) -> Organisation {
    org.name = org.name.trim().to_owned();
    if org.name.is_empty() {
        problems.push(ProblemKind::EmptyName);
    }
    for field in [
        &mut org.subsector,
        &mut org.naics,
        &mut org.abuse_contact,
        &mut org.language,
    ] {
        *field = field
            .take()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
    }
    org.country = match org.country.take().map(|s| s.trim().to_owned()) {
        Some(c) if c.is_empty() => None,
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(c.to_ascii_uppercase())
        }
        Some(c) => {
            problems.push(ProblemKind::BadCountry { given: c });
            None
        }
        None => None,
    };
    let mut domains = Vec::with_capacity(org.domains.len());
    for given in org.domains {
        match names::normalise_domain(&given) {
            Ok(domain) => domains.push(domain),
            Err(reason) => problems.push(ProblemKind::BadDomain { given, reason }),
        }
    }
    org.domains = domains;
    for net in &org.cidrs {
        if net.trunc() != *net {
            problems.push(ProblemKind::HostBitsSet {
                given: net.to_string(),
                canonical: net.trunc(),
            });
        }
    }
    for &asn in &org.asns {
        if let Err(reason) = usable_asn(asn) {
            problems.push(ProblemKind::BadAsn {
                given: asn.to_string(),
                reason,
            });
        }
    }
    org.id = org.id.trim().to_owned();
    if org.id.is_empty() && derive_id {
        org.id = match org.domains.first() {
            Some(domain) => domain.clone(),
            None => names::slug(&org.name),
        };
        if org.id.is_empty() {
            problems.push(ProblemKind::NoId);
        }
    } else if !valid_id(&org.id) {
        problems.push(ProblemKind::BadId {
            given: org.id.clone(),
        });
    }
    org
}

/// Reports ids, domains, prefixes and AS numbers given twice.
fn cross_check(orgs: &[Organisation], places: &[Place<'_>], problems: &mut Vec<Problem>) {
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(orgs.len());
    let mut domains: HashMap<&str, usize> = HashMap::new();
    let mut prefixes: HashMap<IpNet, usize> = HashMap::new();
    let mut asns: HashMap<u32, usize> = HashMap::new();
    for (i, org) in orgs.iter().enumerate() {
        if !org.id.is_empty() {
            if let Some(&first) = ids.get(org.id.as_str()) {
                problems.push(places[i].problem(ProblemKind::DuplicateId {
                    id: org.id.clone(),
                    first: places[first].location,
                }));
            } else {
                ids.insert(&org.id, i);
            }
        }
        // Values are formatted only for a problem: a million prefixes pass without it.
        let mut claim = |what: Claim, value: &dyn fmt::Display, first: usize| {
            let by = (first != i).then(|| (orgs[first].id.clone(), places[first].location));
            let value = value.to_string();
            problems.push(places[i].problem(ProblemKind::Claimed { what, value, by }));
        };
        for domain in &org.domains {
            if let Some(first) = domains.insert(domain, i) {
                domains.insert(domain, first);
                claim(Claim::Domain, domain, first);
            }
        }
        for net in &org.cidrs {
            if let Some(first) = prefixes.insert(*net, i) {
                prefixes.insert(*net, first);
                claim(Claim::Prefix, net, first);
            }
        }
        for &asn in &org.asns {
            if let Some(first) = asns.insert(asn, i) {
                asns.insert(asn, first);
                claim(Claim::Asn, &asn, first);
            }
        }
    }
}

fn valid_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// AS numbers that no network can originate routes from.
fn usable_asn(asn: u32) -> Result<(), &'static str> {
    match asn {
        0 => Err("is reserved (RFC 7607)"),
        23456 => Err("is AS_TRANS, a placeholder (RFC 6793)"),
        65535 | u32::MAX => Err("is reserved (RFC 7300)"),
        _ => Ok(()),
    }
}

fn parse_asn(text: &str) -> Result<u32, &'static str> {
    let text = text.trim();
    let digits = match text.get(..2) {
        Some(prefix) if prefix.eq_ignore_ascii_case("as") => &text[2..],
        _ => text,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a number (like 64500 or AS64500)");
    }
    digits
        .parse::<u32>()
        .map_err(|_| "is larger than 4294967295")
}

fn parse_cidr(text: &str) -> Result<IpNet, &'static str> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    // A bare address is its own host prefix.
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err("is not an address prefix (like 192.0.2.0/24 or 2001:db8::/32)")
}

fn parse_sector(text: &str) -> Result<Sector, ProblemKind> {
    text.trim()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| ProblemKind::UnknownSector {
            given: text.trim().to_owned(),
        })
}

/// An organisation with every field empty, filled in by the readers.
fn blank() -> Organisation {
    Organisation {
        id: String::new(),
        name: String::new(),
        // Only kept when there is no problem, and a bad sector is a problem.
        sector: Sector::Business,
        subsector: None,
        country: None,
        naics: None,
        cidrs: Vec::new(),
        asns: Vec::new(),
        domains: Vec::new(),
        abuse_contact: None,
        language: None,
    }
}

/// Lists in a CSV cell: separated by spaces or semicolons.
fn split_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(|c: char| c.is_whitespace() || c == ';')
        .filter(|item| !item.is_empty())
}

fn optional(cell: &str) -> Option<String> {
    Some(cell.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Line numbers by byte offset; `\n`, `\r\n` and a lone `\r` each end a line.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    i += 1;
                    starts.push(i + 1);
                }
                b'\r' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

/// CSV columns, by their canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    Name,
    Sector,
    Subsector,
    Country,
    Naics,
    Cidrs,
    Asns,
    Domains,
    AbuseContact,
    Language,
}

impl Column {
    fn from_header(name: &str) -> Option<Column> {
        Some(match name {
            "id" => Column::Id,
            // The test-bed's legacy form names three columns differently.
            "name" | "organisation" => Column::Name,
            "sector" => Column::Sector,
            "subsector" => Column::Subsector,
            "country" => Column::Country,
            "naics" => Column::Naics,
            "cidrs" | "cidr" => Column::Cidrs,
            "asns" => Column::Asns,
            "domains" | "domain" => Column::Domains,
            "abuse_contact" => Column::AbuseContact,
            "language" => Column::Language,
            _ => return None,
        })
    }
}

fn parse_csv(text: &str) -> (Vec<Entry<'_>>, Vec<Problem>) {
    let lines = LineIndex::new(text);
    let at_line = |line: usize| Location {
        line: Some(line),
        index: None,
    };
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let line_of = |position: Option<&csv::Position>| {
        let mut at = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        // csv puts a record after blank lines (or after CR of CRLF) at those line ends.
        while matches!(text.as_bytes().get(at), Some(b'\r' | b'\n')) {
            at += 1;
        }
        lines.line(at)
    };

    let header = match records.next() {
        Some(Ok(header)) => header,
        Some(Err(error)) => {
            let problem = Problem {
                location: at_line(line_of(error.position())),
                kind: ProblemKind::Syntax {
                    reason: csv_reason(&error),
                },
            };
            return (Vec::new(), vec![problem]);
        }
        None => {
            let problem = Problem {
                location: at_line(1),
                kind: ProblemKind::MissingHeader,
            };
            return (Vec::new(), vec![problem]);
        }
    };
    let header_line = line_of(header.position());
    let mut columns: Vec<Column> = Vec::with_capacity(header.len());
    for cell in &header {
        let name = cell.to_ascii_lowercase();
        match Column::from_header(&name) {
            Some(column) if columns.contains(&column) => problems.push(Problem {
                location: at_line(header_line),
                kind: ProblemKind::DuplicateColumn { column: name },
            }),
            Some(column) => columns.push(column),
            None => problems.push(Problem {
                location: at_line(header_line),
                kind: ProblemKind::UnknownColumn { column: name },
            }),
        }
    }
    for (column, name) in [(Column::Name, "name"), (Column::Sector, "sector")] {
        if !columns.contains(&column) {
            problems.push(Problem {
                location: at_line(header_line),
                kind: ProblemKind::MissingColumn { column: name },
            });
        }
    }
    if !problems.is_empty() {
        // Without a sound header no row can be read for what it is.
        return (Vec::new(), problems);
    }

    let mut entries = Vec::new();
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                problems.push(Problem {
                    location: at_line(line_of(error.position())),
                    kind: ProblemKind::Syntax {
                        reason: csv_reason(&error),
                    },
                });
                break;
            }
        };
        let location = at_line(line_of(record.position()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != columns.len() {
            problems.push(Problem {
                location,
                kind: ProblemKind::FieldCount {
                    expected: columns.len(),
                    found: record.len(),
                },
            });
            continue;
        }
        let mut org = blank();
        for (&column, cell) in columns.iter().zip(record.iter()) {
            match column {
                Column::Id => org.id = cell.to_owned(),
                Column::Name => org.name = cell.to_owned(),
                Column::Sector => match parse_sector(cell) {
                    Ok(sector) => org.sector = sector,
                    Err(kind) => problems.push(Problem { location, kind }),
                },
                Column::Subsector => org.subsector = optional(cell),
                Column::Country => org.country = optional(cell),
                Column::Naics => org.naics = optional(cell),
                Column::Cidrs => {
                    for item in split_list(cell) {
                        match parse_cidr(item) {
                            Ok(net) => org.cidrs.push(net),
                            Err(reason) => problems.push(Problem {
                                location,
                                kind: ProblemKind::BadCidr {
                                    given: item.to_owned(),
                                    reason,
                                },
                            }),
                        }
                    }
                }
                Column::Asns => {
                    for item in split_list(cell) {
                        match parse_asn(item) {
                            Ok(asn) => org.asns.push(asn),
                            Err(reason) => problems.push(Problem {
                                location,
                                kind: ProblemKind::BadAsn {
                                    given: item.to_owned(),
                                    reason,
                                },
                            }),
                        }
                    }
                }
                Column::Domains => org.domains = split_list(cell).map(str::to_owned).collect(),
                Column::AbuseContact => org.abuse_contact = optional(cell),
                Column::Language => org.language = optional(cell),
            }
        }
        entries.push(Entry {
            location,
            derive_id: org.id.is_empty(),
            organisation: org,
            raw: None,
        });
    }
    (entries, problems)
}

fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "a field is not valid UTF-8".to_owned(),
        _ => "the CSV cannot be read here".to_owned(),
    }
}

/// The wrapped JSON form `{"organisations": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped<'a> {
    #[serde(borrow)]
    organisations: Vec<&'a RawValue>,
}

/// One JSON record as written; [`check`] decides what is valid.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sector: Option<String>,
    #[serde(default)]
    subsector: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    naics: Option<String>,
    #[serde(default)]
    cidrs: Vec<String>,
    #[serde(default)]
    asns: Vec<serde_json::Value>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    abuse_contact: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

fn parse_json(text: &str) -> (Vec<Entry<'_>>, Vec<Problem>) {
    let lines = LineIndex::new(text);
    let items: Result<Vec<&RawValue>, serde_json::Error> = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Wrapped<'_>>(text).map(|w| w.organisations)
    } else {
        serde_json::from_str(text)
    };
    let items = match items {
        Ok(items) => items,
        Err(error) => {
            let problem = Problem {
                location: Location {
                    line: Some(error.line().max(1)),
                    index: None,
                },
                kind: ProblemKind::Syntax {
                    reason: json_reason(&error),
                },
            };
            return (Vec::new(), vec![problem]);
        }
    };

    let mut entries = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (index, raw) in items.into_iter().enumerate() {
        let raw = raw.get();
        // The record is a slice of `text`: its address gives its line.
        let offset = (raw.as_ptr() as usize)
            .checked_sub(text.as_ptr() as usize)
            .filter(|&offset| offset <= text.len());
        let line = offset.map(|offset| lines.line(offset));
        let location = Location {
            line,
            index: Some(index),
        };
        let record: JsonRecord = match serde_json::from_str(raw) {
            Ok(record) => record,
            Err(error) => {
                problems.push(Problem {
                    location: Location {
                        line: line.map(|line| line + error.line().saturating_sub(1)),
                        index: Some(index),
                    },
                    kind: ProblemKind::Syntax {
                        reason: json_reason(&error),
                    },
                });
                continue;
            }
        };
        let place = Place {
            location,
            raw: Some(raw),
        };
        let mut org = blank();
        org.id = record.id.unwrap_or_default();
        org.name = record.name.unwrap_or_default();
        match parse_sector(record.sector.as_deref().unwrap_or("")) {
            Ok(sector) => org.sector = sector,
            Err(kind) => problems.push(place.problem(kind)),
        }
        org.subsector = record.subsector;
        org.country = record.country;
        org.naics = record.naics;
        for given in record.cidrs {
            match parse_cidr(given.trim()) {
                Ok(net) => org.cidrs.push(net),
                Err(reason) => problems.push(place.problem(ProblemKind::BadCidr { given, reason })),
            }
        }
        for value in record.asns {
            let parsed = match &value {
                serde_json::Value::Number(n) => n
                    .as_u64()
                    .ok_or("is not a whole number")
                    .and_then(|n| u32::try_from(n).map_err(|_| "is larger than 4294967295")),
                serde_json::Value::String(s) => parse_asn(s),
                _ => Err("is not a number (like 64500 or AS64500)"),
            };
            match parsed {
                Ok(asn) => org.asns.push(asn),
                Err(reason) => {
                    let given = match value {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    problems.push(place.problem(ProblemKind::BadAsn { given, reason }));
                }
            }
        }
        org.domains = record.domains;
        org.abuse_contact = record.abuse_contact;
        org.language = record.language;
        entries.push(Entry {
            location,
            derive_id: org.id.trim().is_empty(),
            organisation: org,
            raw: Some(raw),
        });
    }
    (entries, problems)
}

/// serde_json's message without its own position, which [`Location`] gives instead.
fn json_reason(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The problems of `text` as `line: reason` strings; `[]` when it parses.
    fn problems(text: &str, format: Format) -> Vec<String> {
        match Registry::parse(text, format) {
            Ok(_) => Vec::new(),
            Err(error) => error.problems().iter().map(Problem::to_string).collect(),
        }
    }

    fn check(text: &str, format: Format, expected: &[&str]) {
        assert_eq!(problems(text, format), expected, "{text}");
    }

    const GOOD_CSV: &str = "\
id,name,sector,subsector,country,naics,cidrs,asns,domains,abuse_contact,language
klinikum-buchholz,Klinikum Buchholz,hospital,,de,622110,192.0.2.0/24;2001:db8:1::/48,,Klinikum-Buchholz.example,abuse@klinikum-buchholz.example,de
hoster,Hosting AG,ict-hosting,,DE,,198.51.100.0/22,AS64500 64501,hoster.example,,en
";

    #[test]
    fn canonical_csv_parses_and_normalises() {
        let registry = Registry::parse(GOOD_CSV, Format::Auto).unwrap();
        assert_eq!(registry.len(), 2);
        let klinikum = registry.get("klinikum-buchholz").unwrap();
        assert_eq!(klinikum.sector, Sector::Hospital);
        assert_eq!(klinikum.country.as_deref(), Some("DE"));
        assert_eq!(klinikum.naics.as_deref(), Some("622110"));
        assert_eq!(klinikum.domains, ["klinikum-buchholz.example"]);
        assert_eq!(
            klinikum.cidrs,
            [
                "192.0.2.0/24".parse::<IpNet>().unwrap(),
                "2001:db8:1::/48".parse().unwrap()
            ]
        );
        assert_eq!(klinikum.subsector, None);
        assert_eq!(registry.get("hoster").unwrap().asns, [64500, 64501]);
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let text = "sector,domains,name\nschool,gymnasium.example,Gymnasium\n";
        let registry = Registry::parse(text, Format::Csv).unwrap();
        // Without an id column the id comes from the domain.
        assert_eq!(registry.organisations()[0].id, "gymnasium.example");
    }

    #[test]
    fn legacy_testbed_csv_parses() {
        let text = "\
organisation,sector,cidr,domain,abuse_contact,language
Klinikum Buchholz,hospital,127.77.0.4/30,klinikum-buchholz.example,abuse@klinikum-buchholz.example,de
Kanzlei Müller & Partner,law-firm,127.77.0.9/32 127.77.0.12/32,kanzlei-mueller.example,abuse@kanzlei-mueller.example,de
Praxis Dr. Müller,medical-practice,127.77.1.0/32,,,de
";
        let registry = Registry::parse(text, Format::Auto).unwrap();
        let ids: Vec<&str> = registry
            .organisations()
            .iter()
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "klinikum-buchholz.example",
                "kanzlei-mueller.example",
                "praxis-dr-mueller"
            ]
        );
        let kanzlei = registry.get("kanzlei-mueller.example").unwrap();
        assert_eq!(kanzlei.name, "Kanzlei Müller & Partner");
        assert_eq!(kanzlei.cidrs.len(), 2);
        assert_eq!(kanzlei.language.as_deref(), Some("de"));
    }

    #[test]
    fn every_bad_line_is_reported_with_its_line() {
        let text = "\
id,name,sector,cidrs,asns,domains,country
a,A,hospitals,192.0.2.0/24,,a.example,DE
b,,school,192.0.2.1/24,AS0,b.example,Deutschland
c,C,school,10.0.0.0/33,ASx,co.uk,de

a,D,law-firm,,4294967296,*.d.example,
e,E,law-firm,192.0.2.0/24,,a.example,
f,F,law-firm
";
        let known = Sector::ALL.map(|s| s.as_str()).join(", ");
        check(
            text,
            Format::Csv,
            &[
                &format!("line 2: unknown sector \"hospitals\"; known: {known}"),
                "line 3: empty name",
                "line 3: country \"Deutschland\" is not two ASCII letters (ISO 3166-1 alpha-2, like DE)",
                "line 3: prefix 192.0.2.1/24 has host bits set; the prefix is 192.0.2.0/24",
                "line 3: AS number \"0\" is reserved (RFC 7607)",
                "line 4: prefix \"10.0.0.0/33\" is not an address prefix (like 192.0.2.0/24 or 2001:db8::/32)",
                "line 4: AS number \"ASx\" is not a number (like 64500 or AS64500)",
                "line 4: domain \"co.uk\" is a public suffix, shared by unrelated owners",
                "line 6: AS number \"4294967296\" is larger than 4294967295",
                "line 6: domain \"*.d.example\" has a character other than a letter, digit, hyphen or dot",
                "line 6: duplicate id \"a\", first at line 2",
                "line 7: domain a.example already belongs to \"a\" (line 2)",
                "line 7: prefix 192.0.2.0/24 already belongs to \"a\" (line 2)",
                "line 8: 3 fields where the header has 7",
            ],
        );
    }

    #[test]
    fn line_numbers_survive_crlf_cr_quotes_and_a_bom() {
        let lf = "id,name,sector\na,\"A\nwith a line break\",school\nb,B,bad\n";
        assert!(problems(lf, Format::Csv)[0].starts_with("line 4: unknown sector \"bad\""));
        let crlf = lf.replace('\n', "\r\n");
        assert!(problems(&crlf, Format::Csv)[0].starts_with("line 4: unknown sector"));
        let cr = lf.replace('\n', "\r");
        assert!(problems(&cr, Format::Csv)[0].starts_with("line 4: unknown sector"));
        let bom = format!("\u{feff}{crlf}");
        assert!(problems(&bom, Format::Auto)[0].starts_with("line 4: unknown sector"));
    }

    #[test]
    fn header_problems_stop_before_the_rows() {
        check(
            "id,name,sector,colour,organisation\n",
            Format::Csv,
            &[
                "line 1: unknown column \"colour\"; known: id, name, sector, subsector, country, naics, cidrs, asns, domains, abuse_contact, language (and the legacy organisation, cidr, domain)",
                "line 1: column \"organisation\" appears twice (name and organisation are one column)",
            ],
        );
        check("id,name\n", Format::Csv, &["line 1: no \"sector\" column"]);
        check(
            "",
            Format::Csv,
            &["line 1: no header line; a CSV registry starts with its column names (id,name,sector,subsector,country,naics,cidrs,asns,domains,abuse_contact,language)"],
        );
        assert_eq!(
            Registry::parse("id,name,sector\n", Format::Csv),
            Ok(Registry::default())
        );
    }

    #[test]
    fn json_problems_name_index_and_line() {
        let text = r#"[
  {"id": "a", "name": "A", "sector": "hospital", "domains": ["a.example"]},
  {
    "id": "b",
    "name": "B",
    "sector": "school",
    "cidrs": ["192.0.2.1/24"],
    "asns": [64500, "AS23456", -1]
  },
  {"id": "c", "name": "C", "sector": "school", "colour": "red"},
  {"id": "a", "name": "", "sector": "nope"}
]"#;
        let known = Sector::ALL.map(|s| s.as_str()).join(", ");
        check(
            text,
            Format::Auto,
            &[
                "line 7, organisations[1]: prefix 192.0.2.1/24 has host bits set; the prefix is 192.0.2.0/24",
                "line 8, organisations[1]: AS number \"-1\" is not a whole number",
                "line 8, organisations[1]: AS number \"23456\" is AS_TRANS, a placeholder (RFC 6793)",
                "line 10, organisations[2]: unknown field `colour`, expected one of `id`, `name`, `sector`, `subsector`, `country`, `naics`, `cidrs`, `asns`, `domains`, `abuse_contact`, `language`",
                &format!("line 11, organisations[3]: unknown sector \"nope\"; known: {known}"),
                "line 11, organisations[3]: empty name",
                "line 11, organisations[3]: duplicate id \"a\", first at line 2, organisations[0]",
            ],
        );
        check("[{]", Format::Json, &["line 1: key must be a string"]);
        check(
            r#"{"orgs": []}"#,
            Format::Json,
            &["line 1: unknown field `orgs`, expected `organisations`"],
        );
    }

    #[test]
    fn json_comes_bare_or_wrapped() {
        let bare = r#"[{"id": "a", "name": "A", "sector": "energy", "asns": ["AS64500"], "country": "at"}]"#;
        let wrapped = format!(r#"{{"organisations": {bare}}}"#);
        let a = Registry::parse(bare, Format::Auto).unwrap();
        assert_eq!(a, Registry::parse(&wrapped, Format::Auto).unwrap());
        assert_eq!(a.organisations()[0].asns, [64500]);
        assert_eq!(a.organisations()[0].country.as_deref(), Some("AT"));
    }

    #[test]
    fn display_lists_fifty_problems_then_counts() {
        let mut text = String::from("id,name,sector\n");
        for i in 0..60 {
            text.push_str(&format!("o{i},O,bad\n"));
        }
        let error = Registry::parse(&text, Format::Csv).unwrap_err();
        let shown = error.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], "60 problems in the registry:");
        assert!(lines[1].starts_with("line 2: unknown sector \"bad\""));
        assert_eq!(lines.len(), 1 + 50 + 1);
        assert_eq!(lines[51], "and 10 more");
    }

    #[test]
    fn registry_new_locates_by_index() {
        let mut org = blank();
        org.id = "x y".to_owned();
        org.name = "X".to_owned();
        let error = Registry::new(vec![org]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "1 problem in the registry:\norganisations[0]: id \"x y\" is not 1 to 255 letters, digits, dots, hyphens or underscores"
        );
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("csv".parse(), Ok(Format::Csv));
        assert_eq!("json".parse(), Ok(Format::Json));
        assert_eq!("auto".parse(), Ok(Format::Auto));
        assert!("xml".parse::<Format>().is_err());
    }

    fn organisation() -> impl Strategy<Value = Organisation> {
        let text = "[A-Za-zäöüß0-9&.,;\"' -]{0,12}";
        let v4 = (any::<u32>(), 0u8..=32).prop_map(|(ip, len)| {
            IpNet::from(ipnet::Ipv4Net::new(ip.into(), len).unwrap().trunc())
        });
        let v6 = (any::<u128>(), 0u8..=128).prop_map(|(ip, len)| {
            IpNet::from(ipnet::Ipv6Net::new(ip.into(), len).unwrap().trunc())
        });
        let domain = (
            "[a-z][a-z0-9-]{0,6}[a-z0-9]",
            prop::sample::select(vec!["example", "de", "co.uk", "local"]),
        )
            .prop_map(|(label, tld)| format!("{label}.{tld}"))
            // `co.de` and the like are public suffixes, which the registry refuses.
            .prop_filter("a registrable domain", |d| {
                psl::domain(d.as_bytes()).is_some()
            });
        (
            (
                "[a-z0-9][a-z0-9._-]{0,10}",
                text,
                prop::sample::select(Sector::ALL.to_vec()),
                prop::option::of(text),
                prop::option::of("[A-Z]{2}"),
                prop::option::of("[0-9]{2,6}"),
            ),
            (
                prop::collection::vec(prop_oneof![v4, v6], 0..4),
                prop::collection::vec(1u32..4_000_000_000, 0..3),
                prop::collection::vec(domain, 0..3),
                prop::option::of(text),
                prop::option::of("[a-z]{2}(-[A-Z]{2})?"),
            ),
        )
            .prop_map(
                |(
                    (id, name, sector, subsector, country, naics),
                    (cidrs, asns, domains, abuse, language),
                )| {
                    // Normal form: no blank around text, no empty optional text.
                    let tidy = |s: String| Some(format!("<{s}>"));
                    Organisation {
                        id,
                        name: format!("<{name}>"),
                        sector,
                        subsector: subsector.and_then(tidy),
                        country,
                        naics,
                        cidrs,
                        asns: asns
                            .into_iter()
                            .filter(|a| usable_asn(*a).is_ok())
                            .collect(),
                        domains,
                        abuse_contact: abuse.and_then(tidy),
                        language,
                    }
                },
            )
    }

    /// Organisations made unique where the registry demands it.
    fn unique(mut orgs: Vec<Organisation>) -> Vec<Organisation> {
        let mut ids = std::collections::HashSet::new();
        let mut domains = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        let mut asns = std::collections::HashSet::new();
        for (i, org) in orgs.iter_mut().enumerate() {
            if !ids.insert(org.id.clone()) {
                org.id = format!("{}-{i}", org.id);
                ids.insert(org.id.clone());
            }
            org.domains.retain(|d| domains.insert(d.clone()));
            org.cidrs.retain(|n| prefixes.insert(*n));
            org.asns.retain(|a| asns.insert(*a));
        }
        orgs
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_text_parses_or_says_why(text in "(?s)[a-z0-9,;:./\"\\[\\]{} \r\n\u{feff}ä-]{0,200}") {
            for format in [Format::Csv, Format::Json, Format::Auto] {
                if let Err(error) = Registry::parse(&text, format) {
                    prop_assert!(!error.problems().is_empty());
                    prop_assert!(error.problems().iter().all(|p| p.location.line.is_some()));
                }
            }
        }

        #[test]
        fn export_parses_back_to_the_same_registry(
            orgs in prop::collection::vec(organisation(), 0..8).prop_map(unique)
        ) {
            let registry = Registry::new(orgs).unwrap();
            let csv = registry.to_csv();
            prop_assert_eq!(&Registry::parse(&csv, Format::Auto).unwrap(), &registry, "{}", csv);
            let json = registry.to_json();
            prop_assert_eq!(&Registry::parse(&json, Format::Auto).unwrap(), &registry, "{}", json);
        }
    }
}
