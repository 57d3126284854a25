//! Turns a request into the response a persona's real server software would send.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::builds::Family;
use crate::http::{Request, Response};
use crate::pages::{self, LogonFlavour};
use crate::plan::{ExchangeSpec, HostPlan, Persona};

const EXPORTTOOL_PATH: &str =
    "/ecp/current/exporttool/microsoft.exchange.ediscovery.exporttool.application";

/// The answer to one well-formed request.
pub(crate) fn respond(host: &HostPlan, request: &Request, rng: &mut ChaCha8Rng) -> Response {
    let domain = host.truth.domain.as_str();
    match &host.persona {
        Persona::Exchange(spec) => Exchange {
            spec,
            domain,
            request_id: request_id(rng),
        }
        .respond(request),
        Persona::IisDefault => iis_default(request),
        Persona::Nginx => nginx(request),
        Persona::Apache => apache(request, domain),
    }
}

/// The answer to a head we could not parse; the connection is closed after it.
pub(crate) fn bad_request(host: &HostPlan) -> Response {
    let response = match host.persona {
        // On Windows, HTTP.sys rejects bad requests before IIS or Exchange see them.
        Persona::Exchange(_) | Persona::IisDefault => Response::new(400, "Bad Request")
            .header("Content-Type", "text/html; charset=us-ascii")
            .header("Server", "Microsoft-HTTPAPI/2.0")
            .body(pages::HTTPSYS_BAD_REQUEST),
        Persona::Nginx => Response::new(400, "Bad Request")
            .header("Server", "nginx/1.24.0")
            .header("Date", "")
            .header("Content-Type", "text/html")
            .body(pages::nginx_error("400 Bad Request")),
        Persona::Apache => Response::new(400, "Bad Request")
            .header("Date", "")
            .header("Server", "Apache/2.4.62 (Debian)")
            .header("Content-Length", "")
            .header("Content-Type", "text/html; charset=iso-8859-1")
            .body(pages::apache_error(
                "400 Bad Request",
                "Bad Request",
                "Your browser sent a request that this server could not understand.<br />",
                &format!("www.{}", host.truth.domain),
            )),
    };
    response.closing()
}

struct Exchange<'a> {
    spec: &'a ExchangeSpec,
    domain: &'a str,
    request_id: String,
}

