//! SMTP as Exchange's front-end transport and Debian's Postfix speak it: banner, EHLO,
//! STARTTLS with the organisation's mail certificate, QUIT. No mail is ever accepted.

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::debug;

use crate::builds::Family;
use crate::http;
use crate::plan::Persona;
use crate::server::{HostState, IDLE_TIMEOUT};
use crate::tls::Role;

/// Longest command line accepted (RFC 5321 allows 512 octets; be generous).
const MAX_LINE: usize = 4096;
/// Commands per session before the server hangs up, so a client cannot hold it forever.
const MAX_COMMANDS: usize = 100;

/// Which SMTP server a host runs.
enum Mta {
    /// Exchange, with its internal FQDN and whether it is 2007/2010 (XEXCH50).
    Exchange {
        fqdn: String,
        old: bool,
    },
    Postfix {
        name: String,
    },
}

/// Serves one SMTP connection from `peer`.
pub(crate) async fn serve<S>(mut stream: S, host: &HostState, peer: IpAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mta = match &host.plan.persona {
        Persona::Exchange(spec) => Mta::Exchange {
            fqdn: spec.internal_fqdn(),
            old: matches!(spec.family, Family::Ex2007 | Family::Ex2010),
        },
        _ => Mta::Postfix {
            name: format!("mail.{}", host.plan.truth.domain),
        },
    };
    let banner = match &mta {
        Mta::Exchange { fqdn, .. } => format!(
            "220 {fqdn} Microsoft ESMTP MAIL Service ready at {}\r\n",
            http::smtp_date_now()
        ),
        Mta::Postfix { name } => format!("220 {name} ESMTP Postfix (Debian/GNU)\r\n"),
    };
    if !reply(&mut stream, &banner).await {
        return;
    }
    if session(&mut stream, &mta, peer, false).await != End::StartTls {
        return;
    }
    let acceptor = match host.certs.acceptor(&host.plan, Role::Mail) {
        Ok(acceptor) => acceptor,
        Err(error) => {
            debug!(ip = %host.plan.truth.ip, %error, "no certificate for STARTTLS");
            return;
        }
    };
    let mut tls = match timeout(IDLE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    // After STARTTLS the client starts over with EHLO (RFC 3207 section 4.2).
    session(&mut tls, &mta, peer, true).await;
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    StartTls,
}

async fn session<S>(io: &mut S, mta: &Mta, peer: IpAddr, tls: bool) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(512);
    for _ in 0..MAX_COMMANDS {
        let Some(line) = read_line(io, &mut buf).await else {
            return End::Closed;
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        let (text, end) = answer(mta, &verb, &arg, &line, peer, tls);
        if !reply(io, &text).await {
            return End::Closed;
        }
        match end {
            Some(End::StartTls) => {
                // Anything the client pipelined before the handshake must be dropped
                // (the STARTTLS command injection class of bugs).
                return End::StartTls;
            }
            Some(End::Closed) => {
                let _ = timeout(IDLE_TIMEOUT, io.shutdown()).await;
                return End::Closed;
            }
            None => {}
        }
    }
    let _ = reply(io, "421 4.4.2 Too many commands, closing connection\r\n").await;
    End::Closed
}

/// The reply to one command and whether the session ends or upgrades after it.
fn answer(
    mta: &Mta,
    verb: &str,
    arg: &str,
    line: &str,
    peer: IpAddr,
    tls: bool,
) -> (String, Option<End>) {
    match (mta, verb) {
        (Mta::Exchange { fqdn, .. }, "HELO") => (format!("250 {fqdn} Hello [{peer}]\r\n"), None),
        (Mta::Exchange { .. }, "EHLO") if arg.is_empty() => {
            ("501 5.5.4 Invalid domain name\r\n".to_owned(), None)
        }
        (Mta::Exchange { fqdn, old }, "EHLO") => {
            let mut lines = vec![format!("{fqdn} Hello [{peer}]"), "SIZE 37748736".into()];
            lines.extend(["PIPELINING", "DSN", "ENHANCEDSTATUSCODES"].map(String::from));
            if !tls {
                lines.extend(["STARTTLS", "X-ANONYMOUSTLS"].map(String::from));
            }
            lines.extend(
                ["AUTH NTLM", "X-EXPS GSSAPI NTLM", "8BITMIME", "BINARYMIME", "CHUNKING"]
                    .map(String::from),
            );
            lines.push(if *old { "XEXCH50" } else { "XRDST" }.to_owned());
            (multiline(&lines), None)
        }
        (Mta::Exchange { .. }, "STARTTLS") if tls => (
            "503 5.5.1 TLS already negotiated\r\n".to_owned(),
            None,
        ),
        (Mta::Exchange { .. }, "STARTTLS") => (
            "220 2.0.0 SMTP server ready\r\n".to_owned(),
            Some(End::StartTls),
        ),
        (Mta::Exchange { .. }, "MAIL") => ("250 2.1.0 Sender OK\r\n".to_owned(), None),
        (Mta::Exchange { .. }, "RCPT") => (
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup\r\n"
                .to_owned(),
            None,
        ),
        (Mta::Exchange { .. }, "DATA") => ("503 5.5.1 No recipients\r\n".to_owned(), None),
        (Mta::Exchange { .. }, "NOOP") => ("250 2.0.0 OK\r\n".to_owned(), None),
        (Mta::Exchange { .. }, "RSET") => ("250 2.0.0 Resetting\r\n".to_owned(), None),
        (Mta::Exchange { .. }, "QUIT") => (
            "221 2.0.0 Service closing transmission channel\r\n".to_owned(),
            Some(End::Closed),
        ),
        (Mta::Exchange { .. }, _) => {
            let shown: String = line.chars().take(64).collect();
            (format!("500 5.3.3 Unrecognized command '{shown}'\r\n"), None)
        }

        (Mta::Postfix { name }, "HELO") => (format!("250 {name}\r\n"), None),
        (Mta::Postfix { .. }, "EHLO") if arg.is_empty() => {
            ("501 Syntax: EHLO hostname\r\n".to_owned(), None)
        }
        (Mta::Postfix { name }, "EHLO") => {
            let mut lines = vec![name.clone()];
            lines.extend(["PIPELINING", "SIZE 10240000", "VRFY", "ETRN"].map(String::from));
            if !tls {
                lines.push("STARTTLS".to_owned());
            }
            lines.extend(
                ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]
                    .map(String::from),
            );
            (multiline(&lines), None)
        }
        (Mta::Postfix { .. }, "STARTTLS") if tls => (
            "554 5.5.1 Error: TLS already active\r\n".to_owned(),
            None,
        ),
        (Mta::Postfix { .. }, "STARTTLS") => (
            "220 2.0.0 Ready to start TLS\r\n".to_owned(),
            Some(End::StartTls),
        ),
        (Mta::Postfix { .. }, "MAIL") => ("250 2.1.0 Ok\r\n".to_owned(), None),
        (Mta::Postfix { .. }, "RCPT") => {
            let to = arg.split_once(':').map_or("", |(_, a)| a.trim());
            (
                format!("554 5.7.1 {to}: Relay access denied\r\n"),
                None,
            )
        }
        (Mta::Postfix { .. }, "DATA") => (
            "554 5.5.1 Error: no valid recipients\r\n".to_owned(),
            None,
        ),
        (Mta::Postfix { .. }, "NOOP" | "RSET") => ("250 2.0.0 Ok\r\n".to_owned(), None),
        (Mta::Postfix { .. }, "QUIT") => ("221 2.0.0 Bye\r\n".to_owned(), Some(End::Closed)),
        (Mta::Postfix { .. }, _) => (
            "502 5.5.2 Error: command not recognized\r\n".to_owned(),
            None,
        ),
    }
}

