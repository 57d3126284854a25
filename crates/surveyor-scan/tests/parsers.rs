//! Property tests for every parser that reads what a server or a file says: arbitrary and
//! mutated input must give a value or a clean refusal, never a panic, and what is accepted
//! must be well-formed. These proptests run on stable, in every test run; the coverage-guided
//! cargo-fuzz targets in `fuzz/` (nightly) check the same parsers and invariants, and are
//! documented in docs/fuzzing.md.

use proptest::prelude::*;
use surveyor_model::Build;
use surveyor_scan::fingerprint::{
    exporttool_manifest_build, html_title, logon_form_action, logon_markers, owa_resource_build,
};
use surveyor_scan::ntlm::{from_www_authenticate, parse_challenge};
use surveyor_scan::targets::{parse_cidr_list, parse_target_list, InputFormat};

/// A well-formed CHALLENGE_MESSAGE with a target-info block of AV pairs.
fn challenge(pairs: &[(u16, &str)], version: [u8; 8]) -> Vec<u8> {
    let mut info = Vec::new();
    for (id, text) in pairs {
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&(utf16.len() as u16).to_le_bytes());
        info.extend_from_slice(&utf16);
    }
    info.extend_from_slice(&[0, 0, 0, 0]);
    let mut msg = b"NTLMSSP\0".to_vec();
    msg.extend_from_slice(&2u32.to_le_bytes());
    msg.extend_from_slice(&[0; 8]); // target name fields
    msg.extend_from_slice(&0x0281_8205u32.to_le_bytes()); // flags, version present
    msg.extend_from_slice(&[0x11; 8]); // server challenge
    msg.extend_from_slice(&[0; 8]); // reserved
    msg.extend_from_slice(&(info.len() as u16).to_le_bytes());
    msg.extend_from_slice(&(info.len() as u16).to_le_bytes());
    msg.extend_from_slice(&56u32.to_le_bytes());
    msg.extend_from_slice(&version);
    msg.extend_from_slice(&info);
    msg
}

fn is_build_text(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn ntlm_challenges_of_any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_challenge(&bytes);
        let mut framed = b"NTLMSSP\0\x02\0\0\0".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = parse_challenge(&framed);
    }

    #[test]
    fn mutated_ntlm_challenges_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let good = challenge(
            &[(2, "CONTOSO"), (1, "EXCH01"), (4, "contoso.local"), (3, "exch01.contoso.local")],
            [10, 0, 0x63, 0x45, 0, 0, 0, 15],
        );
        let parsed = parse_challenge(&good).expect("the unmutated challenge parses");
        prop_assert_eq!(parsed.netbios_domain.as_deref(), Some("CONTOSO"));
        let mut bad = good.clone();
        for (at, byte) in flips {
            let i = at.index(bad.len());
            bad[i] = byte;
        }
        let _ = parse_challenge(&bad);
        let _ = parse_challenge(&bad[..cut.index(bad.len())]);
    }

    #[test]
    fn www_authenticate_values_never_panic(values in prop::collection::vec(".{0,200}", 0..4)) {
        let _ = from_www_authenticate(values.iter().map(String::as_str));
        let prefixed: Vec<String> = values.iter().map(|v| format!("NTLM {v}")).collect();
        let _ = from_www_authenticate(prefixed.iter().map(String::as_str));
    }

    #[test]
    fn pages_and_manifests_of_any_text_give_well_formed_builds(body in ".{0,2000}") {
        if let Some(b) = owa_resource_build(&body) {
            prop_assert!(is_build_text(&b), "{b}");
        }
        if let Some(b) = exporttool_manifest_build(&body) {
            prop_assert!(is_build_text(&b), "{b}");
        }
        let _ = logon_markers(&body);
        let _ = html_title(&body);
        if let Some(action) = logon_form_action(&body) {
            prop_assert!(action.chars().count() <= 256);
        }
    }

    #[test]
    fn pages_around_real_markers_never_panic(
        before in ".{0,300}",
        after in ".{0,300}",
        build in "[0-9]{1,3}(\\.[0-9]{1,5}){0,4}",
    ) {
        let page = format!(
            "{before}<link href=\"/owa/auth/{build}/themes/resources/favicon.ico\"><!-- OwaPage = ASP.auth_logon_aspx -->{after}"
        );
        if let Some(b) = owa_resource_build(&page) {
            prop_assert!(is_build_text(&b), "{b}");
        }
        let manifest = format!(
            "{before}<assemblyIdentity name=\"microsoft.exchange.ediscovery.exporttool.application\" version=\"{build}\"{after}"
        );
        if let Some(b) = exporttool_manifest_build(&manifest) {
            prop_assert!(is_build_text(&b), "{b}");
        }
        // A logon form between random text: its action is read whole, whatever surrounds it.
        let form = format!("{before}<form action=\"/owa/auth/{build}.owa\" name=\"logonForm\">{after}");
        let action = logon_form_action(&form);
        if !before.to_ascii_lowercase().contains("<form") {
            prop_assert_eq!(action, Some(format!("/owa/auth/{build}.owa")));
        }
    }

    #[test]
    fn target_lists_of_any_text_parse_or_name_a_line(text in "(.{0,60}\n){0,20}") {
        for format in [
            InputFormat::Auto,
            InputFormat::parse("zgrab-csv").unwrap(),
            InputFormat::parse("zmap-json").unwrap(),
            InputFormat::parse("masscan-list").unwrap(),
            InputFormat::parse("masscan-json").unwrap(),
        ] {
            if let Err(e) = parse_target_list(&text, "list", format) {
                prop_assert!(e.to_string().contains("list"), "{e}");
            }
        }
        let _ = parse_cidr_list(&text, "list");
    }

    #[test]
    fn build_numbers_of_any_text_never_panic(text in ".{0,40}", parts in prop::collection::vec(any::<u32>(), 0..6)) {
        let _ = text.parse::<Build>();
        let dotted = parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        if let Ok(b) = dotted.parse::<Build>() {
            prop_assert_eq!(b.to_string().parse::<Build>().ok(), Some(b));
        }
    }
}
