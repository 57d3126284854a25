//! Turns a request into the response a persona's real server software would send.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::builds::Family;
use crate::http::{Request, Response};
use crate::ntlm::{self, base64};
use crate::pages::{self, LogonFlavour};
use crate::plan::{ExchangeSpec, Front, HostPlan, KitStack, Persona, Portal, Quirk};

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
        .respond(request, rng),
        Persona::IisDefault => iis_default(request),
        // Hostile personas that get here answer like the nginx they sit behind.
        Persona::Nginx | Persona::Hostile(_) => {
            if let Persona::Hostile(crate::plan::Hostile::RedirectLoop) = host.persona {
                return redirect_loop(request, domain);
            }
            nginx(request)
        }
        Persona::Apache => apache(request, domain),
        Persona::Roundcube => roundcube(request, domain, rng),
        Persona::Zimbra => zimbra(request, rng),
        Persona::OwaPhishingCopy {
            resources,
            ex2010,
            stack,
            action,
        } => phishing_copy(request, domain, resources, *ex2010, *stack, action, rng),
        Persona::OwaHoneypot => honeypot(request),
        Persona::ExchangeOnlineLike {
            build,
            be_target,
            fe_server,
        } => exchange_online(request, build, be_target, fe_server, rng),
        Persona::SharePoint { version } => sharepoint(request, domain, version, rng),
    }
}

/// The plain-HTTP port of an Exchange host: IIS's HTTP Redirect to the same path on https.
pub(crate) fn http_redirect(host: &HostPlan, request: &Request) -> Response {
    let server = match &host.persona {
        Persona::Exchange(spec) => spec.iis_version(),
        _ => "Microsoft-IIS/10.0",
    };
    let mut location = format!("https://mail.{}{}", host.truth.domain, request.path);
    if !request.query.is_empty() {
        location.push('?');
        location.push_str(&request.query);
    }
    Response::new(301, "Moved Permanently")
        .header("Content-Type", "text/html; charset=UTF-8")
        .header("Location", location.clone())
        .header("Server", server)
        .header("X-Powered-By", "ASP.NET")
        .header("Date", "")
        .header("Content-Length", "")
        .body(pages::document_moved(&location))
}

