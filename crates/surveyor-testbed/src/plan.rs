//! Plans a fleet from a seed: organisations, addresses, personas, builds and names, without
//! binding anything.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::builds::{BuildTable, Family};
use crate::dns;
use crate::names::{self, Organisation};
use crate::{FamilyWeights, FleetOptions, TestbedConfig, TestbedError, TruthExchange, TruthHost};

/// Share of Exchange hosts whose `X-OWA-Version` header survives any reverse proxy.
const OWA_HEADER_PROBABILITY: f64 = 0.8;
/// Share of 2013+ hosts that still serve the eDiscovery export tool manifest.
const EXPORTTOOL_PROBABILITY: f64 = 0.7;
/// Shares of (non-hostile) Exchange hosts behind a front that changes what a scanner sees:
/// a pre-authentication portal, a proxy that blocks all but the export tool, a proxy that
/// strips Exchange's headers. The rest answer directly.
const PORTAL_PROBABILITY: f64 = 0.03;
const OWA_BLOCKED_PROBABILITY: f64 = 0.02;
const STRIPPED_HEADERS_PROBABILITY: f64 = 0.03;
/// Chance that the next address belongs to the same organisation as the previous one, as
/// long as that organisation has fewer than [`MAX_HOSTS_PER_ORG`] hosts.
const SAME_ORG_PROBABILITY: f64 = 0.3;
const MAX_HOSTS_PER_ORG: usize = 3;

/// Non-Exchange personas and their weights, in percent of all non-hostile hosts when the
/// non-Exchange share is the default 25 %.
///
/// The honeypot took one point of nginx's and sits right after it, so every other roll still
/// lands on the persona it landed on before the honeypot existed.
const OTHER_WEIGHTS: [(Other, u32); 9] = [
    (Other::IisDefault, 5),
    (Other::Nginx, 4),
    (Other::OwaHoneypot, 1),
    (Other::Apache, 4),
    (Other::Roundcube, 3),
    (Other::Zimbra, 2),
    (Other::OwaPhishingCopy, 2),
    (Other::ExchangeOnlineLike, 2),
    (Other::SharePoint, 2),
];

/// Everything a host needs to answer requests; the truth is the part the scanner should find.
#[derive(Debug, Clone)]
pub(crate) struct HostPlan {
    pub(crate) truth: TruthHost,
    /// Index of the host's organisation in the fleet; hosts of one organisation share
    /// certificates.
    pub(crate) org: usize,
    /// Organisation display name for the certificate subject.
    pub(crate) org_name: String,
    /// Seeds the organisation's certificate dates, so all its hosts agree.
    pub(crate) org_seed: u64,
    pub(crate) persona: Persona,
    /// Seeds this host's own random stream (request ids), so answers are reproducible.
    pub(crate) seed: u64,
    /// The round trip its answers are delayed by ([`FleetOptions::rtt`]); `None` answers at
    /// loopback speed.
    pub(crate) rtt: Option<Duration>,
    /// How its HTTPS connections stall, if they do ([`FleetOptions::stall_share`]).
    pub(crate) stall: Option<Stall>,
}

/// Where a stalling host's HTTPS connections stop, for ever: what a client meets when the
/// path to a server loses everything after some point. Every connection of the host stalls
/// the same way, so the truth can say what a scanner records (`io-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stall {
    /// The TCP handshake completes, nothing is ever sent back (a firewall or SYN proxy that
    /// answers for a server that is gone).
    Accepted,
    /// The ServerHello arrives, the rest of the server's first TLS flight never does (a path
    /// MTU black hole: small packets pass, the full-size ones with the certificate are lost).
    ServerHello,
    /// The TLS handshake completes and the request is read; the first half of the first
    /// response's head is sent, the rest never comes.
    HalfResponse,
}

impl Stall {
    const ALL: [Stall; 3] = [Stall::Accepted, Stall::ServerHello, Stall::HalfResponse];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Stall::Accepted => "accepted",
            Stall::ServerHello => "server-hello",
            Stall::HalfResponse => "half-response",
        }
    }
}

