//! The test-bed's registry, read back: every host of a planned fleet is attributed to its true
//! organisation and sector by CIDR, every Exchange host by certificate name and NTLM too.
//! Planning binds nothing, so this test sends no traffic.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use surveyor_attrib::{Attributor, Evidence, Format, Registry};
use surveyor_model::{AttributionRule, Sector};
use surveyor_testbed::{FleetOptions, TestbedConfig, TruthHost};

fn fleet(hosts: usize, seed: u64) -> Vec<TruthHost> {
    let config = TestbedConfig {
        hosts,
        seed,
        net: Ipv4Net::new(Ipv4Addr::new(127, 77, 0, 0), 20).unwrap(),
        port: 0,
    };
    // A DNS port in the options fills `hostname`; nothing is bound while planning.
    let options = FleetOptions {
        dns_port: Some(0),
        ..FleetOptions::default()
    };
    surveyor_testbed::try_generate_with(&config, &options).unwrap()
}

fn registry_of(truth: &[TruthHost]) -> Registry {
    let mut csv = Vec::new();
    surveyor_testbed::write_registry(truth, &mut csv).unwrap();
    Registry::parse(&String::from_utf8(csv).unwrap(), Format::Auto).unwrap()
}

/// The attribution as `organisation sector rule`, or `none`.
fn attribute(attributor: &Attributor, evidence: Evidence<'_>) -> String {
    match attributor.attribute(&evidence) {
        Some(a) => format!("{} {} {}", a.organisation, a.sector, a.rule.as_str()),
        None => "none".to_owned(),
    }
}

#[test]
fn every_host_is_attributed_to_its_true_organisation() {
    for seed in [1, 7, 42] {
        let truth = fleet(600, seed);
        let registry = registry_of(&truth);
        let attributor = Attributor::new(&registry);
        let outside = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let mut exchange_hosts = 0;
        for host in &truth {
            let sector: Sector = host.sector.parse().unwrap();
            // The legacy registry has no ids; they are derived from the domain.
            let org = registry.get(&host.domain).unwrap();
            assert_eq!(org.name, host.organisation);
            assert_eq!(org.sector, sector);
            assert_eq!(org.language.as_deref(), Some(host.language.as_str()));

            let by_cidr = format!(
                "{} {} {}",
                host.domain,
                sector,
                AttributionRule::Cidr.as_str()
            );
            assert_eq!(
                attribute(&attributor, Evidence::from_ip(host.ip)),
                by_cidr,
                "{host:?}"
            );

            let Some(exchange) = &host.exchange else {
                continue;
            };
            exchange_hosts += 1;
            let hostname = host.hostname.clone().unwrap();
            let names = [hostname, format!("autodiscover.{}", host.domain)];
            let by_certificate = format!("{} {} certificate-domain", host.domain, sector);
            for ip in [host.ip, outside] {
                let evidence = Evidence {
                    certificate_names: &names,
                    ..Evidence::from_ip(ip)
                };
                assert_eq!(attribute(&attributor, evidence), by_certificate, "{host:?}");
            }
            if let Some(ad_domain) = &exchange.ad_domain {
                let evidence = Evidence {
                    ntlm_dns_domain: Some(ad_domain),
                    ..Evidence::from_ip(outside)
                };
                let by_ntlm = format!("{} {} ntlm-domain", host.domain, sector);
                assert_eq!(attribute(&attributor, evidence), by_ntlm, "{host:?}");
            }
        }
        assert!(
            exchange_hosts > 100,
            "seed {seed}: only {exchange_hosts} Exchange hosts"
        );
        // Canonical export and back: the same registry.
        assert_eq!(
            Registry::parse(&registry.to_csv(), Format::Auto).unwrap(),
            registry
        );
        assert_eq!(
            Registry::parse(&registry.to_json(), Format::Auto).unwrap(),
            registry
        );
    }
}
