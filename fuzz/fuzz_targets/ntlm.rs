//! NTLM CHALLENGE_MESSAGE parsing, raw and as a `WWW-Authenticate` header.
//!
//! Invariants (beyond "never panics"): an accepted message is a type-2 `NTLMSSP` message of
//! at least 48 bytes; every name it yields is non-empty, at most 255 characters and free of
//! control characters; a version is only read when NEGOTIATE_VERSION is set and is exactly the
//! bytes at 48..52; the header form `NTLM <base64>` / `Negotiate <base64>` gives the same
//! answer as the raw form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use surveyor_scan::ntlm::{from_www_authenticate, parse_challenge, ChallengeInfo};

fuzz_target!(|data: &[u8]| {
    let raw = parse_challenge(data);
    if let Some(info) = &raw {
        assert!(data.len() >= 48, "accepted a {}-byte message", data.len());
        assert_eq!(&data[..8], b"NTLMSSP\0");
        assert_eq!(u32::from_le_bytes(data[8..12].try_into().unwrap()), 2);
        check_info(info);
        let flags = u32::from_le_bytes(data[20..24].try_into().unwrap());
        match info.version {
            Some((major, minor, build)) => {
                assert!(
                    flags & 0x0200_0000 != 0,
                    "version read without NEGOTIATE_VERSION"
                );
                assert_eq!(
                    (major, minor, build),
                    (data[48], data[49], u16::from_le_bytes([data[50], data[51]]))
                );
            }
            None => assert!(flags & 0x0200_0000 == 0 || data.len() < 56),
        }
    }
    // Parsing is a pure function of the bytes.
    assert_eq!(parse_challenge(data), raw);

    // The header form carries the same bytes, so it must give the same answer.
    let token = base64(data);
    if token.len() <= 8192 {
        for scheme in ["NTLM", "Negotiate", "ntlm"] {
            let header = format!("  {scheme} {token} ");
            assert_eq!(
                from_www_authenticate(["Basic realm=\"x\"", header.as_str()]),
                raw,
                "{scheme}"
            );
        }
    }

    // And arbitrary header text (one value per line) is refused cleanly or well-formed.
    let text = String::from_utf8_lossy(data);
    if let Some(info) = from_www_authenticate(text.lines()) {
        check_info(&info);
    }
});

fn check_info(info: &ChallengeInfo) {
    for name in [
        &info.netbios_computer,
        &info.netbios_domain,
        &info.dns_computer,
        &info.dns_domain,
        &info.dns_tree,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!name.is_empty(), "empty names are absent");
        assert!(
            name.chars().count() <= 255,
            "name of {} chars",
            name.chars().count()
        );
        assert!(
            !name.chars().any(char::is_control),
            "control character in {name:?}"
        );
    }
}

/// Standard base64 with padding, written here so the target checks the parser against an
/// encoder that is not the one it decodes with.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