/// What software a host pretends to be.
#[derive(Debug, Clone)]
pub(crate) enum Persona {
    Exchange(ExchangeSpec),
    IisDefault,
    Nginx,
    Apache,
    Roundcube,
    Zimbra,
    /// A phishing kit's copy of an OWA logon page, its resources hot-linked from the victim or
    /// copied beside it, its form posting wherever the kit collects.
    OwaPhishingCopy {
        /// The copied theme folder: an absolute URL on the victim's server, or the same path
        /// on the kit's own host (`/owa/auth/15.1.2507/themes/resources`).
        resources: String,
        /// `true`: a 2010 page, else a 2016 one.
        ex2010: bool,
        /// What serves the kit.
        stack: KitStack,
        /// Where the form posts: a script beside it, a collector elsewhere, or Exchange's own
        /// `/owa/auth.owa`, which the kit answers itself.
        action: String,
    },
    /// joda32/owa-honeypot (Flask on Werkzeug's server): a real 2016 CU9 logon page with
    /// faked IIS 7.5 headers, Basic-auth stubs for Exchange's folders.
    OwaHoneypot,
    /// Exchange Online as seen on its public endpoints: 15.20 builds, Bearer challenges.
    ExchangeOnlineLike {
        build: String,
        be_target: String,
        fe_server: String,
    },
    SharePoint {
        /// `MicrosoftSharePointTeamServices` value, e.g. `16.0.0.10417`.
        version: String,
    },
    /// A server that misbehaves below HTTP's semantics.
    Hostile(Hostile),
}

/// Hostile personas that are not Exchange; see `docs/testbed.md` for what each one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hostile {
    Tarpit,
    SlowDrip,
    EndlessBody,
    HugeHeaders,
    MalformedStatusLine,
    GarbageAfterTls,
    RedirectLoop,
    GzipBomb,
    WrongContentLength,
}

impl Hostile {
    const ALL: [Hostile; 9] = [
        Hostile::Tarpit,
        Hostile::SlowDrip,
        Hostile::EndlessBody,
        Hostile::HugeHeaders,
        Hostile::MalformedStatusLine,
        Hostile::GarbageAfterTls,
        Hostile::RedirectLoop,
        Hostile::GzipBomb,
        Hostile::WrongContentLength,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Hostile::Tarpit => "tarpit",
            Hostile::SlowDrip => "slow-drip",
            Hostile::EndlessBody => "endless-body",
            Hostile::HugeHeaders => "huge-headers",
            Hostile::MalformedStatusLine => "malformed-status-line",
            Hostile::GarbageAfterTls => "garbage-after-tls",
            Hostile::RedirectLoop => "redirect-loop",
            Hostile::GzipBomb => "gzip-bomb",
            Hostile::WrongContentLength => "wrong-content-length",
        }
    }

    /// What a correct scanner records for this host.
    pub(crate) fn expected_status(self) -> &'static str {
        match self {
            Hostile::Tarpit | Hostile::SlowDrip => "io-timeout",
            Hostile::HugeHeaders | Hostile::MalformedStatusLine | Hostile::GarbageAfterTls => {
                "protocol-error"
            }
            // The head is complete and valid; what follows is the body limit's problem, and
            // a short body after a complete head is reported by HTTP clients as a body error
            // after the head arrived.
            Hostile::EndlessBody
            | Hostile::RedirectLoop
            | Hostile::GzipBomb
            | Hostile::WrongContentLength => "success",
        }
    }
}

/// The software a phishing kit runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KitStack {
    /// Static files on nginx.
    Nginx,
    /// PHP on Debian's Apache.
    Php,
    /// A Node.js Express app.
    Express,
}

/// What stands between the Internet and an Exchange host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    /// Nothing: IIS answers.
    Direct,
    /// A pre-authentication portal answers OWA, ECP and everything else, except the paths
    /// Outlook and phones need (autodiscover, EWS, MAPI, RPC, ActiveSync, OAB), which pass
    /// through to Exchange untouched.
    Portal(Portal),
    /// A reverse proxy (nginx) that denies everything with this status (403 or 404) except
    /// static files under `/ecp/`, the export tool's among them, and strips Exchange's
    /// headers on what it passes.
    OwaBlocked { status: u16 },
    /// A reverse proxy (nginx) that replaces `Server` and removes `X-Powered-By`,
    /// `X-AspNet-Version`, `X-OWA-Version` and `X-FEServer`; with `ews_blocked`, it also
    /// denies EWS, MAPI, RPC and autodiscover.
    StrippedHeaders { ews_blocked: bool },
}

/// Pre-authentication portals published in front of OWA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Portal {
    /// F5 BIG-IP APM: `HTTP/1.0 302` to `/my.policy`, `Connection: Close`.
    BigIpApm,
    /// Citrix NetScaler AAA: `302 Object Moved` to `/logon/LogonPoint/tmindex.html`.
    NetScaler,
    /// KEMP LoadMaster ESP: `302` to `/lm_auth_proxy?LMLogon`.
    KempEsp,
    /// An OpenID Connect proxy (oauth2-proxy) sending browsers to an identity provider on
    /// another host.
    Sso,
}