impl Exchange<'_> {
    fn respond(&self, request: &Request) -> Response {
        let path = request.path.as_str();
        // Autodiscover answers every verb with the auth challenge; clients POST to it.
        if path == "/autodiscover/autodiscover.xml" {
            return self.autodiscover();
        }
        if request.method != "GET" && request.method != "HEAD" {
            return self.method_not_allowed();
        }
        match path {
            "/" => self.redirect(&format!("https://mail.{}/owa/", self.domain), false),
            "/owa" | "/owa/" => self.redirect(&self.logon_url("owa"), true),
            "/ecp" | "/ecp/" => self.redirect(&self.logon_url("ecp"), true),
            "/owa/auth/logon.aspx" => self.logon_page(&request.query),
            "/owa/auth/errorfe.aspx" => self.error_page(),
            EXPORTTOOL_PATH if self.spec.exporttool_manifest => self.exporttool(),
            _ => self.not_found(),
        }
    }

    fn iis_version(&self) -> &'static str {
        match self.spec.family {
            Family::Ex2010 => "Microsoft-IIS/7.5",
            Family::Ex2013 => "Microsoft-IIS/8.5",
            Family::Ex2016 | Family::Ex2019 | Family::Se => "Microsoft-IIS/10.0",
        }
    }

    /// The headers IIS and the Exchange modules add after the handler's own, in IIS order.
    fn finish(&self, mut response: Response, owa_version: bool, asp_net: bool) -> Response {
        response = response
            .header("Server", self.iis_version())
            .header("request-id", self.request_id.clone());
        if owa_version && self.spec.owa_version_header {
            response = response.header("X-OWA-Version", self.spec.build.clone());
        }
        if asp_net {
            response = response.header("X-AspNet-Version", "4.0.30319");
        }
        response = response.header("X-Powered-By", "ASP.NET");
        // 2010 has no front-end proxy role, hence no X-FEServer.
        if self.spec.family != Family::Ex2010 {
            response = response.header("X-FEServer", self.spec.fe_server.clone());
        }
        response.header("Date", "").header("Content-Length", "")
    }

    fn logon_url(&self, vdir: &str) -> String {
        // Exchange escapes the return URL with lower-case hex, unlike most software.
        format!(
            "https://mail.{d}/owa/auth/logon.aspx?url=https%3a%2f%2fmail.{d}%2f{vdir}%2f&reason=0",
            d = self.domain
        )
    }

    fn redirect(&self, location: &str, owa_version: bool) -> Response {
        let response = Response::new(302, "Found")
            .header("Cache-Control", "private")
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Location", location)
            .body(pages::object_moved(location));
        self.finish(response, owa_version, true)
    }

    fn logon_page(&self, query: &str) -> Response {
        let query = query.to_ascii_lowercase();
        let for_ecp = query.contains("%2fecp") || query.contains("/ecp");
        let vdir = if for_ecp { "ecp" } else { "owa" };
        let destination = format!("https://mail.{}/{vdir}/", self.domain);
        let body = match (self.spec.family, for_ecp) {
            (Family::Ex2010, _) => pages::logon_2010(&self.spec.build, &destination),
            (Family::Ex2013, false) => {
                pages::logon_15(&self.spec.cu, LogonFlavour::Owa2013, &destination)
            }
            (Family::Ex2013, true) => {
                pages::logon_15(&self.spec.cu, LogonFlavour::AdminCenter2013, &destination)
            }
            (_, false) => pages::logon_15(&self.spec.cu, LogonFlavour::Outlook, &destination),
            (_, true) => pages::logon_15(&self.spec.cu, LogonFlavour::AdminCenter, &destination),
        };
        let response = Response::new(200, "OK")
            .header("Cache-Control", "no-cache, no-store")
            .header("Pragma", "no-cache")
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Expires", "-1")
            .header("X-Frame-Options", "SAMEORIGIN")
            .body(body);
        // The 2019 CU9 capture has no X-OWA-Version on this 200.
        self.finish(response, false, true)
    }

    fn error_page(&self) -> Response {
        let (resources, product) = match self.spec.family {
            Family::Ex2010 => (
                format!("/owa/{}/themes/resources", self.spec.build),
                "Outlook Web App",
            ),
            Family::Ex2013 => (
                format!("/owa/auth/{}/themes/resources", self.spec.cu),
                "Outlook Web App",
            ),
            _ => (
                format!("/owa/auth/{}/themes/resources", self.spec.cu),
                "Outlook",
            ),
        };
        // The real page also prints X-OWA-Version here; it is left out so that a host whose
        // proxy strips the header really hides its 4-part build, as the truth says.
        let mut details = format!("request-id: {}<br>", self.request_id);
        if self.spec.family != Family::Ex2010 {
            details.push_str(&format!("X-FEServer: {}<br>", self.spec.fe_server));
        }
        let response = Response::new(200, "OK")
            .header("Cache-Control", "no-cache, no-store")
            .header("Pragma", "no-cache")
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Expires", "-1")
            .body(pages::error_fe(&resources, product, &details));
        self.finish(response, true, true)
    }

    fn autodiscover(&self) -> Response {
        let mut response = Response::new(401, "Unauthorized")
            .header("Cache-Control", "private")
            .header("Server", self.iis_version())
            .header("request-id", self.request_id.clone());
        if self.spec.owa_version_header {
            response = response.header("X-OWA-Version", self.spec.build.clone());
        }
        response = response
            .header("WWW-Authenticate", "Negotiate")
            .header("WWW-Authenticate", "NTLM")
            .header(
                "WWW-Authenticate",
                format!("Basic realm=\"mail.{}\"", self.domain),
            )
            .header("X-Powered-By", "ASP.NET");
        if self.spec.family != Family::Ex2010 {
            response = response.header("X-FEServer", self.spec.fe_server.clone());
        }
        response.header("Date", "").header("Content-Length", "")
    }

    fn exporttool(&self) -> Response {
        let manifest = pages::exporttool_manifest(
            &self.spec.build,
            manifest_size(&self.spec.build),
            &base64(&pseudo_bytes(&self.spec.build, 32)),
            &hex(&pseudo_bytes(&format!("issuer {}", self.spec.build), 20)),
        );
        let response = Response::new(200, "OK")
            .header("Content-Type", "application/x-ms-application")
            .header("Last-Modified", "Tue, 09 Sep 2025 18:24:12 GMT")
            .header("Accept-Ranges", "bytes")
            .header(
                "ETag",
                format!("\"{}:0\"", hex(&pseudo_bytes(&self.spec.build, 7))),
            )
            .body(manifest);
        self.finish(response, false, false)
    }

    fn not_found(&self) -> Response {
        let response = Response::new(404, "Not Found")
            .header("Content-Type", "text/html")
            .body(pages::iis_not_found());
        self.finish(response, false, false)
    }

    fn method_not_allowed(&self) -> Response {
        let response = Response::new(405, "Method Not Allowed")
            .header("Allow", "GET, HEAD, OPTIONS, TRACE")
            .header("Content-Type", "text/html")
            .body(pages::iis_method_not_allowed());
        self.finish(response, false, false)
    }
}