/// The answer to a head we could not parse; the connection is closed after it.
pub(crate) fn bad_request(host: &HostPlan) -> Response {
    let response = match host.persona {
        // On Windows, HTTP.sys rejects bad requests before IIS or Exchange see them.
        Persona::Exchange(_)
        | Persona::IisDefault
        | Persona::SharePoint { .. }
        | Persona::ExchangeOnlineLike { .. } => Response::new(400, "Bad Request")
            .header("Content-Type", "text/html; charset=us-ascii")
            .header("Server", "Microsoft-HTTPAPI/2.0")
            .body(pages::HTTPSYS_BAD_REQUEST),
        Persona::Nginx
        | Persona::Zimbra
        | Persona::OwaPhishingCopy { .. }
        | Persona::OwaHoneypot
        | Persona::Hostile(_) => Response::new(400, "Bad Request")
            .header("Server", "nginx/1.24.0")
            .header("Date", "")
            .header("Content-Type", "text/html")
            .body(pages::nginx_error("400 Bad Request")),
        Persona::Apache | Persona::Roundcube => Response::new(400, "Bad Request")
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

/// Paths Outlook, phones and Exchange's other clients need, which pre-authentication
/// portals publish without their logon (they cannot answer a browser form).
fn for_exchange_clients(path: &str) -> bool {
    ["/autodiscover/", "/ews/", "/mapi/", "/rpc/", "/oab/"]
        .iter()
        .any(|p| path.starts_with(p))
        || path == "/mapi"
        || path.starts_with("/microsoft-server-activesync")
}

impl Exchange<'_> {
    /// Exchange's answer as its front lets it through.
    fn respond(&self, request: &Request, rng: &mut ChaCha8Rng) -> Response {
        let path = request.path.as_str();
        match self.spec.front {
            Front::Direct => self.respond_directly(request, rng),
            Front::Portal(_) if for_exchange_clients(path) => self.respond_directly(request, rng),
            Front::Portal(portal) => self.portal(portal, request, rng),
            // The ClickOnce files live in a static folder the block rules do not match.
            Front::OwaBlocked { .. }
                if path.starts_with("/ecp/") && path.contains("/exporttool/") =>
            {
                stripped(self.respond_directly(request, rng))
            }
            Front::OwaBlocked { status } => nginx_denied(status),
            Front::StrippedHeaders { ews_blocked: true }
                if for_exchange_clients(path)
                    && !path.starts_with("/microsoft-server-activesync") =>
            {
                nginx_denied(403)
            }
            Front::StrippedHeaders { .. } => stripped(self.respond_directly(request, rng)),
        }
    }

    /// What a portal answers for everything it does not pass through: its own logon.
    fn portal(&self, portal: Portal, request: &Request, rng: &mut ChaCha8Rng) -> Response {
        let path = request.path.as_str();
        match portal {
            Portal::BigIpApm => {
                let response = if path == "/my.policy" {
                    Response::new(200, "OK")
                        .header("Server", "BigIP")
                        .header("Connection", "Close")
                        .header("Content-Type", "text/html; charset=utf-8")
                        .header("Cache-Control", "no-cache, must-revalidate")
                        .header("Pragma", "no-cache")
                        .header("Content-Length", "")
                        .body(pages::APM_LOGON)
                } else {
                    // A new session for every request without one, as APM does.
                    let session = hex(&rng.gen::<[u8; 16]>());
                    let last = &session[24..];
                    Response::new(302, "Found")
                        .header("Server", "BigIP")
                        .header("Connection", "Close")
                        .header("Content-Length", "")
                        .header("Location", "/my.policy")
                        .header(
                            "Set-Cookie",
                            format!("LastMRH_Session={last};path=/;secure"),
                        )
                        .header("Set-Cookie", format!("MRHSession={session};path=/;secure"))
                        .header(
                            "Set-Cookie",
                            "MRHSHint=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/",
                        )
                };
                // APM's own answers are HTTP/1.0 without a date, and close the connection.
                response.http10().without_date().closing()
            }
            Portal::NetScaler => {
                if path == "/logon/logonpoint/tmindex.html" {
                    return Response::new(200, "OK")
                        .header("Content-Type", "text/html")
                        .header("Cache-Control", "no-cache, no-store, must-revalidate")
                        .header("X-Frame-Options", "SAMEORIGIN")
                        .header("Content-Length", "")
                        .body(pages::NETSCALER_LOGON);
                }
                let location = "/logon/LogonPoint/tmindex.html";
                Response::new(302, "Object Moved")
                    .header("Location", location)
                    .header("Connection", "Keep-Alive")
                    .header("Content-Length", "")
                    .header("Cache-Control", "no-cache")
                    .header("Pragma", "no-cache")
                    .header("Content-Type", "text/html")
                    .header(
                        "Set-Cookie",
                        format!(
                            "NSC_TMAS={};Secure;HttpOnly;Path=/",
                            hex(&rng.gen::<[u8; 24]>())
                        ),
                    )
                    .body(pages::netscaler_moved(location))
            }
            Portal::KempEsp => {
                if path == "/lm_auth_proxy" {
                    return Response::new(200, "OK")
                        .header("Cache-Control", "no-cache")
                        .header("Content-Type", "text/html; charset=utf-8")
                        .header("Content-Length", "")
                        .body(pages::KEMP_ESP_LOGON);
                }
                let location = "/lm_auth_proxy?LMLogon";
                Response::new(302, "Found")
                    .header("Location", location)
                    .header("Cache-Control", "no-cache")
                    .header("Content-Length", "")
                    .header("Content-Type", "text/html")
                    .body(pages::object_moved(location))
            }
            Portal::Sso => {
                let slug = self.domain.split('.').next().unwrap_or(self.domain);
                let state = hex(&rng.gen::<[u8; 16]>());
                let location = format!(
                    "https://sso.{d}/realms/{slug}/protocol/openid-connect/auth?approval_prompt=force\
                     &client_id=owa&redirect_uri=https%3A%2F%2Fmail.{d}%2Foauth2%2Fcallback\
                     &response_type=code&scope=openid+email+profile&state={state}%3A%2Fowa%2F",
                    d = self.domain
                );
                Response::new(302, "Found")
                    .header("Cache-Control", "no-cache, no-store, must-revalidate, max-age=0")
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Expires", "Thu, 01 Jan 1970 00:00:00 UTC")
                    .header("Location", location.clone())
                    .header(
                        "Set-Cookie",
                        format!(
                            "_oauth2_proxy_csrf={}; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Lax",
                            hex(&rng.gen::<[u8; 24]>())
                        ),
                    )
                    .header("Date", "")
                    .header("Content-Length", "")
                    .body(pages::go_found(&location))
            }
        }
    }

    fn respond_directly(&self, request: &Request, rng: &mut ChaCha8Rng) -> Response {
        let path = request.path.as_str();
        let old = matches!(self.spec.family, Family::Ex2007 | Family::Ex2010);
        // Autodiscover and the NTLM endpoints answer every verb with the auth challenge;
        // clients POST to them.
        if path == "/autodiscover/autodiscover.xml" {
            return self.autodiscover();
        }
        let mapi = path == "/mapi" || path.starts_with("/mapi/");
        if path == "/ews/exchange.asmx" || path == "/rpc/rpcproxy.dll" || (mapi && !old) {
            return self.ntlm_endpoint(request, path.starts_with("/rpc/"), rng);
        }
        if path == "/microsoft-server-activesync"
            || path == "/microsoft-server-activesync/default.eas"
        {
            return self.activesync();
        }
        if request.method != "GET" && request.method != "HEAD" {
            return self.method_not_allowed();
        }
        let ex2007 = self.spec.family == Family::Ex2007;
        match path {
            "/" => self.redirect(&format!("https://mail.{}/owa/", self.domain), false),
            "/owa" | "/owa/" => self.redirect(&self.logon_url("owa"), true),
            // 2007 has no ECP and no errorFE page.
            "/ecp" | "/ecp/" if !ex2007 => self.redirect(&self.logon_url("ecp"), true),
            "/owa/auth/logon.aspx" => self.logon_page(&request.query),
            "/owa/auth/errorfe.aspx" if !ex2007 => self.error_page(),
            EXPORTTOOL_PATH if self.spec.quirk == Quirk::XmlBombManifest => self.exporttool_bomb(),
            EXPORTTOOL_PATH if self.spec.exporttool_manifest => self.exporttool(),
            _ => self.not_found(),
        }
    }

    fn iis_version(&self) -> &'static str {
        self.spec.iis_version()
    }

    /// 2013+ front ends name themselves in `X-FEServer`; 2007 and 2010 have no such role.
    fn has_fe_server(&self) -> bool {
        !matches!(self.spec.family, Family::Ex2007 | Family::Ex2010)
    }

    /// EWS, MAPI and RPC: a 401 offering Negotiate and NTLM, or the NTLM challenge when
    /// the request carries a NEGOTIATE_MESSAGE.
    fn ntlm_endpoint(&self, request: &Request, basic: bool, rng: &mut ChaCha8Rng) -> Response {
        let mut response = Response::new(401, "Unauthorized")
            .header("Server", self.iis_version())
            .header("request-id", self.request_id.clone());
        let type1 = request
            .header("authorization")
            .and_then(ntlm::negotiate_message);
        match type1 {
            Some(scheme) => {
                let computer = self.spec.fe_server.as_str();
                let dns_computer = self.spec.internal_fqdn();
                let (major, minor) = self.spec.windows_version();
                let id = ntlm::ServerIdentity {
                    netbios_computer: computer,
                    netbios_domain: &self.spec.netbios_domain,
                    dns_computer: &dns_computer,
                    dns_domain: &self.spec.ad_domain,
                    dns_tree: &self.spec.ad_domain,
                    version: (major, minor, self.spec.windows_build),
                };
                let mut token = base64(&ntlm::challenge(&id, rng.gen()));
                if self.spec.quirk == Quirk::MalformedNtlm {
                    // Cut mid-message, and put a character outside the alphabet into it.
                    token.truncate(token.len() / 2 + 1);
                    token.insert(12, '*');
                }
                response =
                    response.header("WWW-Authenticate", format!("{} {token}", scheme.name()));
            }
            None => {
                response = response
                    .header("WWW-Authenticate", "Negotiate")
                    .header("WWW-Authenticate", "NTLM");
                if basic {
                    response = response.header(
                        "WWW-Authenticate",
                        format!("Basic realm=\"mail.{}\"", self.domain),
                    );
                }
            }
        }
        response = response.header("X-Powered-By", "ASP.NET");
        if self.has_fe_server() {
            response = response.header("X-FEServer", self.spec.fe_server.clone());
        }
        response.header("Date", "").header("Content-Length", "")
    }

    fn exporttool_bomb(&self) -> Response {
        let response = Response::new(200, "OK")
            .header("Content-Type", "application/x-ms-application")
            .header("Last-Modified", "Tue, 09 Sep 2025 18:24:12 GMT")
            .header("Accept-Ranges", "bytes")
            .body(pages::exporttool_bomb());
        self.finish(response, false, false)
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
        // 2007 and 2010 have no front-end proxy role, hence no X-FEServer.
        if self.has_fe_server() {
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
            (Family::Ex2007, _) => pages::logon_2007(&self.spec.build, &destination),
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
            Family::Ex2007 | Family::Ex2010 => (
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
        if self.has_fe_server() {
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
        if self.has_fe_server() {
            response = response.header("X-FEServer", self.spec.fe_server.clone());
        }
        response.header("Date", "").header("Content-Length", "")
    }

    /// ActiveSync without credentials: 401 with Basic (the notes §1.6), and the Exchange
    /// headers of any 401 (X-OWA-Version was captured on an EAS 401, §1.3).
    fn activesync(&self) -> Response {
        let mut response = Response::new(401, "Unauthorized")
            .header("Content-Type", "text/html")
            .header("Server", self.iis_version())
            .header("request-id", self.request_id.clone());
        if self.spec.owa_version_header {
            response = response.header("X-OWA-Version", self.spec.build.clone());
        }
        response = response
            .header(
                "WWW-Authenticate",
                format!("Basic realm=\"mail.{}\"", self.domain),
            )
            .header("X-Powered-By", "ASP.NET");
        if self.has_fe_server() {
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

/// Exchange's answer after a reverse proxy (nginx with `proxy_hide_header` and
/// `server_tokens off`) removed what names the software behind it.
fn stripped(mut response: Response) -> Response {
    const HIDDEN: [&str; 6] = [
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-owa-version",
        "x-feserver",
        "x-beserver",
    ];
    response
        .headers
        .retain(|(name, _)| !HIDDEN.iter().any(|h| name.eq_ignore_ascii_case(h)));
    response
        .headers
        .insert(0, ("Server".to_owned(), "nginx".to_owned()));
    response
}

/// nginx denying a location (`deny all;` or `return 404;`).
fn nginx_denied(status: u16) -> Response {
    let (reason, text) = match status {
        403 => ("Forbidden", "403 Forbidden"),
        _ => ("Not Found", "404 Not Found"),
    };
    Response::new(status, reason)
        .header("Server", "nginx")
        .header("Date", "")
        .header("Content-Type", "text/html")
        .header("Content-Length", "")
        .body(pages::nginx_error(text))
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

/// Every path answers 302 to itself.
fn redirect_loop(request: &Request, domain: &str) -> Response {
    let mut location = format!("https://www.{domain}{}", request.path);
    if !request.query.is_empty() {
        location.push('?');
        location.push_str(&request.query);
    }
    Response::new(302, "Moved Temporarily")
        .header("Server", "nginx/1.24.0")
        .header("Date", "")
        .header("Content-Type", "text/html")
        .header("Content-Length", "")
        .header("Location", location)
        .body(pages::nginx_error("302 Found"))
}

/// Roundcube on Debian's Apache: the login page at `/`, Apache's 404 elsewhere.
fn roundcube(request: &Request, domain: &str, rng: &mut ChaCha8Rng) -> Response {
    if !matches!(request.path.as_str(), "/" | "/index.php") {
        return apache(request, domain);
    }
    let token = hex(&rng.gen::<[u8; 16]>());
    let session = hex(&rng.gen::<[u8; 13]>());
    Response::new(200, "OK")
        .header("Date", "")
        .header("Server", "Apache/2.4.62 (Debian)")
        .header(
            "Set-Cookie",
            format!("roundcube_sessid={session}; path=/; secure; HttpOnly"),
        )
        .header("Expires", "Thu, 19 Nov 1981 08:52:00 GMT")
        .header(
            "Cache-Control",
            "private, no-cache, no-store, must-revalidate",
        )
        .header("X-Frame-Options", "sameorigin")
        .header("Content-Language", "en")
        .header("Vary", "Accept-Encoding")
        .header("Content-Length", "")
        .header("Content-Type", "text/html; charset=UTF-8")
        .body(pages::roundcube_login(&format!("www.{domain}"), &token))
}

/// Zimbra behind its own nginx proxy: the web client sign-in at `/`.
fn zimbra(request: &Request, rng: &mut ChaCha8Rng) -> Response {
    if request.path != "/" {
        return nginx(request);
    }
    let token = hex(&rng.gen::<[u8; 20]>());
    Response::new(200, "OK")
        .header("Server", "nginx")
        .header("Date", "")
        .header("Content-Type", "text/html;charset=utf-8")
        .header("Content-Length", "")
        .header("Set-Cookie", "ZM_TEST=true;Secure")
        .header("Set-Cookie", "ZM_LOGIN_CSRF=; Path=/; Secure; HttpOnly")
        .header("X-Frame-Options", "SAMEORIGIN")
        .header("X-Content-Type-Options", "nosniff")
        .header("X-XSS-Protection", "1; mode=block")
        .body(pages::ZIMBRA_LOGIN.replace("{{TOKEN}}", &token))
}

/// A phishing kit: the copied logon page wherever OWA would have one, its form rewritten
/// to post where the kit collects, served by the kit's own software with none of Exchange's
/// headers and nothing behind Exchange's other paths.
fn phishing_copy(
    request: &Request,
    domain: &str,
    resources: &str,
    ex2010: bool,
    stack: KitStack,
    action: &str,
    rng: &mut ChaCha8Rng,
) -> Response {
    let path = request.path.as_str();
    let page_paths = ["/owa/", "/owa/auth/logon.aspx"];
    let local_resource =
        resources.starts_with('/') && path.starts_with(&resources.to_ascii_lowercase());
    let page = || {
        let destination = format!("https://www.{domain}/owa/");
        let original = if ex2010 {
            let base = resources
                .strip_suffix("/themes/resources")
                .unwrap_or(resources);
            pages::logon_2010_at(base, &destination)
        } else {
            pages::logon_15_at(resources, LogonFlavour::Outlook, &destination)
        };
        pages::with_form_action(&original, action)
    };
    match stack {
        KitStack::Nginx => {
            if !page_paths.contains(&path) && path != "/" && path != "/owa" && !local_resource {
                return nginx(request);
            }
            let (content_type, body) = if local_resource {
                ("image/x-icon", vec![0u8; 64])
            } else {
                ("text/html; charset=utf-8", page().into_bytes())
            };
            Response::new(200, "OK")
                .header("Server", "nginx/1.24.0")
                .header("Date", "")
                .header("Content-Type", content_type)
                .header("Content-Length", "")
                .header("Connection", "keep-alive")
                .body(body)
        }
        KitStack::Php => {
            // The kit sits in an `owa/` folder with an `.htaccess` rewrite for logon.aspx;
            // the rest is the (compromised) host's own site.
            if path == "/owa" {
                let location = format!("https://www.{domain}/owa/");
                return Response::new(301, "Moved Permanently")
                    .header("Date", "")
                    .header("Server", "Apache/2.4.62 (Debian)")
                    .header("Location", location.clone())
                    .header("Content-Length", "")
                    .header("Content-Type", "text/html; charset=iso-8859-1")
                    .body(pages::apache_error(
                        "301 Moved Permanently",
                        "Moved Permanently",
                        &format!("The document has moved <a href=\"{location}\">here</a>."),
                        &format!("www.{domain}"),
                    ));
            }
            if local_resource {
                return Response::new(200, "OK")
                    .header("Date", "")
                    .header("Server", "Apache/2.4.62 (Debian)")
                    .header("Content-Length", "")
                    .header("Content-Type", "image/vnd.microsoft.icon")
                    .body(vec![0u8; 64]);
            }
            if !page_paths.contains(&path) {
                return apache(request, domain);
            }
            let session: String = hex(&rng.gen::<[u8; 13]>());
            Response::new(200, "OK")
                .header("Date", "")
                .header("Server", "Apache/2.4.62 (Debian)")
                .header("X-Powered-By", "PHP/8.2.20")
                .header("Set-Cookie", format!("PHPSESSID={session}; path=/"))
                .header("Expires", "Thu, 19 Nov 1981 08:52:00 GMT")
                .header("Cache-Control", "no-store, no-cache, must-revalidate")
                .header("Pragma", "no-cache")
                .header("Vary", "Accept-Encoding")
                .header("Content-Length", "")
                .header("Content-Type", "text/html; charset=UTF-8")
                .body(page())
        }
        KitStack::Express => {
            let tag = hex(&rng.gen::<[u8; 12]>());
            let etag = |len: usize| format!("W/\"{len:x}-{tag}\"");
            let response = if matches!(path, "/" | "/owa" | "/owa/") {
                // The kit imitates Exchange's redirect to its logon page.
                let location = "/owa/auth/logon.aspx?replaceCurrent=1&url=";
                Response::new(302, "Found")
                    .header("X-Powered-By", "Express")
                    .header("Location", location)
                    .header("Vary", "Accept")
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .header("Content-Length", "")
                    .body(pages::express_found(location))
            } else if path == "/owa/auth/logon.aspx" || local_resource {
                let (content_type, body) = if local_resource {
                    ("image/x-icon", vec![0u8; 64])
                } else {
                    ("text/html; charset=utf-8", page().into_bytes())
                };
                Response::new(200, "OK")
                    .header("X-Powered-By", "Express")
                    .header("Content-Type", content_type)
                    .header("Content-Length", "")
                    .header("ETag", etag(body.len()))
                    .body(body)
            } else {
                // Express's default 404, with the request's original-case path lost to the
                // test-bed's parser (it matches paths case-insensitively, like IIS).
                Response::new(404, "Not Found")
                    .header("X-Powered-By", "Express")
                    .header("Content-Security-Policy", "default-src 'none'")
                    .header("X-Content-Type-Options", "nosniff")
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Content-Length", "")
                    .body(pages::express_not_found(&request.method, path))
            };
            response
                .header("Date", "")
                .header("Connection", "keep-alive")
                .header("Keep-Alive", "timeout=5")
        }
    }
}

/// joda32/owa-honeypot (`owa_pot.py`) on Flask's development server: Werkzeug answers
/// what the app's decorated routes do not, and adds its own `Server` only where the app set
/// none.
fn honeypot(request: &Request) -> Response {
    const WERKZEUG: &str = "Werkzeug/2.0.3 Python/3.8.10";
    // The routes that answer with the app's Basic challenge (`requires_auth`).
    const STUBS: [&str; 12] = [
        "/aspnet_client/",
        "/autodiscover/",
        "/ecp/",
        "/ews/",
        "/exchweb/",
        "/microsoft-server-activesync/",
        "/oab/",
        "/powershell/",
        "/public/",
        "/rpc/",
        "/rpcwithcert/",
        "/unifiedmessaging/",
    ];
    // What `changeheader` sets on every decorated route.
    let faked = |response: Response| {
        response
            .header("Server", "Microsoft-IIS/7.5")
            .header("X-Powered-By", "ASP.NET")
            .header("Date", "")
    };
    let path = request.path.as_str();
    let location = "/owa/auth/logon.aspx?replaceCurrent=1&url=";
    match path {
        "/" | "/exchange/" | "/webmail/" | "/exchange" | "/webmail" | "/owa/auth.owa" => {
            // A GET of the form's target sends the browser back to the page (`reason=3`).
            let location = if path == "/owa/auth.owa" {
                "/owa/auth/logon.aspx?replaceCurrent=1&reason=3&url="
            } else {
                location
            };
            faked(
                Response::new(302, "FOUND")
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Content-Length", "")
                    .header("Location", location)
                    .body(pages::werkzeug_redirect(location)),
            )
        }
        "/owa/auth/logon.aspx" => faked(
            Response::new(200, "OK")
                .header("Content-Type", "text/html; charset=utf-8")
                .header("Content-Length", "")
                .body(pages::logon_15(
                    "15.1.1466",
                    LogonFlavour::Outlook,
                    "https://mail/owa/",
                )),
        ),
        p if p.starts_with("/owa/auth/15.1.1466/themes/resources/") => faked(
            Response::new(200, "OK")
                .header("Content-Type", "image/vnd.microsoft.icon")
                .header("Content-Length", "")
                .body(vec![0u8; 64]),
        ),
        p if STUBS.contains(&p) => faked(
            Response::new(401, "UNAUTHORIZED")
                .header("Content-Type", "text/html; charset=utf-8")
                .header("Content-Length", "")
                .header("WWW-Authenticate", "Basic realm=\"Login Required\"")
                .body(pages::HONEYPOT_401),
        ),
        _ => Response::new(500, "INTERNAL SERVER ERROR")
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Content-Length", "")
            .header("Server", WERKZEUG)
            .header("Date", "")
            .body(pages::WERKZEUG_500),
    }
}

/// Exchange Online's public face: 15.20 builds, `*.prod.outlook.com` back ends and OAuth
/// Bearer challenges instead of NTLM.
fn exchange_online(
    request: &Request,
    build: &str,
    be_target: &str,
    fe_server: &str,
    rng: &mut ChaCha8Rng,
) -> Response {
    let request_id = request_id(rng);
    let path = request.path.as_str();
    let protected = path == "/autodiscover/autodiscover.xml"
        || path == "/ews/exchange.asmx"
        || path.starts_with("/mapi")
        || path == "/rpc/rpcproxy.dll"
        || path == "/owa/service.svc";
    let mut response = if protected {
        Response::new(401, "Unauthorized")
            .header("Content-Type", "text/html")
            .header("Server", "Microsoft-IIS/10.0")
            .header("request-id", request_id.clone())
            .header("X-CalculatedBETarget", be_target)
            .header("X-BackEndHttpStatus", "401")
            .header(
                "WWW-Authenticate",
                "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", \
                 trusted_issuers=\"00000001-0000-0000-c000-000000000000@*\", \
                 token_types=\"app_asserted_user_v1 service_asserted_app_v1\", \
                 authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", \
                 error=\"invalid_token\"",
            )
            .header("WWW-Authenticate", "Basic Realm=\"\"")
    } else if matches!(path, "/" | "/owa" | "/owa/" | "/owa/auth/logon.aspx") {
        let location = format!(
            "https://login.microsoftonline.com/common/oauth2/authorize?client_id=00000002-0000-0ff1-ce00-000000000000\
             &redirect_uri=https%3a%2f%2foutlook.office365.com%2fowa%2f&resource=00000002-0000-0ff1-ce00-000000000000\
             &response_mode=form_post&response_type=code+id_token&scope=openid&msafed=1&msaredir=1\
             &client-request-id={request_id}&protectedtoken=true"
        );
        Response::new(302, "Found")
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Location", location.clone())
            .header("Server", "Microsoft-IIS/10.0")
            .header("request-id", request_id.clone())
            .header("X-CalculatedBETarget", be_target)
            .body(pages::object_moved(&location))
    } else {
        Response::new(404, "Not Found")
            .header("Server", "Microsoft-IIS/10.0")
            .header("request-id", request_id.clone())
    };
    response = response
        .header("X-OWA-Version", build)
        .header("X-FEServer", fe_server)
        .header(
            "X-BEServer",
            be_target.split('.').next().unwrap_or(be_target),
        )
        .header("X-Powered-By", "ASP.NET")
        .header(
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains; preload",
        )
        .header("Date", "")
        .header("Content-Length", "");
    response
}

/// SharePoint on IIS: everything asks for Windows authentication.
/// SharePoint on IIS with Windows authentication: a 401 offering NTLM, and a real NTLM
/// challenge (with the farm's AD names) to a NEGOTIATE_MESSAGE — an NTLM leak that is not
/// Exchange, so a scanner must not take NTLM alone for Exchange.
fn sharepoint(request: &Request, domain: &str, version: &str, rng: &mut ChaCha8Rng) -> Response {
    let guid = request_id(rng);
    let challenge = request
        .header("authorization")
        .and_then(ntlm::negotiate_message)
        .map(|scheme| {
            let slug = domain.split('.').next().unwrap_or("corp");
            let netbios_domain: String = slug
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(15)
                .collect::<String>()
                .to_ascii_uppercase();
            let ad_domain = format!("{slug}.local");
            let dns_computer = format!("sp01.{ad_domain}");
            let id = ntlm::ServerIdentity {
                netbios_computer: "SP01",
                netbios_domain: &netbios_domain,
                dns_computer: &dns_computer,
                dns_domain: &ad_domain,
                dns_tree: &ad_domain,
                version: (10, 0, 17763),
            };
            format!(
                "{} {}",
                scheme.name(),
                base64(&ntlm::challenge(&id, rng.gen()))
            )
        });
    let mut response = Response::new(401, "Unauthorized")
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Server", "Microsoft-IIS/10.0")
        .header("SPRequestGuid", guid.clone())
        .header("request-id", guid)
        .header("X-FRAME-OPTIONS", "SAMEORIGIN")
        .header("SPRequestDuration", "3")
        .header("SPIisLatency", "0");
    response = match challenge {
        Some(token) => response.header("WWW-Authenticate", token),
        None => response
            .header("WWW-Authenticate", "NTLM")
            .header("WWW-Authenticate", "Negotiate"),
    };
    response
        .header("X-Powered-By", "ASP.NET")
        .header("MicrosoftSharePointTeamServices", version)
        .header("X-Content-Type-Options", "nosniff")
        .header("X-MS-InvokeApp", "1; RequireReadOnly")
        .header("Date", "")
        .header("Content-Length", "")
        .body("401 UNAUTHORIZED")
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

    fn any_host(persona: Persona) -> HostPlan {
        let config = crate::TestbedConfig {
            hosts: 1,
            ..crate::TestbedConfig::default()
        };
        let mut host = crate::plan::plan(&config, &crate::FleetOptions::default())
            .unwrap()
            .remove(0);
        host.persona = persona;
        host.truth.domain = "a.example".to_owned();
        host
    }

    fn exchange_host(family: Family, header: bool, exporttool: bool) -> HostPlan {
        exchange_quirk(family, header, exporttool, Quirk::None)
    }

    fn exchange_quirk(family: Family, header: bool, exporttool: bool, quirk: Quirk) -> HostPlan {
        exchange_behind(family, header, exporttool, quirk, Front::Direct)
    }

    fn exchange_behind(
        family: Family,
        header: bool,
        exporttool: bool,
        quirk: Quirk,
        front: Front,
    ) -> HostPlan {
        let (build, cu, windows) = match family {
            Family::Ex2007 => ("8.3.485.1", "8.3.485", 6002),
            Family::Ex2010 => ("14.3.513.0", "14.3.513", 7601),
            _ => ("15.2.1748.39", "15.2.1748", 17763),
        };
        any_host(Persona::Exchange(ExchangeSpec {
            family,
            build: build.to_owned(),
            version_name: String::new(),
            cu: cu.to_owned(),
            fe_server: "EX19-01".to_owned(),
            owa_version_header: header,
            exporttool_manifest: exporttool,
            windows_build: windows,
            netbios_domain: "A".to_owned(),
            ad_domain: "a.local".to_owned(),
            quirk,
            front,
        }))
    }

    fn get(host: &HostPlan, target: &str) -> (u16, String) {
        get_with(host, target, "")
    }

    /// GET with extra header lines (each ending in CRLF).
    fn get_with(host: &HostPlan, target: &str, headers: &str) -> (u16, String) {
        let request =
            parse_head(format!("GET {target} HTTP/1.1\r\n{headers}\r\n").as_bytes()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let response = respond(host, &request, &mut rng);
        let bytes = response.to_bytes(false, "D", false);
        (response.status, String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn sharepoint_answers_ntlm_with_a_challenge() {
        let host = any_host(Persona::SharePoint {
            version: "16.0.0.5500".to_owned(),
        });
        let (status, text) = get(&host, "/");
        assert_eq!(status, 401);
        assert!(text.contains("WWW-Authenticate: NTLM\r\n"));
        let type1 =
            "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==\r\n";
        let (status, text) = get_with(&host, "/", type1);
        assert_eq!(status, 401);
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("WWW-Authenticate: NTLM "))
            .expect("a challenge");
        let message = crate::ntlm::base64_decode(token).unwrap();
        assert_eq!(&message[..12], b"NTLMSSP\0\x02\0\0\0");
        assert!(text.contains("MicrosoftSharePointTeamServices: 16.0.0.5500"));
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

    const NMAP_TYPE1: &str = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==";

    /// The base64 token of the `WWW-Authenticate: <scheme> <token>` header, if any.
    fn challenge_token<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("WWW-Authenticate: {scheme} ")))
    }

    #[test]
    fn ntlm_endpoints_challenge_with_the_hosts_identity() {
        let host = exchange_host(Family::Ex2019, true, false);
        for path in [
            "/EWS/Exchange.asmx",
            "/mapi/",
            "/mapi/emsmdb/",
            "/rpc/rpcproxy.dll",
        ] {
            let (status, text) = get(&host, path);
            assert_eq!(status, 401, "{path}");
            assert!(text.contains("WWW-Authenticate: Negotiate\r\n"), "{path}");
            assert!(text.contains("WWW-Authenticate: NTLM\r\n"), "{path}");
            let (status, text) = get_with(
                &host,
                path,
                &format!("Authorization: NTLM {NMAP_TYPE1}\r\n"),
            );
            assert_eq!(status, 401);
            let token = challenge_token(&text, "NTLM").expect("challenge");
            let msg = ntlm::base64_decode(token).unwrap();
            assert_eq!(&msg[..12], b"NTLMSSP\0\x02\0\0\0");
            assert_eq!(&msg[48..52], &[10, 0, 0x63, 0x45]);
            let (_, text) = get_with(
                &host,
                path,
                &format!("Authorization: Negotiate {NMAP_TYPE1}\r\n"),
            );
            assert!(challenge_token(&text, "Negotiate").is_some());
        }
        let (_, text) = get(&host, "/rpc/rpcproxy.dll");
        assert!(text.contains("WWW-Authenticate: Basic realm=\"mail.a.example\"\r\n"));
        // MAPI over HTTP does not exist before 2013.
        let old = exchange_host(Family::Ex2010, false, false);
        assert_eq!(get(&old, "/mapi/").0, 404);
        assert_eq!(get(&old, "/EWS/Exchange.asmx").0, 401);
    }

    #[test]
    fn malformed_ntlm_garbles_the_challenge() {
        let host = exchange_quirk(Family::Ex2016, true, false, Quirk::MalformedNtlm);
        let (status, text) = get_with(
            &host,
            "/EWS/Exchange.asmx",
            &format!("Authorization: NTLM {NMAP_TYPE1}\r\n"),
        );
        assert_eq!(status, 401);
        let token = challenge_token(&text, "NTLM").unwrap();
        assert!(ntlm::base64_decode(token).is_none(), "{token}");
        // Everything else is ordinary Exchange.
        assert_eq!(get(&host, "/owa/").0, 302);
    }

    #[test]
    fn xml_bomb_manifest_hides_the_build() {
        let host = exchange_quirk(Family::Ex2019, true, false, Quirk::XmlBombManifest);
        let (status, text) = get(&host, EXPORTTOOL_PATH);
        assert_eq!(status, 200);
        assert!(text.contains("<!ENTITY lol9 \"&lol8;&lol8;"));
        assert!(text.contains("version=\"&lol9;\""));
        assert!(!text.contains("15.2.1748"));
    }

    #[test]
    fn exchange_2007_logon_page() {
        let host = exchange_host(Family::Ex2007, false, false);
        let (_, text) = get(&host, "/owa/auth/logon.aspx?url=x");
        assert!(text.contains("<title>Microsoft Exchange - Outlook Web Access</title>"));
        assert!(text.contains("<body class=\"owaLgnBdy\">"));
        assert!(text.contains("/owa/8.3.485.1/themes/base/logon.css"));
        assert!(text.contains("Server: Microsoft-IIS/7.0\r\n"));
        assert!(!text.contains("X-FEServer"));
        assert_eq!(get(&host, "/ecp/").0, 404);
        assert_eq!(get(&host, "/owa/auth/errorFE.aspx").0, 404);
    }

    #[test]
    fn lookalikes_are_not_exchange_but_look_close() {
        let phish = any_host(Persona::OwaPhishingCopy {
            resources: "https://webmail.victim-7.example/owa/auth/15.1.2507/themes/resources"
                .to_owned(),
            ex2010: false,
            stack: KitStack::Nginx,
            action: "/owa/auth.owa".to_owned(),
        });
        let (status, text) = get(&phish, "/owa/auth/logon.aspx");
        assert_eq!(status, 200);
        assert!(text.contains(
            "href=\"https://webmail.victim-7.example/owa/auth/15.1.2507/themes/resources/favicon.ico\""
        ));
        assert!(!text.contains("\"/owa/auth/15.1.2507"));
        assert!(text.contains("Server: nginx/1.24.0\r\n"));

        let exo = any_host(Persona::ExchangeOnlineLike {
            build: "15.20.8835.25".to_owned(),
            be_target: "XX1PR01MB0001.eurprd01.prod.outlook.com".to_owned(),
            fe_server: "FR0P281CA0001".to_owned(),
        });
        let (status, text) = get(&exo, "/autodiscover/autodiscover.xml");
        assert_eq!(status, 401);
        assert!(text.contains("X-OWA-Version: 15.20.8835.25\r\n"));
        assert!(text.contains("X-CalculatedBETarget: XX1PR01MB0001.eurprd01.prod.outlook.com\r\n"));
        assert!(text.contains("WWW-Authenticate: Bearer client_id="));
        assert!(!text.contains("NTLM"));

        let sp = any_host(Persona::SharePoint {
            version: "16.0.0.10417".to_owned(),
        });
        let (status, text) = get(&sp, "/");
        assert_eq!(status, 401);
        assert!(text.contains("MicrosoftSharePointTeamServices: 16.0.0.10417\r\n"));
        assert!(text.contains("WWW-Authenticate: NTLM\r\n"));

        let (status, text) = get(&any_host(Persona::Roundcube), "/");
        assert_eq!(status, 200);
        assert!(text.contains("<title>Roundcube Webmail :: Welcome to Roundcube Webmail</title>"));
        assert!(text.contains("Set-Cookie: roundcube_sessid="));
        let (status, text) = get(&any_host(Persona::Zimbra), "/");
        assert_eq!(status, 200);
        assert!(text.contains("<title>Zimbra Web Client Sign In</title>"));
    }

    fn header_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    #[test]
    fn portals_answer_owa_and_pass_exchange_clients_through() {
        for portal in [
            Portal::BigIpApm,
            Portal::NetScaler,
            Portal::KempEsp,
            Portal::Sso,
        ] {
            let host = exchange_behind(
                Family::Ex2019,
                true,
                false,
                Quirk::None,
                Front::Portal(portal),
            );
            for path in ["/owa/", "/owa/auth/logon.aspx", "/ecp/", EXPORTTOOL_PATH] {
                let (status, text) = get(&host, path);
                assert_eq!(status, 302, "{portal:?} {path}");
                assert!(!text.contains("X-OWA-Version") && !text.contains("X-FEServer"));
                assert!(!header_of(&text, "Location")
                    .unwrap()
                    .contains("/owa/auth/logon.aspx"));
            }
            for path in [
                "/autodiscover/autodiscover.xml",
                "/EWS/Exchange.asmx",
                "/mapi/",
                "/Microsoft-Server-ActiveSync",
            ] {
                let (status, text) = get(&host, path);
                assert_eq!(status, 401, "{portal:?} {path}");
                assert_eq!(header_of(&text, "X-FEServer"), Some("EX19-01"), "{path}");
                assert_eq!(header_of(&text, "Server"), Some("Microsoft-IIS/10.0"));
            }
            let (_, text) = get(&host, "/autodiscover/autodiscover.xml");
            assert_eq!(header_of(&text, "X-OWA-Version"), Some("15.2.1748.39"));
            let (_, text) = get_with(
                &host,
                "/EWS/Exchange.asmx",
                &format!("Authorization: NTLM {NMAP_TYPE1}\r\n"),
            );
            assert!(challenge_token(&text, "NTLM").is_some());
        }
        // BIG-IP APM answers in HTTP/1.0, without a date, and closes.
        let apm = exchange_behind(
            Family::Ex2016,
            true,
            false,
            Quirk::None,
            Front::Portal(Portal::BigIpApm),
        );
        let (_, text) = get(&apm, "/owa/");
        assert!(text.starts_with("HTTP/1.0 302 Found\r\nServer: BigIP\r\nConnection: Close\r\n"));
        assert!(text.contains("Location: /my.policy\r\n") && !text.contains("Date:"));
        assert!(text.contains("Set-Cookie: MRHSession="));
        let (status, text) = get(&apm, "/my.policy");
        assert_eq!(status, 200);
        assert!(text.contains("action=\"/my.policy\""));
        // The identity provider lives on another host.
        let sso = exchange_behind(
            Family::Ex2016,
            true,
            false,
            Quirk::None,
            Front::Portal(Portal::Sso),
        );
        let (_, text) = get(&sso, "/owa/");
        assert!(header_of(&text, "Location")
            .unwrap()
            .starts_with("https://sso.a.example/realms/a/"));
    }

    #[test]
    fn an_owa_blocking_proxy_lets_only_the_export_tool_through() {
        for status in [403, 404] {
            let host = exchange_behind(
                Family::Ex2019,
                false,
                true,
                Quirk::None,
                Front::OwaBlocked { status },
            );
            for path in [
                "/",
                "/owa/",
                "/owa/auth/logon.aspx",
                "/ecp/",
                "/EWS/Exchange.asmx",
                "/autodiscover/autodiscover.xml",
                "/mapi/",
            ] {
                let (got, text) = get(&host, path);
                assert_eq!(got, status, "{path}");
                assert_eq!(header_of(&text, "Server"), Some("nginx"));
            }
            let (got, text) = get(&host, EXPORTTOOL_PATH);
            assert_eq!(got, 200);
            assert!(text.contains("version=\"15.2.1748.39\""));
            for name in ["X-FEServer", "X-OWA-Version", "X-Powered-By", "request-id"] {
                assert!(
                    header_of(&text, name).is_none() || name == "request-id",
                    "{name}"
                );
            }
            assert_eq!(header_of(&text, "Server"), Some("nginx"));
        }
    }

    #[test]
    fn a_stripping_proxy_keeps_exchange_but_not_its_names() {
        let host = exchange_behind(
            Family::Ex2016,
            false,
            false,
            Quirk::None,
            Front::StrippedHeaders { ews_blocked: false },
        );
        let (status, text) = get(&host, "/owa/");
        assert_eq!(status, 302);
        assert!(header_of(&text, "Location")
            .unwrap()
            .contains("/owa/auth/logon.aspx?url="));
        let (status, text) = get(&host, "/owa/auth/logon.aspx");
        assert_eq!(status, 200);
        assert!(text.contains("<form action=\"/owa/auth.owa\""));
        assert!(text.contains("/owa/auth/15.2.1748/themes/resources/"));
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nServer: nginx\r\n"));
        for name in [
            "X-FEServer",
            "X-OWA-Version",
            "X-Powered-By",
            "X-AspNet-Version",
        ] {
            assert!(header_of(&text, name).is_none(), "{name}");
        }
        let (_, text) = get_with(
            &host,
            "/EWS/Exchange.asmx",
            &format!("Authorization: NTLM {NMAP_TYPE1}\r\n"),
        );
        assert!(challenge_token(&text, "NTLM").is_some());
        let blocked = exchange_behind(
            Family::Ex2016,
            false,
            false,
            Quirk::None,
            Front::StrippedHeaders { ews_blocked: true },
        );
        assert_eq!(get(&blocked, "/EWS/Exchange.asmx").0, 403);
        assert_eq!(get(&blocked, "/autodiscover/autodiscover.xml").0, 403);
        assert_eq!(get(&blocked, "/owa/auth/logon.aspx").0, 200);
    }

    fn kit(stack: KitStack, resources: &str, action: &str) -> HostPlan {
        any_host(Persona::OwaPhishingCopy {
            resources: resources.to_owned(),
            ex2010: false,
            stack,
            action: action.to_owned(),
        })
    }

    #[test]
    fn phishing_kits_post_elsewhere_and_show_their_stack() {
        let local = "/owa/auth/15.1.2507/themes/resources";
        let php = kit(KitStack::Php, local, "post.php");
        let (status, text) = get(&php, "/owa/auth/logon.aspx");
        assert_eq!(status, 200);
        assert!(text.contains("<form action=\"post.php\" method=\"POST\" name=\"logonForm\""));
        assert!(text.contains("href=\"/owa/auth/15.1.2507/themes/resources/favicon.ico\""));
        assert_eq!(header_of(&text, "X-Powered-By"), Some("PHP/8.2.20"));
        assert_eq!(header_of(&text, "Server"), Some("Apache/2.4.62 (Debian)"));
        assert_eq!(get(&php, "/owa/").0, 200);
        assert_eq!(
            get(&php, "/owa/auth/15.1.2507/themes/resources/favicon.ico").0,
            200
        );
        for path in [
            "/autodiscover/autodiscover.xml",
            "/EWS/Exchange.asmx",
            EXPORTTOOL_PATH,
        ] {
            assert_eq!(get(&php, path).0, 404, "{path}");
        }

        let express = kit(KitStack::Express, local, "/owa/auth.owa");
        let (status, text) = get(&express, "/owa/");
        assert_eq!(status, 302);
        assert_eq!(
            header_of(&text, "Location"),
            Some("/owa/auth/logon.aspx?replaceCurrent=1&url=")
        );
        assert_eq!(header_of(&text, "X-Powered-By"), Some("Express"));
        assert!(header_of(&text, "Server").is_none());
        let (_, text) = get(&express, "/owa/auth/logon.aspx");
        assert!(text.contains("<form action=\"/owa/auth.owa\""));
        assert!(header_of(&text, "ETag").unwrap().starts_with("W/\""));
        let (status, text) = get(&express, "/EWS/Exchange.asmx");
        assert_eq!(status, 404);
        assert!(text.contains("<pre>Cannot GET /ews/exchange.asmx</pre>"));

        let nginx = kit(KitStack::Nginx, local, "https://cdn-1.example/next.php");
        let (_, text) = get(&nginx, "/owa/auth/logon.aspx");
        assert!(text.contains("<form action=\"https://cdn-1.example/next.php\""));
        assert_eq!(header_of(&text, "Server"), Some("nginx/1.24.0"));
        assert_eq!(get(&nginx, "/mapi/").0, 404);
    }

    #[test]
    fn the_honeypot_plays_joda32s_flask_app() {
        let host = any_host(Persona::OwaHoneypot);
        let (status, text) = get(&host, "/owa/auth/logon.aspx");
        assert_eq!(status, 200);
        assert!(text.contains("/owa/auth/15.1.1466/themes/resources/favicon.ico"));
        assert!(text.contains("<form action=\"/owa/auth.owa\""));
        assert_eq!(header_of(&text, "Server"), Some("Microsoft-IIS/7.5"));
        let (status, text) = get(&host, "/");
        assert_eq!(status, 302);
        assert_eq!(
            header_of(&text, "Location"),
            Some("/owa/auth/logon.aspx?replaceCurrent=1&url=")
        );
        let (status, text) = get(&host, "/EWS/");
        assert_eq!(status, 401);
        assert_eq!(
            header_of(&text, "WWW-Authenticate"),
            Some("Basic realm=\"Login Required\"")
        );
        // Paths the app has no route for meet its missing 404 template: Werkzeug's 500.
        for path in [
            "/owa/",
            "/EWS/Exchange.asmx",
            "/autodiscover/autodiscover.xml",
            EXPORTTOOL_PATH,
        ] {
            let (status, text) = get(&host, path);
            assert_eq!(status, 500, "{path}");
            assert_eq!(
                header_of(&text, "Server"),
                Some("Werkzeug/2.0.3 Python/3.8.10")
            );
        }
    }

    #[test]
    fn exchange_answers_activesync_with_basic() {
        let host = exchange_host(Family::Ex2016, true, false);
        let (status, text) = get(&host, "/Microsoft-Server-ActiveSync");
        assert_eq!(status, 401);
        assert_eq!(
            header_of(&text, "WWW-Authenticate"),
            Some("Basic realm=\"mail.a.example\"")
        );
        assert_eq!(header_of(&text, "X-OWA-Version"), Some("15.2.1748.39"));
    }

    #[test]
    fn redirect_loop_points_at_itself() {
        let host = any_host(Persona::Hostile(crate::plan::Hostile::RedirectLoop));
        let (status, text) = get(&host, "/owa/?a=1");
        assert_eq!(status, 302);
        assert!(text.contains("Location: https://www.a.example/owa/?a=1\r\n"));
    }

    #[test]
    fn plain_http_redirects_to_https() {
        let host = exchange_host(Family::Ex2016, true, false);
        let request = parse_head(b"GET /owa/?x=1 HTTP/1.1\r\n\r\n").unwrap();
        let response = http_redirect(&host, &request);
        assert_eq!(response.status, 301);
        let text = String::from_utf8(response.to_bytes(false, "D", false)).unwrap();
        assert!(text.contains("Location: https://mail.a.example/owa/?x=1\r\n"));
    }
}