impl Portal {
    const ALL: [Portal; 4] = [
        Portal::BigIpApm,
        Portal::NetScaler,
        Portal::KempEsp,
        Portal::Sso,
    ];
}

/// Exchange hosts that are hostile in one place only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quirk {
    None,
    /// The NTLM challenge on the NTLM endpoints is truncated, garbled base64.
    MalformedNtlm,
    /// The export tool manifest is a billion-laughs XML document.
    XmlBombManifest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Other {
    IisDefault,
    Nginx,
    Apache,
    Roundcube,
    Zimbra,
    OwaPhishingCopy,
    OwaHoneypot,
    ExchangeOnlineLike,
    SharePoint,
}

/// The installation details an Exchange persona needs to render its responses.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeSpec {
    pub(crate) family: Family,
    /// Installed build, 4-part, exactly as in the table.
    pub(crate) build: String,
    /// Product and release name, e.g. "Exchange Server 2016 CU23 Oct25SU".
    pub(crate) version_name: String,
    /// `a.b.c`, the CU folder of 2013+ logon pages.
    pub(crate) cu: String,
    /// NetBIOS name of the server, sent as `X-FEServer` by 2013+ and in NTLM challenges.
    pub(crate) fe_server: String,
    pub(crate) owa_version_header: bool,
    pub(crate) exporttool_manifest: bool,
    /// Windows build number (e.g. 17763), which also decides the IIS version.
    pub(crate) windows_build: u16,
    /// NetBIOS domain name, upper case.
    pub(crate) netbios_domain: String,
    /// DNS name of the AD domain, `<slug>.local`.
    pub(crate) ad_domain: String,
    pub(crate) quirk: Quirk,
    pub(crate) front: Front,
}

impl ExchangeSpec {
    /// Whether a scanner can read the NTLM challenge: not through a proxy that denies the
    /// NTLM endpoints, not when it is garbled.
    pub(crate) fn ntlm_readable(&self) -> bool {
        self.quirk != Quirk::MalformedNtlm
            && !matches!(
                self.front,
                Front::OwaBlocked { .. } | Front::StrippedHeaders { ews_blocked: true }
            )
    }

    /// `Microsoft-IIS/x` for the Windows build.
    pub(crate) fn iis_version(&self) -> &'static str {
        match self.windows_build {
            6002 => "Microsoft-IIS/7.0",
            7601 => "Microsoft-IIS/7.5",
            9600 => "Microsoft-IIS/8.5",
            _ => "Microsoft-IIS/10.0",
        }
    }

    /// (major, minor) of the Windows version for the build.
    pub(crate) fn windows_version(&self) -> (u8, u8) {
        match self.windows_build {
            6002 => (6, 0),
            7601 => (6, 1),
            9600 => (6, 3),
            _ => (10, 0),
        }
    }

    /// The server's DNS name inside the AD domain, as SMTP and NTLM show it.
    pub(crate) fn internal_fqdn(&self) -> String {
        format!("{}.{}", self.fe_server.to_ascii_lowercase(), self.ad_domain)
    }
}

impl Persona {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Persona::Exchange(spec) => match (spec.quirk, spec.front) {
                (Quirk::MalformedNtlm, _) => "malformed-ntlm",
                (Quirk::XmlBombManifest, _) => "xml-bomb-manifest",
                (Quirk::None, Front::Direct) => "exchange",
                (Quirk::None, Front::Portal(_)) => "exchange-behind-portal",
                (Quirk::None, Front::OwaBlocked { .. }) => "exchange-owa-blocked",
                (Quirk::None, Front::StrippedHeaders { .. }) => "exchange-stripped-headers",
            },
            Persona::IisDefault => "iis-default",
            Persona::Nginx => "nginx",
            Persona::Apache => "apache",
            Persona::Roundcube => "roundcube",
            Persona::Zimbra => "zimbra",
            Persona::OwaPhishingCopy { .. } => "owa-phishing-copy",
            Persona::OwaHoneypot => "owa-honeypot",
            Persona::ExchangeOnlineLike { .. } => "exchange-online-like",
            Persona::SharePoint { .. } => "sharepoint",
            Persona::Hostile(h) => h.label(),
        }
    }

    /// The software that answers the OWA paths instead of the persona's own server, for
    /// the truth's `served_by`.
    pub(crate) fn served_by(&self) -> Option<&'static str> {
        match self {
            Persona::Exchange(spec) => match spec.front {
                Front::Direct => None,
                Front::Portal(Portal::BigIpApm) => Some("big-ip-apm"),
                Front::Portal(Portal::NetScaler) => Some("netscaler"),
                Front::Portal(Portal::KempEsp) => Some("kemp-esp"),
                Front::Portal(Portal::Sso) => Some("oauth2-proxy"),
                Front::OwaBlocked { .. } | Front::StrippedHeaders { .. } => Some("nginx"),
            },
            Persona::OwaPhishingCopy { stack, .. } => Some(match stack {
                KitStack::Nginx => "nginx",
                KitStack::Php => "php",
                KitStack::Express => "express",
            }),
            _ => None,
        }
    }

    /// The mail software on the SMTP port, if the host runs one.
    pub(crate) fn smtp(&self) -> Option<&'static str> {
        match self {
            Persona::Exchange(_) => Some("exchange"),
            Persona::Roundcube | Persona::Zimbra => Some("postfix"),
            _ => None,
        }
    }
}