fn iis_default(request: &Request) -> Response {
    let response = if request.method != "GET" && request.method != "HEAD" {
        Response::new(405, "Method Not Allowed")
            .header("Allow", "GET, HEAD, OPTIONS, TRACE")
            .header("Content-Type", "text/html")
            .body(pages::iis_method_not_allowed())
    } else if matches!(request.path.as_str(), "/" | "/iisstart.htm") {
        Response::new(200, "OK")
            .header("Content-Type", "text/html")
            .header("Last-Modified", "Fri, 12 Jan 2024 09:41:18 GMT")
            .header("Accept-Ranges", "bytes")
            .header("ETag", "\"4c1f5c6a3b45da1:0\"")
            .body(pages::IIS_WELCOME)
    } else {
        Response::new(404, "Not Found")
            .header("Content-Type", "text/html")
            .body(pages::iis_not_found())
    };
    response
        .header("Server", "Microsoft-IIS/10.0")
        .header("X-Powered-By", "ASP.NET")
        .header("Date", "")
        .header("Content-Length", "")
}

fn nginx(request: &Request) -> Response {
    let (status, reason, body) = if request.method != "GET" && request.method != "HEAD" {
        (405, "Not Allowed", pages::nginx_error("405 Not Allowed"))
    } else if matches!(request.path.as_str(), "/" | "/index.html") {
        (200, "OK", pages::NGINX_WELCOME.to_owned())
    } else {
        (404, "Not Found", pages::nginx_error("404 Not Found"))
    };
    let mut response = Response::new(status, reason)
        .header("Server", "nginx/1.24.0")
        .header("Date", "")
        .header("Content-Type", "text/html")
        .header("Content-Length", "");
    if status == 200 {
        response = response
            .header("Last-Modified", "Wed, 06 Mar 2024 14:05:51 GMT")
            .header("ETag", "\"65e87877-267\"")
            .header("Accept-Ranges", "bytes");
    }
    response.body(body)
}

fn apache(request: &Request, domain: &str) -> Response {
    let host = format!("www.{domain}");
    let response = Response::new(200, "OK")
        .header("Date", "")
        .header("Server", "Apache/2.4.62 (Debian)");
    if request.method != "GET" && request.method != "HEAD" {
        let text = format!(
            "The requested method {} is not allowed for this URL.",
            request.method
        );
        Response {
            status: 405,
            reason: "Method Not Allowed",
            ..response
        }
        .header("Allow", "GET,POST,OPTIONS,HEAD")
        .header("Content-Length", "")
        .header("Content-Type", "text/html; charset=iso-8859-1")
        .body(pages::apache_error(
            "405 Method Not Allowed",
            "Method Not Allowed",
            &text,
            &host,
        ))
    } else if matches!(request.path.as_str(), "/" | "/index.html") {
        response
            .header("Last-Modified", "Mon, 18 Nov 2024 10:12:44 GMT")
            .header("ETag", "\"29cd-6272d0e9a8ec3\"")
            .header("Accept-Ranges", "bytes")
            .header("Content-Length", "")
            .header("Vary", "Accept-Encoding")
            .header("Content-Type", "text/html")
            .body(pages::APACHE_WELCOME)
    } else {
        Response {
            status: 404,
            reason: "Not Found",
            ..response
        }
        .header("Content-Length", "")
        .header("Content-Type", "text/html; charset=iso-8859-1")
        .body(pages::apache_error(
            "404 Not Found",
            "Not Found",
            "The requested URL was not found on this server.",
            &host,
        ))
    }
}

