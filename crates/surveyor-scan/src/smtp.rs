//! The SMTP probe: greeting, EHLO, and the certificate behind STARTTLS. Never MAIL, RCPT,
//! VRFY or EXPN: a census reads what a server announces, it does not enumerate users.

use surveyor_model::{Observation, Signal, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsConnector;

use crate::probe::Heard as TcpStream;
use crate::targets::Target;

/// Bounds on what a server may send: RFC 5321 lines are at most 512 octets; we allow more,
/// but not without limit.
const MAX_LINE: usize = 2048;
const MAX_LINES: usize = 64;

pub(crate) async fn smtp_plan(
    mut tcp: TcpStream,
    target: &Target,
    tls: &TlsConnector,
    deadline: Instant,
    obs: &mut Observation,
) {
    let mut buf = Vec::new();
    let greeting = match read_reply(&mut tcp, &mut buf, deadline).await {
        Ok(reply) => reply,
        Err(failure) => return fail(obs, failure),
    };
    if let Some(first) = greeting.lines.first() {
        obs.fingerprint
            .push(Signal::SmtpBanner, "SMTP greeting", first.clone());
    }
    if greeting.code != 220 {
        return fail(
            obs,
            (Status::ProtocolError, "the server did not greet with 220"),
        );
    }
    let local = tcp.local_addr().map(|a| a.ip()).ok();
    let ehlo_name = match local {
        Some(std::net::IpAddr::V6(v6)) => format!("[IPv6:{v6}]"),
        Some(ip) => format!("[{ip}]"),
        None => "[127.0.0.1]".into(),
    };
    if let Err(failure) = send(&mut tcp, &format!("EHLO {ehlo_name}\r\n"), deadline).await {
        return fail(obs, failure);
    }
    let ehlo = match read_reply(&mut tcp, &mut buf, deadline).await {
        Ok(reply) => reply,
        Err(failure) => return fail(obs, failure),
    };
    if ehlo.code != 250 {
        return fail(obs, (Status::ProtocolError, "the server refused EHLO"));
    }
    // The first line names the server; the rest are extensions, one keyword each.
    let extensions: Vec<String> = ehlo
        .lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|k| k.to_ascii_uppercase())
        .collect();
    obs.fingerprint
        .push(Signal::SmtpEhlo, "SMTP EHLO", extensions.join(" "));
    if !extensions.iter().any(|e| e == "STARTTLS") {
        let _ = send(&mut tcp, "QUIT\r\n", deadline).await;
        return;
    }
    if let Err(failure) = send(&mut tcp, "STARTTLS\r\n", deadline).await {
        return fail(obs, failure);
    }
    match read_reply(&mut tcp, &mut buf, deadline).await {
        Ok(reply) if reply.code == 220 => {}
        Ok(_) => {
            return fail(
                obs,
                (
                    Status::ProtocolError,
                    "the server refused STARTTLS it had offered",
                ),
            )
        }
        Err(failure) => return fail(obs, failure),
    }
    // Bytes sent after the 220 and before the handshake would be read as TLS by the server
    // and as plaintext by a naive client: the classic STARTTLS injection. Refuse them.
    if !buf.is_empty() {
        return fail(
            obs,
            (
                Status::ProtocolError,
                "the server sent data before the TLS handshake",
            ),
        );
    }
    match timeout_at(deadline, tls.connect(crate::tls::server_name(target), tcp)).await {
        Err(_) => fail(
            obs,
            (Status::IoTimeout, "timed out during the STARTTLS handshake"),
        ),
        Ok(Err(_)) => fail(obs, (Status::TlsError, "the STARTTLS handshake failed")),
        Ok(Ok(mut stream)) => {
            obs.tls = Some(crate::tls::record(stream.get_ref().1));
            let _ = timeout_at(deadline, stream.write_all(b"QUIT\r\n")).await;
        }
    }
}

fn fail(obs: &mut Observation, (status, error): (Status, &'static str)) {
    obs.status = status;
    obs.error = Some(error.into());
}

type Failure = (Status, &'static str);

struct Reply {
    code: u16,
    /// The text of each line after the code and separator.
    lines: Vec<String>,
}

async fn send(tcp: &mut TcpStream, line: &str, deadline: Instant) -> Result<(), Failure> {
    match timeout_at(deadline, tcp.write_all(line.as_bytes())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err((
            Status::ProtocolError,
            "the server closed the SMTP connection",
        )),
        Err(_) => Err((Status::IoTimeout, "timed out sending to the SMTP server")),
    }
}

/// Reads one (possibly multi-line) reply: `250-…` lines continue, `250 …` ends it.
async fn read_reply(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<Reply, Failure> {
    let mut lines = Vec::new();
    loop {
        let line = read_line(tcp, buf, deadline).await?;
        let bad = (
            Status::ProtocolError,
            "the server sent a malformed SMTP reply",
        );
        if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        let code: u16 = line[..3].parse().map_err(|_| bad)?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(
            line.get(4..)
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .collect(),
        );
        if !more {
            return Ok(Reply { code, lines });
        }
        if lines.len() >= MAX_LINES {
            return Err((
                Status::ProtocolError,
                "the server sent an endless SMTP reply",
            ));
        }
    }
}

async fn read_line(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<String, Failure> {
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            return Ok(text);
        }
        if buf.len() > MAX_LINE {
            return Err((
                Status::ProtocolError,
                "the server sent an overlong SMTP line",
            ));
        }
        let mut chunk = [0u8; 1024];
        match timeout_at(deadline, tcp.read(&mut chunk)).await {
            Err(_) => return Err((Status::IoTimeout, "timed out waiting for the SMTP server")),
            Ok(Err(_)) | Ok(Ok(0)) => {
                return Err((
                    Status::ProtocolError,
                    "the server closed the SMTP connection",
                ))
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