/// Checks config and options and lays out the fleet. Same inputs, same plan.
pub(crate) fn plan(
    config: &TestbedConfig,
    options: &FleetOptions,
) -> Result<Vec<HostPlan>, TestbedError> {
    let net = config.net.trunc();
    let loopback = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("8 is a valid prefix");
    if !loopback.contains(&net) {
        return Err(TestbedError::NetNotLoopback { net: config.net });
    }
    options.validate()?;
    let table = BuildTable::load()?;

    let (first, available) = usable_range(net);
    if config.hosts > available {
        return Err(TestbedError::TooManyHosts {
            net,
            requested: config.hosts,
            available,
        });
    }

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // Floyd-style sampling stays cheap even for a sparse fleet in a /8.
    let mut offsets = rand::seq::index::sample(&mut rng, available, config.hosts).into_vec();
    offsets.sort_unstable();

    let base = u32::from(net.network());
    let mut taken = names::Taken::default();
    let mut hosts = Vec::with_capacity(config.hosts);
    let mut org: Option<(usize, Organisation, u64, usize)> = None;
    let mut orgs = 0;
    for offset in offsets {
        let offset = u32::try_from(offset).expect("a /8 has fewer than 2^32 addresses");
        let ip = Ipv4Addr::from(base + first + offset);
        // Neighbouring addresses often belong to one organisation (a web server beside the
        // mail server), which gives the registry multi-host rows.
        let continue_org = matches!(&org, Some((_, _, _, n)) if *n < MAX_HOSTS_PER_ORG)
            && rng.gen_bool(SAME_ORG_PROBABILITY);
        match &mut org {
            Some((_, _, _, n)) if continue_org => *n += 1,
            _ => {
                let o = names::organisation(&mut rng, &mut taken);
                org = Some((orgs, o, rng.gen(), 1));
                orgs += 1;
            }
        }
        let (index, organisation, org_seed, _) = org.as_ref().expect("set just above");
        // Details added to personas later (fronts, kit stacks) come from a stream of their
        // own, so a seed keeps planning the fleet it planned before they existed.
        let mut detail = ChaCha8Rng::seed_from_u64(
            config.seed ^ u64::from(u32::from(ip)).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut host = plan_host(
            ip,
            config.port,
            (*index, organisation, *org_seed),
            options,
            &table,
            (&mut rng, &mut detail),
        );
        distance(&mut host, config.seed, options);
        hosts.push(host);
    }
    Ok(hosts)
}

/// Draws the host's distance: its round-trip time and whether its connections stall.
///
/// The draws come from a stream of their own, seeded from the seed and the address, and are
/// made whatever the options say, so a seed plans the same fleet with or without distance,
/// a host keeps its round trip when the stall share changes, and a larger share stalls a
/// superset of the hosts a smaller one stalls.
fn distance(host: &mut HostPlan, seed: u64, options: &FleetOptions) {
    let ip = match host.truth.ip {
        IpAddr::V4(ip) => u32::from(ip),
        IpAddr::V6(_) => 0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ u64::from(ip).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x6469_7374_616E_6365,
    );
    let (place, roll, kind): (f64, f64, usize) =
        (rng.gen(), rng.gen(), rng.gen_range(0..Stall::ALL.len()));
    if let Some(range) = options.rtt {
        let ms = range.pick(place);
        host.rtt = Some(Duration::from_millis(u64::from(ms)));
        host.truth.rtt_ms = Some(ms);
    }
    // Hostile personas already fail in their own way; a stall on top would blur what their
    // truth says.
    if roll < options.stall_share && !matches!(host.persona, Persona::Hostile(_)) {
        let stall = Stall::ALL[kind];
        host.stall = Some(stall);
        host.truth.stall = Some(stall.label().to_owned());
        host.truth.expected_status = Some("io-timeout".to_owned());
    }
}

fn plan_host(
    ip: Ipv4Addr,
    port: u16,
    (org, organisation, org_seed): (usize, &Organisation, u64),
    options: &FleetOptions,
    table: &BuildTable,
    (rng, detail): (&mut ChaCha8Rng, &mut ChaCha8Rng),
) -> HostPlan {
    let persona = if rng.gen_bool(options.hostile_share) {
        // Nine hostile personas below HTTP plus two hostile Exchange hosts.
        let pick = rng.gen_range(0..Hostile::ALL.len() + 2);
        match Hostile::ALL.get(pick) {
            Some(h) => Persona::Hostile(*h),
            None if pick == Hostile::ALL.len() => Persona::Exchange(exchange_spec(
                organisation,
                &options.family_weights,
                Quirk::MalformedNtlm,
                table,
                (rng, detail),
            )),
            None => Persona::Exchange(exchange_spec(
                organisation,
                &options.family_weights,
                Quirk::XmlBombManifest,
                table,
                (rng, detail),
            )),
        }
    } else if rng.gen_bool(options.non_exchange_share) {
        other_persona(rng, detail)
    } else {
        Persona::Exchange(exchange_spec(
            organisation,
            &options.family_weights,
            Quirk::None,
            table,
            (rng, detail),
        ))
    };
    let exchange = match &persona {
        Persona::Exchange(spec) => {
            let ntlm = spec.ntlm_readable();
            Some(TruthExchange {
                family: spec.family.label().to_owned(),
                build: spec.build.clone(),
                version_name: spec.version_name.clone(),
                owa_version_header: spec.owa_version_header,
                exporttool_manifest: spec.exporttool_manifest,
                ad_domain: ntlm.then(|| spec.ad_domain.clone()),
                netbios_domain: ntlm.then(|| spec.netbios_domain.clone()),
                netbios_computer: ntlm.then(|| spec.fe_server.clone()),
                windows_build: ntlm.then_some(u32::from(spec.windows_build)),
                supported_until: spec.family.supported_until().map(str::to_owned),
            })
        }
        _ => None,
    };
    let expected_status = match &persona {
        Persona::Hostile(h) => h.expected_status(),
        _ => "success",
    };
    let hostname = options.dns_port.map(|_| {
        dns::hostname(
            matches!(persona, Persona::Exchange(_)),
            &organisation.domain,
        )
    });
    let smtp = options
        .smtp_port
        .and_then(|_| persona.smtp())
        .map(str::to_owned);
    let served_by = persona.served_by().map(str::to_owned);
    HostPlan {
        truth: TruthHost {
            ip: IpAddr::V4(ip),
            port,
            scheme: "https".to_owned(),
            persona: persona.label().to_owned(),
            domain: organisation.domain.clone(),
            exchange,
            expected_status: Some(expected_status.to_owned()),
            organisation: organisation.name.clone(),
            sector: organisation.sector.to_owned(),
            language: organisation.language.to_owned(),
            smtp,
            hostname,
            served_by,
            rtt_ms: None,
            stall: None,
        },
        org,
        org_name: organisation.name.clone(),
        org_seed,
        persona,
        seed: rng.gen(),
        rtt: None,
        stall: None,
    }
}

fn other_persona(rng: &mut ChaCha8Rng, detail: &mut ChaCha8Rng) -> Persona {
    let total: u32 = OTHER_WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut roll = rng.gen_range(0..total);
    let mut kind = Other::IisDefault;
    for (other, weight) in OTHER_WEIGHTS {
        if roll < weight {
            kind = other;
            break;
        }
        roll -= weight;
    }
    match kind {
        Other::IisDefault => Persona::IisDefault,
        Other::Nginx => Persona::Nginx,
        Other::Apache => Persona::Apache,
        Other::Roundcube => Persona::Roundcube,
        Other::Zimbra => Persona::Zimbra,
        Other::OwaPhishingCopy => {
            let victim = format!("https://webmail.victim-{}.example", rng.gen_range(1..1000));
            // The kits seen in the wild copy a 2010 SP3 page (section 1.13) or a 2016 one.
            let ex2010 = rng.gen_bool(0.5);
            let stack = [KitStack::Nginx, KitStack::Php, KitStack::Express][detail.gen_range(0..3)];
            // A kit on static nginx hot-links half the time; one that runs code copies the
            // resource folder beside the page, so its paths are the real, versioned ones.
            let hot_linked = stack == KitStack::Nginx && detail.gen_bool(0.5);
            let folder = if ex2010 {
                "/owa/14.3.123.3/themes/resources"
            } else {
                "/owa/auth/15.1.2507/themes/resources"
            };
            let resources = if hot_linked {
                format!("{victim}{folder}")
            } else {
                folder.to_owned()
            };
            let collector = format!("https://cdn-{}.example", detail.gen_range(1..1000));
            let actions: [String; 3] = match stack {
                // Static files cannot take a POST: the form goes to the collector, or to
                // Exchange's path while the kit's script sends the fields elsewhere.
                KitStack::Nginx => [
                    format!("{collector}/owa/auth.php"),
                    format!("{collector}/next.php"),
                    "/owa/auth.owa".to_owned(),
                ],
                KitStack::Php => [
                    "post.php".to_owned(),
                    "next.php".to_owned(),
                    format!("{collector}/login.php"),
                ],
                KitStack::Express => [
                    "/owa/auth.owa".to_owned(),
                    "/api/login".to_owned(),
                    format!("{collector}/collect"),
                ],
            };
            let action = actions[detail.gen_range(0..actions.len())].clone();
            Persona::OwaPhishingCopy {
                resources,
                ex2010,
                stack,
                action,
            }
        }
        Other::OwaHoneypot => Persona::OwaHoneypot,
        Other::ExchangeOnlineLike => {
            const SITES: [&str; 4] = ["AM", "DB", "VI", "FR"];
            let site = SITES[rng.gen_range(0..SITES.len())];
            let region = rng.gen_range(1..10);
            Persona::ExchangeOnlineLike {
                build: format!(
                    "15.20.{}.{}",
                    rng.gen_range(8000..9300),
                    rng.gen_range(10..40)
                ),
                be_target: format!(
                    "{site}{}PR0{region}MB{:04}.eurprd0{region}.prod.outlook.com",
                    rng.gen_range(0..10),
                    rng.gen_range(0..10_000)
                ),
                fe_server: format!(
                    "{site}{}P281CA{:04}",
                    rng.gen_range(0..10),
                    rng.gen_range(0..10_000)
                ),
            }
        }
        Other::SharePoint => Persona::SharePoint {
            // SharePoint Server 2016/2019/Subscription Edition all report 16.0.
            version: format!("16.0.0.{}", rng.gen_range(4300..18000)),
        },
    }
}

fn exchange_spec(
    organisation: &Organisation,
    weights: &FamilyWeights,
    quirk: Quirk,
    table: &BuildTable,
    (rng, detail): (&mut ChaCha8Rng, &mut ChaCha8Rng),
) -> ExchangeSpec {
    let mut family = pick_family(weights, rng);
    if quirk == Quirk::XmlBombManifest && matches!(family, Family::Ex2007 | Family::Ex2010) {
        // Only 2013+ has the export tool whose manifest is the bomb.
        family = Family::Ex2016;
    }
    let row = table.pick(family, rng);
    // X-OWA-Version on 2007 is not documented in the notes; 2007 shows its 4-part build in
    // the logon page's paths anyway.
    let owa_version_header = match (quirk, family) {
        (Quirk::XmlBombManifest, _) => true,
        (_, Family::Ex2007) => false,
        _ => rng.gen_bool(OWA_HEADER_PROBABILITY),
    };
    // 2007 and 2010 have no ECP export tool at all.
    let exporttool_manifest = !matches!(family, Family::Ex2007 | Family::Ex2010)
        && quirk != Quirk::XmlBombManifest
        && rng.gen_bool(EXPORTTOOL_PROBABILITY);
    let front = match quirk {
        Quirk::None => pick_front(family, detail),
        _ => Front::Direct,
    };
    // What the front lets out: behind a portal, X-OWA-Version on the 401s and no ECP; past
    // a block, the manifest alone; through a stripping proxy, no header.
    let (owa_version_header, exporttool_manifest) = match front {
        Front::Direct => (owa_version_header, exporttool_manifest),
        Front::Portal(_) => (true, false),
        Front::OwaBlocked { .. } => (false, true),
        Front::StrippedHeaders { .. } => (false, exporttool_manifest),
    };
    let tag = match family {
        Family::Ex2007 => "07",
        Family::Ex2010 => "10",
        Family::Ex2013 => "13",
        Family::Ex2016 => "16",
        Family::Ex2019 => "19",
        Family::Se => "SE",
    };
    // Windows Server builds each family runs on (section 1.7 of the notes).
    let windows: &[u16] = match family {
        Family::Ex2007 => &[7601, 6002],
        Family::Ex2010 => &[7601],
        Family::Ex2013 => &[9600],
        Family::Ex2016 => &[14393, 9600],
        Family::Ex2019 | Family::Se => &[17763, 20348],
    };
    ExchangeSpec {
        family,
        build: row.build.clone(),
        version_name: format!("{} {}", row.product, row.version_name),
        cu: row.cu(),
        fe_server: names::netbios_name(rng, tag),
        owa_version_header,
        exporttool_manifest,
        windows_build: windows[rng.gen_range(0..windows.len())],
        netbios_domain: netbios_domain(organisation.slug()),
        ad_domain: format!("{}.local", organisation.slug()),
        quirk,
        front,
    }
}

/// Draws the front of an ordinary Exchange host. A front that needs what the family lacks
/// is not drawn: a portal leaves only X-OWA-Version, which 2007 never sends; a block leaves
/// only the export tool, which 2007 and 2010 do not have.
fn pick_front(family: Family, rng: &mut ChaCha8Rng) -> Front {
    let roll: f64 = rng.gen();
    let detail: u32 = rng.gen();
    let old = matches!(family, Family::Ex2007 | Family::Ex2010);
    if roll < PORTAL_PROBABILITY {
        if family == Family::Ex2007 {
            return Front::Direct;
        }
        Front::Portal(Portal::ALL[detail as usize % Portal::ALL.len()])
    } else if roll < PORTAL_PROBABILITY + OWA_BLOCKED_PROBABILITY {
        if old {
            return Front::Direct;
        }
        let status = if detail.is_multiple_of(2) { 403 } else { 404 };
        Front::OwaBlocked { status }
    } else if roll < PORTAL_PROBABILITY + OWA_BLOCKED_PROBABILITY + STRIPPED_HEADERS_PROBABILITY {
        Front::StrippedHeaders {
            ews_blocked: detail.is_multiple_of(2),
        }
    } else {
        Front::Direct
    }
}

/// A short upper-case domain name in the style admins pick: initials of the leading words,
/// then the last word, cut to NetBIOS's 15 characters (`stadtwerke-neustadt` → `SNEUSTADT`).
fn netbios_domain(slug: &str) -> String {
    let words: Vec<&str> = slug.split('-').filter(|w| !w.is_empty()).collect();
    let mut name = String::new();
    if let Some((last, leading)) = words.split_last() {
        for word in leading {
            name.extend(word.chars().next());
        }
        name.push_str(last);
    }
    name.make_ascii_uppercase();
    name.truncate(15);
    name
}

fn pick_family(weights: &FamilyWeights, rng: &mut ChaCha8Rng) -> Family {
    let total: u32 = Family::ALL.iter().map(|f| weights.of(*f)).sum();
    let mut roll = rng.gen_range(0..total);
    for family in Family::ALL {
        if roll < weights.of(family) {
            return family;
        }
        roll -= weights.of(family);
    }
    unreachable!("roll is below the sum of weights, which validate() keeps above zero")
}

/// Offset of the first usable address and how many there are. Network and broadcast
/// addresses are skipped, except in /31 and /32 where every address is a host.
fn usable_range(net: Ipv4Net) -> (u32, usize) {
    let size: u64 = 1u64 << (32 - u32::from(net.prefix_len()));
    if net.prefix_len() >= 31 {
        (0, size as usize)
    } else {
        (1, (size - 2) as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn plan_default(config: &TestbedConfig) -> Vec<HostPlan> {
        plan(config, &FleetOptions::default()).unwrap()
    }

    #[test]
    fn usable_range_skips_network_and_broadcast() {
        let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert_eq!(usable_range(net("127.0.0.0/24")), (1, 254));
        assert_eq!(usable_range(net("127.0.0.0/30")), (1, 2));
        assert_eq!(usable_range(net("127.0.0.0/31")), (0, 2));
        assert_eq!(usable_range(net("127.0.0.1/32")), (0, 1));
        assert_eq!(usable_range(net("127.0.0.0/8")), (1, 16_777_214));
    }

    #[test]
    fn addresses_avoid_network_and_broadcast_even_when_full() {
        let config = TestbedConfig {
            hosts: 254,
            net: "127.9.9.0/24".parse().unwrap(),
            ..TestbedConfig::default()
        };
        let hosts = plan_default(&config);
        let ips: HashSet<IpAddr> = hosts.iter().map(|h| h.truth.ip).collect();
        assert_eq!(ips.len(), 254);
        assert!(!ips.contains(&IpAddr::V4(Ipv4Addr::new(127, 9, 9, 0))));
        assert!(!ips.contains(&IpAddr::V4(Ipv4Addr::new(127, 9, 9, 255))));
    }

    #[test]
    fn host_bits_in_the_net_are_ignored() {
        let config = TestbedConfig {
            hosts: 10,
            net: "127.9.9.77/24".parse().unwrap(),
            ..TestbedConfig::default()
        };
        let hosts = plan_default(&config);
        assert!(hosts.iter().all(|h| match h.truth.ip {
            IpAddr::V4(ip) => ip.octets()[..3] == [127, 9, 9],
            IpAddr::V6(_) => false,
        }));
    }

    #[test]
    fn old_exchange_never_serves_the_exporttool() {
        let config = TestbedConfig {
            hosts: 3000,
            net: "127.64.0.0/16".parse().unwrap(),
            ..TestbedConfig::default()
        };
        let plans = plan_default(&config);
        let old: Vec<&ExchangeSpec> = plans
            .iter()
            .filter_map(|p| match &p.persona {
                Persona::Exchange(spec)
                    if matches!(spec.family, Family::Ex2007 | Family::Ex2010) =>
                {
                    Some(spec)
                }
                _ => None,
            })
            .collect();
        assert!(old.iter().any(|s| s.family == Family::Ex2007));
        assert!(old.iter().all(|s| !s.exporttool_manifest));
    }

    #[test]
    fn windows_and_iis_fit_the_family() {
        let config = TestbedConfig {
            hosts: 2000,
            net: "127.65.0.0/16".parse().unwrap(),
            ..TestbedConfig::default()
        };
        for host in plan_default(&config) {
            let Persona::Exchange(spec) = &host.persona else {
                continue;
            };
            let ok = match spec.family {
                Family::Ex2007 => [7601, 6002].contains(&spec.windows_build),
                Family::Ex2010 => spec.windows_build == 7601,
                Family::Ex2013 => spec.windows_build == 9600,
                Family::Ex2016 => [14393, 9600].contains(&spec.windows_build),
                Family::Ex2019 | Family::Se => [17763, 20348].contains(&spec.windows_build),
            };
            assert!(ok, "{:?} on {}", spec.family, spec.windows_build);
            assert_eq!(
                spec.iis_version() == "Microsoft-IIS/10.0",
                spec.windows_version() == (10, 0)
            );
        }
    }

    #[test]
    fn netbios_domains_are_short_and_upper_case() {
        assert_eq!(netbios_domain("stadtwerke-neustadt"), "SNEUSTADT");
        assert_eq!(netbios_domain("mueller-maschinenbau"), "MMASCHINENBAU");
        assert_eq!(netbios_domain("praxis-wagner-2"), "PW2");
        assert_eq!(
            netbios_domain("kreisverwaltung-friedrichsau"),
            "KFRIEDRICHSAU"
        );
        assert!(netbios_domain("a-verylongtownnamebeyondlimits").len() <= 15);
    }

    #[test]
    fn zero_hostile_share_plans_no_hostile_host() {
        let config = TestbedConfig {
            hosts: 2000,
            net: "127.66.0.0/16".parse().unwrap(),
            ..TestbedConfig::default()
        };
        let options = FleetOptions {
            hostile_share: 0.0,
            ..FleetOptions::default()
        };
        let plans = plan(&config, &options).unwrap();
        assert!(plans
            .iter()
            .all(|p| !matches!(p.persona, Persona::Hostile(_))
                && p.truth.expected_status.as_deref() == Some("success")
                && ["exchange", "exchange-behind-portal", "exchange-owa-blocked"]
                    .iter()
                    .chain(&["exchange-stripped-headers"])
                    .chain(&["iis-default", "nginx", "apache", "roundcube", "zimbra"])
                    .chain(&["owa-phishing-copy", "owa-honeypot"])
                    .chain(&["exchange-online-like", "sharepoint"])
                    .any(|l| *l == p.truth.persona)));
    }
}