/// `250-a`, `250-b`, …, `250 z`.
fn multiline(lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("250{sep}{line}\r\n"));
    }
    out
}

/// One CRLF- (or LF-) terminated line without its terminator; `None` on EOF, timeout,
/// overlong lines or non-UTF-8.
async fn read_line<S>(io: &mut S, buf: &mut Vec<u8>) -> Option<String>
where
    S: AsyncRead + Unpin,
{
    let deadline = Instant::now() + IDLE_TIMEOUT;
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return String::from_utf8(line).ok();
        }
        if buf.len() > MAX_LINE {
            return None;
        }
        match timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

async fn reply<S>(io: &mut S, text: &str) -> bool
where
    S: AsyncWrite + Unpin,
{
    let sent = timeout(IDLE_TIMEOUT, async {
        io.write_all(text.as_bytes()).await?;
        io.flush().await
    })
    .await;
    matches!(sent, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn exchange(old: bool) -> Mta {
        Mta::Exchange {
            fqdn: "ex19-01.stadtwerke-neustadt.local".to_owned(),
            old,
        }
    }

    fn check(mta: &Mta, line: &str, tls: bool, expected: &str) {
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (text, _) = answer(mta, &verb.to_ascii_uppercase(), arg, line, peer, tls);
        assert_eq!(text, expected, "{line}");
    }

    #[test]
    fn exchange_ehlo_lists_the_documented_verbs() {
        check(
            &exchange(false),
            "EHLO scanner.example",
            false,
            "250-ex19-01.stadtwerke-neustadt.local Hello [127.0.0.1]\r\n250-SIZE 37748736\r\n\
             250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n\
             250-X-ANONYMOUSTLS\r\n250-AUTH NTLM\r\n250-X-EXPS GSSAPI NTLM\r\n250-8BITMIME\r\n\
             250-BINARYMIME\r\n250-CHUNKING\r\n250 XRDST\r\n",
        );
        let (text, _) = answer(
            &exchange(true),
            "EHLO",
            "x",
            "EHLO x",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            true,
        );
        assert!(text.ends_with("250 XEXCH50\r\n"));
        assert!(!text.contains("STARTTLS"));
        check(
            &exchange(false),
            "quit",
            false,
            "221 2.0.0 Service closing transmission channel\r\n",
        );
        check(
            &exchange(false),
            "VRFY x",
            false,
            "500 5.3.3 Unrecognized command 'VRFY x'\r\n",
        );
    }

    #[test]
    fn postfix_answers_like_debian() {
        let postfix = Mta::Postfix {
            name: "mail.a.example".to_owned(),
        };
        check(&postfix, "EHLO x", true,
            "250-mail.a.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n");
        check(
            &postfix,
            "STARTTLS",
            false,
            "220 2.0.0 Ready to start TLS\r\n",
        );
        check(&postfix, "QUIT", false, "221 2.0.0 Bye\r\n");
    }
}
