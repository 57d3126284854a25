//! Minimal HTTP/1.x on raw bytes: request heads in, byte-exact responses out.
//!
//! Written by hand instead of using hyper because personas must control every byte they
//! send (header order, casing, and later deliberately malformed answers).

use std::time::{SystemTime, UNIX_EPOCH};

/// Longest request head we accept; IIS's default limit is in the same range.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Longest request body we read and discard before answering.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// Path without query, lower-cased: IIS matches paths case-insensitively.
    pub(crate) path: String,
    /// Query string without the `?`, as sent.
    pub(crate) query: String,
    /// `true` for HTTP/1.1, `false` for HTTP/1.0.
    pub(crate) http11: bool,
    pub(crate) headers: Vec<(String, String)>,
}

/// The head could not be read as HTTP/1.x; the server answers 400 and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Garbage;

impl Request {
    /// First value of a header, name compared case-insensitively.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after this exchange.
    pub(crate) fn keep_alive(&self) -> bool {
        let tokens = |needle: &str| {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(needle))
        };
        if self.http11 {
            !tokens("close")
        } else {
            tokens("keep-alive")
        }
    }

    /// The declared body length: `Ok(0)` without one, `Err` for anything we will not read
    /// (chunked bodies, bad or conflicting lengths).
    pub(crate) fn body_len(&self) -> Result<usize, Garbage> {
        if self.header("transfer-encoding").is_some() {
            return Err(Garbage);
        }
        let mut lengths = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim());
        let Some(first) = lengths.next() else {
            return Ok(0);
        };
        if lengths.any(|other| other != first) || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Garbage);
        }
        first.parse().map_err(|_| Garbage)
    }
}

/// Where the head ends in `buf` (index just past the blank line), if it is complete.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses a complete head (as delimited by [`head_end`]).
pub(crate) fn parse_head(head: &[u8]) -> Result<Request, Garbage> {
    let text = std::str::from_utf8(head).map_err(|_| Garbage)?;
    // RFC 9112 lets servers ignore empty lines before the request line.
    let text = text.trim_start_matches(['\r', '\n']);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));

    let request_line = lines.next().ok_or(Garbage)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Garbage);
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(Garbage);
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(Garbage),
    };
    let (path, query) = split_target(target)?;

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(Garbage)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Garbage);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Request {
        method: method.to_owned(),
        path: path.to_ascii_lowercase(),
        query: query.to_owned(),
        http11,
        headers,
    })
}

/// Accepts origin-form (`/owa/?x`) and absolute-form (`https://host/owa/?x`) targets.
fn split_target(target: &str) -> Result<(&str, &str), Garbage> {
    let origin = if let Some(rest) = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))
    {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else {
        target
    };
    if !origin.starts_with('/') || origin.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(Garbage);
    }
    Ok(origin.split_once('?').unwrap_or((origin, "")))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A response as a persona wants it on the wire.
///
/// Headers are sent in the given order. A `Date` or `Content-Length` header with an empty
/// value marks where the serializer puts the real value; missing ones go at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The persona closes the connection after this response whatever the client asked.
    pub(crate) close: bool,
    /// Sent as `HTTP/1.0` (BIG-IP APM's own answers), else `HTTP/1.1`.
    pub(crate) http10: bool,
    /// No `Date` header, for appliances that send none.
    pub(crate) no_date: bool,
}

impl Response {
    pub(crate) fn new(status: u16, reason: &'static str) -> Response {
        Response {
            status,
            reason,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
            http10: false,
            no_date: false,
        }
    }

    /// An `HTTP/1.0` status line.
    pub(crate) fn http10(mut self) -> Response {
        self.http10 = true;
        self
    }

