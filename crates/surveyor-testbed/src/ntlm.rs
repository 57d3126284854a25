//! NTLM over HTTP, server side: recognises a NEGOTIATE_MESSAGE and writes the
//! CHALLENGE_MESSAGE Windows sends back, per MS-NLMP 2.2.1.2.
//!
//! The challenge is what leaks the AD names and the Windows build (section 1.7 of the
//! fingerprinting notes), so it is built field by field from the host's plan.

use std::time::{SystemTime, UNIX_EPOCH};

/// NTLMSSP_NEGOTIATE_* flags as Windows Server sends them in a challenge:
/// 56 | KEY_EXCH | 128 | VERSION | TARGET_INFO | EXTENDED_SESSIONSECURITY |
/// TARGET_TYPE_DOMAIN | ALWAYS_SIGN | NTLM | SIGN | REQUEST_TARGET | UNICODE.
pub(crate) const CHALLENGE_FLAGS: u32 = 0xE289_8215;
const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// The names and version a server reveals in its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerIdentity<'a> {
    pub(crate) netbios_computer: &'a str,
    pub(crate) netbios_domain: &'a str,
    /// `<computer>.<dns domain>`.
    pub(crate) dns_computer: &'a str,
    pub(crate) dns_domain: &'a str,
    /// Forest name; the same as the domain in a single-domain forest.
    pub(crate) dns_tree: &'a str,
    pub(crate) version: (u8, u8, u16),
}

/// How the client asked to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Ntlm,
    Negotiate,
}

impl Scheme {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scheme::Ntlm => "NTLM",
            Scheme::Negotiate => "Negotiate",
        }
    }
}

/// Whether an `Authorization` value carries an NTLM NEGOTIATE_MESSAGE (type 1), directly
/// or as a raw NTLM token under `Negotiate`, and under which scheme.
pub(crate) fn negotiate_message(authorization: &str) -> Option<Scheme> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("NTLM") {
        Scheme::Ntlm
    } else if scheme.eq_ignore_ascii_case("Negotiate") {
        Scheme::Negotiate
    } else {
        return None;
    };
    let bytes = base64_decode(token.trim())?;
    let is_type1 = bytes.len() >= 12
        && bytes.starts_with(SIGNATURE)
        && u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) == 1;
    is_type1.then_some(scheme)
}

/// A CHALLENGE_MESSAGE with the current time in its timestamp AV pair.
pub(crate) fn challenge(id: &ServerIdentity<'_>, server_challenge: [u8; 8]) -> Vec<u8> {
    let filetime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| {
            (d.as_secs() + FILETIME_UNIX_OFFSET) * 10_000_000 + u64::from(d.subsec_nanos() / 100)
        })
        .unwrap_or(0);
    challenge_at(id, server_challenge, filetime)
}

fn challenge_at(id: &ServerIdentity<'_>, server_challenge: [u8; 8], filetime: u64) -> Vec<u8> {
    // The target name of a domain member is its NetBIOS domain.
    let target_name = utf16(id.netbios_domain);
    let mut target_info = Vec::new();
    for (av_id, value) in [
        (2u16, id.netbios_domain),
        (1, id.netbios_computer),
        (4, id.dns_domain),
        (3, id.dns_computer),
        (5, id.dns_tree),
    ] {
        av_pair(&mut target_info, av_id, &utf16(value));
    }
    av_pair(&mut target_info, 7, &filetime.to_le_bytes());
    av_pair(&mut target_info, 0, &[]);

    const HEADER: usize = 56;
    let target_name_offset = HEADER;
    let target_info_offset = HEADER + target_name.len();
    let mut out = Vec::with_capacity(target_info_offset + target_info.len());
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&2u32.to_le_bytes());
    push_fields(&mut out, target_name.len(), target_name_offset);
    out.extend_from_slice(&CHALLENGE_FLAGS.to_le_bytes());
    out.extend_from_slice(&server_challenge);
    out.extend_from_slice(&[0; 8]);
    push_fields(&mut out, target_info.len(), target_info_offset);
    let (major, minor, build) = id.version;
    out.extend_from_slice(&[major, minor]);
    out.extend_from_slice(&build.to_le_bytes());
    // Three reserved bytes, then NTLMSSP_REVISION_W2K3.
    out.extend_from_slice(&[0, 0, 0, 0x0F]);
    debug_assert_eq!(out.len(), HEADER);
    out.extend_from_slice(&target_name);
    out.extend_from_slice(&target_info);
    out
}