/// A version-4 GUID in the lower-case form Exchange uses for `request-id`.
fn request_id(rng: &mut ChaCha8Rng) -> String {
    let mut b: [u8; 16] = rng.gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{}-{}-{}-{}-{}",
        hex(&b[0..4]),
        hex(&b[4..6]),
        hex(&b[6..8]),
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

/// Stable filler bytes derived from a label, so a build always gets the same digest.
fn pseudo_bytes(label: &str, len: usize) -> Vec<u8> {
    use rand::SeedableRng;
    // FNV-1a folds the label into a seed; quality does not matter, stability does.
    let seed = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

fn manifest_size(build: &str) -> u32 {
    let b = pseudo_bytes(build, 2);
    17_000 + u32::from(u16::from_le_bytes([b[0], b[1]]) % 4_000)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::http::parse_head;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn request_ids_look_like_guids() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let id = request_id(&mut rng);
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
    }

    fn exchange_host(family: Family, header: bool, exporttool: bool) -> HostPlan {
        let (build, cu) = match family {
            Family::Ex2010 => ("14.3.513.0", "14.3.513"),
            _ => ("15.2.1748.39", "15.2.1748"),
        };
        let config = crate::TestbedConfig {
            hosts: 1,
            ..crate::TestbedConfig::default()
        };
        let mut host = crate::plan::plan(&config).unwrap().remove(0);
        host.persona = Persona::Exchange(ExchangeSpec {
            family,
            build: build.to_owned(),
            version_name: String::new(),
            cu: cu.to_owned(),
            fe_server: "EX19-01".to_owned(),
            owa_version_header: header,
            exporttool_manifest: exporttool,
        });
        host.truth.domain = "a.example".to_owned();
        host
    }

    fn get(host: &HostPlan, target: &str) -> (u16, String) {
        let request = parse_head(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let response = respond(host, &request, &mut rng);
        let bytes = response.to_bytes(false, "D", false);
        (response.status, String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn exchange_2019_routes() {
        let host = exchange_host(Family::Ex2019, true, false);
        let (status, text) = get(&host, "/OWA/");
        assert_eq!(status, 302);
        assert!(text.contains("X-OWA-Version: 15.2.1748.39\r\n"));
        assert!(text.contains(
            "Location: https://mail.a.example/owa/auth/logon.aspx?url=https%3a%2f%2fmail.a.example%2fowa%2f&reason=0\r\n"
        ));
        let (status, text) = get(&host, "/owa/auth/logon.aspx?url=x");
        assert_eq!(status, 200);
        assert!(!text.contains("X-OWA-Version"));
        assert!(text.contains("/owa/auth/15.2.1748/themes/resources/favicon.ico"));
        assert!(text.contains("<title>Outlook</title>"));
        let (_, text) = get(
            &host,
            "/owa/auth/logon.aspx?replaceCurrent=1&url=https://x/ecp",
        );
        assert!(text.contains("<title>Exchange Admin Center</title>"));
        let (status, text) = get(&host, "/autodiscover/autodiscover.xml");
        assert_eq!(status, 401);
        assert!(text.contains("WWW-Authenticate: Basic realm=\"mail.a.example\"\r\n"));
        assert_eq!(get(&host, EXPORTTOOL_PATH).0, 404);
        assert_eq!(get(&host, "/owa/auth/errorFE.aspx?httpCode=500").0, 200);
        assert_eq!(get(&host, "/nothing-here").0, 404);
    }

    #[test]
    fn exchange_2010_uses_four_part_folders_and_no_feserver() {
        let host = exchange_host(Family::Ex2010, false, false);
        let (_, text) = get(&host, "/owa/");
        assert!(!text.contains("X-OWA-Version"));
        assert!(!text.contains("X-FEServer"));
        assert!(text.contains("Server: Microsoft-IIS/7.5\r\n"));
        let (_, text) = get(&host, "/owa/auth/logon.aspx");
        assert!(text.contains("/owa/14.3.513.0/scripts/premium/flogon.js"));
        assert!(text.contains("<body class=\"owaLgnBdy\">"));
    }

    #[test]
    fn exporttool_carries_the_build() {
        let host = exchange_host(Family::Ex2019, false, true);
        let (status, text) = get(&host, EXPORTTOOL_PATH);
        assert_eq!(status, 200);
        assert!(text.contains("Content-Type: application/x-ms-application\r\n"));
        assert!(text.contains(
            "<assemblyIdentity name=\"microsoft.exchange.ediscovery.exporttool.application\" version=\"15.2.1748.39\" publicKeyToken=\"b1d1a6c45aa418ce\""
        ));
    }
}