    /// Leaves the `Date` header out.
    pub(crate) fn without_date(mut self) -> Response {
        self.no_date = true;
        self
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    pub(crate) fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// The bytes to write. `head_only` answers a HEAD request: same headers, no body.
    pub(crate) fn to_bytes(&self, head_only: bool, date: &str, close: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        out.extend_from_slice(format!("{version} {} {}\r\n", self.status, self.reason).as_bytes());
        let length = self.body.len().to_string();
        let (mut wrote_date, mut wrote_length) = (false, false);
        for (name, value) in &self.headers {
            let value = match name.as_str() {
                "Date" if value.is_empty() => {
                    wrote_date = true;
                    date
                }
                "Content-Length" if value.is_empty() => {
                    wrote_length = true;
                    length.as_str()
                }
                _ => value.as_str(),
            };
            push_header(&mut out, name, value);
        }
        if !wrote_date && !self.no_date {
            push_header(&mut out, "Date", date);
        }
        if !wrote_length {
            push_header(&mut out, "Content-Length", &length);
        }
        if close && !self.headers.iter().any(|(n, _)| n == "Connection") {
            push_header(&mut out, "Connection", "close");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The current time as an IMF-fixdate (`Tue, 14 Nov 2023 22:13:20 GMT`).
pub(crate) fn http_date_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    http_date(secs)
}

fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        // 1970-01-01 was a Thursday.
        DAYS[((days + 4) % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The current time as an RFC 5322 date in German local time, the way Exchange's SMTP
/// banner prints it (`Tue, 14 Nov 2023 23:13:20 +0100`).
pub(crate) fn smtp_date_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    smtp_date(secs)
}

fn smtp_date(unix_secs: u64) -> String {
    // Central European (Summer) Time: EU summer time runs from 01:00 UTC on the last
    // Sunday of March to 01:00 UTC on the last Sunday of October.
    let (year, _, _) = civil_from_days(unix_secs / 86_400);
    let last_sunday = |month: u64, last_day: u64| {
        let day = days_from_civil(year, month, last_day);
        // 1970-01-01 was a Thursday (weekday 4, Sunday = 0).
        let back = (day + 4) % 7;
        (day - back) * 86_400 + 3600
    };
    let summer = (last_sunday(3, 31)..last_sunday(10, 31)).contains(&unix_secs);
    let (offset, zone) = if summer {
        (7200, "+0200")
    } else {
        (3600, "+0100")
    };
    let local = http_date(unix_secs + offset);
    // "Tue, 14 Nov 2023 23:13:20 GMT" with the zone swapped in.
    format!("{} {zone}", local.trim_end_matches(" GMT"))
}

/// (year, month, day) to days since 1970-01-01; Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_head(input: &str, expected: Result<(&str, &str, &str, bool), Garbage>) {
        let got = parse_head(input.as_bytes()).map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.query.clone(),
                r.keep_alive(),
            )
        });
        let expected = expected.map(|(m, p, q, k)| (m.to_owned(), p.to_owned(), q.to_owned(), k));
        assert_eq!(got, expected, "{input:?}");
    }

    #[test]
    fn heads() {
        check_head(
            "GET /OWA/ HTTP/1.1\r\nHost: x\r\n\r\n",
            Ok(("GET", "/owa/", "", true)),
        );
        check_head(
            "GET /owa/auth/logon.aspx?url=a%2fb&reason=0 HTTP/1.1\r\nConnection: close\r\n\r\n",
            Ok(("GET", "/owa/auth/logon.aspx", "url=a%2fb&reason=0", false)),
        );
        check_head("GET / HTTP/1.0\r\n\r\n", Ok(("GET", "/", "", false)));
        check_head(
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            Ok(("GET", "/", "", true)),
        );
        check_head(
            "\r\nGET https://mail.x.example/owa/?a HTTP/1.1\n\n",
            Ok(("GET", "/owa/", "a", true)),
        );
        check_head("GET / HTTP/2.0\r\n\r\n", Err(Garbage));
        check_head("GET  / HTTP/1.1\r\n\r\n", Err(Garbage));
        check_head("GET owa HTTP/1.1\r\n\r\n", Err(Garbage));
        check_head("\x16\x03\x01\x02\x00\r\n\r\n", Err(Garbage));
        check_head("GET / HTTP/1.1\r\nno colon here\r\n\r\n", Err(Garbage));
        check_head("GET / HTTP/1.1\r\n folded: x\r\n\r\n", Err(Garbage));
    }

    #[test]
    fn body_lengths() {
        let len = |extra: &str| {
            parse_head(format!("POST / HTTP/1.1\r\n{extra}\r\n").as_bytes())
                .unwrap()
                .body_len()
        };
        assert_eq!(len(""), Ok(0));
        assert_eq!(len("Content-Length: 12\r\n"), Ok(12));
        assert_eq!(
            len("Content-Length: 12\r\nContent-Length: 13\r\n"),
            Err(Garbage)
        );
        assert_eq!(len("Content-Length: -1\r\n"), Err(Garbage));
        assert_eq!(len("Transfer-Encoding: chunked\r\n"), Err(Garbage));
    }

    #[test]
    fn head_end_finds_either_terminator() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn smtp_dates_follow_german_time() {
        assert_eq!(smtp_date(1_700_000_000), "Tue, 14 Nov 2023 23:13:20 +0100");
        // 2024-07-01 12:00:00 UTC is summer time.
        assert_eq!(smtp_date(1_719_835_200), "Mon, 01 Jul 2024 14:00:00 +0200");
        // Summer time 2024 began at 2024-03-31 01:00 UTC.
        assert_eq!(smtp_date(1_711_846_799), "Sun, 31 Mar 2024 01:59:59 +0100");
        assert_eq!(smtp_date(1_711_846_800), "Sun, 31 Mar 2024 03:00:00 +0200");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    }

    #[test]
    fn serializer_fills_date_and_length_in_place() {
        let response = Response::new(302, "Found")
            .header("Content-Type", "text/html")
            .header("Date", "")
            .header("Content-Length", "")
            .header("X-Last", "1")
            .body("abc");
        let bytes = response.to_bytes(false, "D", true);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 302 Found\r\nContent-Type: text/html\r\nDate: D\r\nContent-Length: 3\r\n\
             X-Last: 1\r\nConnection: close\r\n\r\nabc"
        );
        let head = Response::new(200, "OK")
            .body("abc")
            .to_bytes(true, "D", false);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 3\r\n\r\n"
        );
    }
}