/// Len, MaxLen (u16 each) and BufferOffset (u32), all little-endian.
fn push_fields(out: &mut Vec<u8>, len: usize, offset: usize) {
    let len = u16::try_from(len).expect("names are far below 64 KiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(offset as u32).to_le_bytes());
}

fn av_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    let len = u16::try_from(value.len()).expect("names are far below 64 KiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4).
pub(crate) fn base64(bytes: &[u8]) -> String {
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

/// Decodes standard base64; padding is optional, anything else invalid is `None`.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == b)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nmap's http-ntlm-info type-1 (section 1.7 of the notes).
    const NMAP_TYPE1: &str = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==";

    #[test]
    fn base64_round_trips_and_matches_rfc4648() {
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
            assert_eq!(base64_decode(expected).unwrap(), input.as_bytes());
        }
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9v*g=="), None);
        assert_eq!(base64_decode("Z"), None);
    }

    #[test]
    fn recognises_type1_under_both_schemes() {
        assert_eq!(
            negotiate_message(&format!("NTLM {NMAP_TYPE1}")),
            Some(Scheme::Ntlm)
        );
        assert_eq!(
            negotiate_message(&format!("Negotiate {NMAP_TYPE1}")),
            Some(Scheme::Negotiate)
        );
        assert_eq!(negotiate_message("NTLM Zm9vYmFy"), None);
        assert_eq!(negotiate_message(&format!("Basic {NMAP_TYPE1}")), None);
        assert_eq!(negotiate_message("NTLM"), None);
    }

    #[test]
    fn challenge_layout_follows_ms_nlmp() {
        let id = ServerIdentity {
            netbios_computer: "EX19-01",
            netbios_domain: "SNEUSTADT",
            dns_computer: "ex19-01.stadtwerke-neustadt.local",
            dns_domain: "stadtwerke-neustadt.local",
            dns_tree: "stadtwerke-neustadt.local",
            version: (10, 0, 17763),
        };
        let msg = challenge_at(&id, [1, 2, 3, 4, 5, 6, 7, 8], 0x01DA_0000_0000_0000);
        let u16_at = |i: usize| u16::from_le_bytes([msg[i], msg[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
        assert_eq!(&msg[..8], b"NTLMSSP\0");
        assert_eq!(u32_at(8), 2);
        assert_eq!(u32_at(20), CHALLENGE_FLAGS);
        assert_ne!(CHALLENGE_FLAGS & 0x0200_0000, 0, "NEGOTIATE_VERSION");
        assert_eq!(&msg[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&msg[48..56], &[10, 0, 0x63, 0x45, 0, 0, 0, 0x0F]);
        let (name_len, name_off) = (u16_at(12) as usize, u32_at(16) as usize);
        assert_eq!(&msg[name_off..name_off + name_len], utf16("SNEUSTADT"));
        let (info_len, info_off) = (u16_at(40) as usize, u32_at(44) as usize);
        assert_eq!(info_off + info_len, msg.len());
        let mut pairs = Vec::new();
        let mut i = info_off;
        loop {
            let (id, len) = (u16_at(i), u16_at(i + 2) as usize);
            pairs.push((id, msg[i + 4..i + 4 + len].to_vec()));
            i += 4 + len;
            if id == 0 {
                break;
            }
        }
        assert_eq!(i, msg.len());
        let ids: Vec<u16> = pairs.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [2, 1, 4, 3, 5, 7, 0]);
        assert_eq!(pairs[3].1, utf16("ex19-01.stadtwerke-neustadt.local"));
        assert_eq!(pairs[5].1, 0x01DA_0000_0000_0000u64.to_le_bytes());
    }
}
