//! Reading an NTLM CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2): the names and Windows version a server
//! discloses to anyone who starts an NTLM handshake. Nothing is authenticated.

use base64::Engine;

/// The NEGOTIATE_MESSAGE nmap's http-ntlm-info sends: Unicode, OEM, request target, NTLM,
/// always sign, extended session security, 128- and 56-bit, version 6.1.7601. No names.
pub const NEGOTIATE: &str = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==";

/// What a challenge disclosed. Every field is optional: servers omit pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChallengeInfo {
    pub netbios_computer: Option<String>,
    pub netbios_domain: Option<String>,
    pub dns_computer: Option<String>,
    pub dns_domain: Option<String>,
    pub dns_tree: Option<String>,
    /// Windows major, minor and build from the version field.
    pub version: Option<(u8, u8, u16)>,
}

/// Finds `NTLM <base64>` (or `Negotiate <base64>` carrying raw NTLM) among
/// `WWW-Authenticate` values and parses it. `None` for anything malformed: a hostile server
/// gets no more than a missing signal.
pub fn from_www_authenticate<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Option<ChallengeInfo> {
    values.into_iter().find_map(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        if !(scheme.eq_ignore_ascii_case("NTLM") || scheme.eq_ignore_ascii_case("Negotiate")) {
            return None;
        }
        let token = token.trim();
        if token.len() > 8192 {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()?;
        parse_challenge(&bytes)
    })
}

/// Parses a CHALLENGE_MESSAGE, checking every offset against the buffer.
pub fn parse_challenge(msg: &[u8]) -> Option<ChallengeInfo> {
    if msg.len() < 48 || &msg[..8] != b"NTLMSSP\0" || u32_at(msg, 8)? != 2 {
        return None;
    }
    let flags = u32_at(msg, 20)?;
    let mut info = ChallengeInfo::default();
    // TargetInfoFields: length at 40, offset at 44.
    let len = usize::from(u16_at(msg, 40)?);
    let offset = usize::try_from(u32_at(msg, 44)?).ok()?;
    let target_info = msg.get(offset..offset.checked_add(len)?)?;
    let mut rest = target_info;
    // At most a few dozen pairs in any real challenge; the bound keeps a hostile one cheap.
    for _ in 0..64 {
        let id = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?);
        let n = usize::from(u16::from_le_bytes(rest.get(2..4)?.try_into().ok()?));
        if id == 0 {
            break;
        }
        let value = rest.get(4..4 + n)?;
        let text = || utf16le(value);
        match id {
            1 => info.netbios_computer = text(),
            2 => info.netbios_domain = text(),
            3 => info.dns_computer = text(),
            4 => info.dns_domain = text(),
            5 => info.dns_tree = text(),
            _ => {}
        }
        rest = &rest[4 + n..];
    }
    // NEGOTIATE_VERSION (0x02000000): the 8-byte version field follows at offset 48.
    if flags & 0x0200_0000 != 0 {
        if let Some(v) = msg.get(48..56) {
            info.version = Some((v[0], v[1], u16::from_le_bytes([v[2], v[3]])));
        }
    }
    Some(info)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// UTF-16LE to text, without control characters, bounded; empty names are absent.
fn utf16le(b: &[u8]) -> Option<String> {
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    let s: String = char::decode_utf16(units)
        .filter_map(Result::ok)
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a challenge the way MS-NLMP lays it out (independently of any server code).
    fn challenge(pairs: &[(u16, &str)], version: Option<[u8; 8]>, flags: u32) -> Vec<u8> {
        let mut info = Vec::new();
        for (id, text) in pairs {
            let value: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
            info.extend(id.to_le_bytes());
            info.extend((value.len() as u16).to_le_bytes());
            info.extend(value);
        }
        info.extend([0, 0, 0, 0]);
        let mut msg = b"NTLMSSP\0".to_vec();
        msg.extend(2u32.to_le_bytes());
        msg.extend([0u8; 8]); // target name fields
        msg.extend(flags.to_le_bytes());
        msg.extend([7u8; 8]); // server challenge
        msg.extend([0u8; 8]); // reserved
        msg.extend((info.len() as u16).to_le_bytes());
        msg.extend((info.len() as u16).to_le_bytes());
        msg.extend(56u32.to_le_bytes());
        msg.extend(version.unwrap_or([0; 8]));
        msg.extend(info);
        msg
    }

    #[test]
    fn reads_names_and_windows_build() {
        let msg = challenge(
            &[
                (2, "CONTOSO"),
                (1, "EX19-01"),
                (4, "contoso.local"),
                (3, "ex19-01.contoso.local"),
                (5, "contoso.local"),
                (7, "\u{1}\u{2}\u{3}\u{4}"),
            ],
            Some([10, 0, 0x63, 0x45, 0, 0, 0, 15]),
            0xE289_8215,
        );
        let header = format!(
            "NTLM {}",
            base64::engine::general_purpose::STANDARD.encode(&msg)
        );
        let info = from_www_authenticate(["Negotiate", header.as_str()]).unwrap();
        assert_eq!(info.netbios_computer.as_deref(), Some("EX19-01"));
        assert_eq!(info.netbios_domain.as_deref(), Some("CONTOSO"));
        assert_eq!(info.dns_computer.as_deref(), Some("ex19-01.contoso.local"));
        assert_eq!(info.dns_domain.as_deref(), Some("contoso.local"));
        assert_eq!(info.dns_tree.as_deref(), Some("contoso.local"));
        assert_eq!(info.version, Some((10, 0, 17763)));
    }

    #[test]
    fn malformed_challenges_give_nothing_and_never_panic() {
        let good = challenge(&[(1, "EX")], None, 0);
        assert!(
            parse_challenge(&good).unwrap().version.is_none(),
            "no NEGOTIATE_VERSION flag"
        );
        for cut in 0..good.len() {
            let _ = parse_challenge(&good[..cut]);
        }
        let mut bad_offset = good.clone();
        bad_offset[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_challenge(&bad_offset), None);
        let mut wrong_type = good.clone();
        wrong_type[8] = 3;
        assert_eq!(parse_challenge(&wrong_type), None);
        assert_eq!(from_www_authenticate(["NTLM !!!notbase64"]), None);
        assert_eq!(from_www_authenticate(["NTLM"]), None);
        assert_eq!(from_www_authenticate(["Basic realm=\"x\""]), None);
        // A pair whose length runs past the end.
        let mut long_pair = challenge(&[(1, "EX")], None, 0);
        let at = 56 + 2;
        long_pair[at..at + 2].copy_from_slice(&500u16.to_le_bytes());
        assert_eq!(
            parse_challenge(&long_pair).map(|i| i.netbios_computer),
            None
        );
    }
}
