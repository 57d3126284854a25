//! Hostile personas: servers that misbehave at the byte level, below HTTP's semantics.
//!
//! Each one stands for something a census meets on the real Internet (tarpits, broken
//! middleboxes, decompression bombs). What a correct scanner reports for each is in
//! [`Hostile::expected_status`] and `docs/testbed.md`.

use std::sync::OnceLock;
use std::time::Duration;

use flate2::{Compress, Compression, Crc, FlushCompress};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep, timeout, timeout_at, Instant};

use crate::http::{self, Request};
use crate::plan::Hostile;
use crate::server;

/// A tarpit holds a connection this long at most, so it cannot pin a permit forever.
const TARPIT_HOLD: Duration = Duration::from_secs(120);
/// One byte per interval: a 180-byte head takes six minutes, far beyond any per-target
/// deadline a scanner should use.
pub(crate) const DRIP_INTERVAL: Duration = Duration::from_secs(2);
/// The endless body stops after this many bytes (or when the client leaves).
const ENDLESS_LIMIT: u64 = 64 << 30;
const ENDLESS_CHUNK: usize = 16 * 1024;
/// At least this much header text in the huge head.
pub(crate) const HUGE_HEAD: usize = 1 << 20;
/// Uncompressed bytes per repeated deflate segment of the gzip bomb, and how many segments.
const BOMB_SEGMENT: usize = 1 << 20;
pub(crate) const BOMB_SEGMENTS: u32 = 2048;
/// Random bytes sent after the TLS handshake.
const GARBAGE_LEN: usize = 64 * 1024;
/// What the wrong-content-length persona declares, and what it sends.
pub(crate) const DECLARED_LENGTH: usize = 10_240;
/// Writes to a client that stopped reading give up after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts and then says nothing: reads and drops input until the client leaves.
pub(crate) async fn tarpit<S>(stream: &mut S)
where
    S: AsyncRead + Unpin,
{
    let deadline = Instant::now() + TARPIT_HOLD;
    let mut sink = [0u8; 1024];
    while let Ok(Ok(n)) = timeout_at(deadline, stream.read(&mut sink)).await {
        if n == 0 {
            return;
        }
    }
}

/// Random bytes right after the handshake, then a clean close.
pub(crate) async fn garbage<S>(io: &mut S, rng: &mut ChaCha8Rng)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut bytes = vec![0u8; GARBAGE_LEN];
    rng.fill(&mut bytes[..]);
    // Never start like a status line by accident.
    bytes[0] &= 0x3f;
    finish(io, &bytes).await;
}

/// Answers `request` the hostile way; `false` means "answer like a normal server" (the
/// redirect loop is hostile only in what it says, not how).
pub(crate) async fn answer<S>(
    hostile: Hostile,
    io: &mut S,
    request: &Request,
    rng: &mut ChaCha8Rng,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head_only = request.method == "HEAD";
    match hostile {
        Hostile::Tarpit | Hostile::GarbageAfterTls | Hostile::RedirectLoop => return false,
        Hostile::SlowDrip => slow_drip(io).await,
        Hostile::EndlessBody => endless_body(io, head_only).await,
        Hostile::HugeHeaders => finish(io, &huge_head(rng)).await,
        Hostile::MalformedStatusLine => finish(io, &malformed_status(head_only)).await,
        Hostile::GzipBomb => gzip_bomb(io, head_only).await,
        Hostile::WrongContentLength => finish(io, &short_body(head_only)).await,
    }
    true
}

/// A valid response head, one byte at a time.
async fn slow_drip<S>(io: &mut S)
where
    S: AsyncWrite + Unpin,
{
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {}\r\nContent-Type: text/html\r\n\
         Content-Length: 615\r\nConnection: keep-alive\r\nAccept-Ranges: bytes\r\n\r\n",
        http::http_date_now()
    );
    for byte in head.as_bytes() {
        let sent = timeout(WRITE_TIMEOUT, async {
            io.write_all(std::slice::from_ref(byte)).await?;
            io.flush().await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
        sleep(DRIP_INTERVAL).await;
    }
}

/// A valid 200 head and a chunked body that does not end.
async fn endless_body<S>(io: &mut S, head_only: bool)
where
    S: AsyncWrite + Unpin,
{
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {}\r\nContent-Type: text/html\r\n\
         Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
        http::http_date_now()
    );
    if !write(io, head.as_bytes()).await || head_only {
        return;
    }
    let filler: Vec<u8> = b"<p>lorem ipsum dolor sit amet</p>\n"
        .iter()
        .copied()
        .cycle()
        .take(ENDLESS_CHUNK)
        .collect();
    let mut chunk = format!("{ENDLESS_CHUNK:x}\r\n").into_bytes();
    chunk.extend_from_slice(&filler);
    chunk.extend_from_slice(b"\r\n");
    let mut sent = 0u64;
    while sent < ENDLESS_LIMIT && write(io, &chunk).await {
        sent += chunk.len() as u64;
    }
}

/// A status line, then more than [`HUGE_HEAD`] bytes of header fields, then a tiny body.
fn huge_head(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(HUGE_HEAD + 64 * 1024);
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Type: text/html\r\n",
    );
    let mut n = 0u32;
    while out.len() <= HUGE_HEAD {
        let value: u64 = rng.gen();
        out.extend_from_slice(
            format!("X-Tracking-{n:05}: {value:016x}{value:016x}{value:016x}\r\n").as_bytes(),
        );
        n += 1;
    }
    out.extend_from_slice(b"Content-Length: 2\r\nConnection: close\r\n\r\nok");
    out
}

fn malformed_status(head_only: bool) -> Vec<u8> {
    let body = "<html><body>OK</body></html>\n";
    let mut out = format!(
        "HTTP/1.1 2OO OK\r\nServer: nginx/1.24.0\r\nDate: {}\r\nContent-Type: text/html\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        http::http_date_now(),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Declares [`DECLARED_LENGTH`] bytes, sends fewer, then closes.
fn short_body(head_only: bool) -> Vec<u8> {
    let body = crate::pages::NGINX_WELCOME.as_bytes();
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {}\r\nContent-Type: text/html\r\n\
         Content-Length: {DECLARED_LENGTH}\r\nConnection: close\r\n\r\n",
        http::http_date_now()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// The repeated deflate segment and the gzip trailer of the bomb, made once per process.
pub(crate) struct Bomb {
    /// Raw deflate of [`BOMB_SEGMENT`] zero bytes, ending in a full flush so it is byte
    /// aligned and refers to nothing before it; repeating it stays a valid stream.
    segment: Vec<u8>,
    /// CRC-32 and length (mod 2^32) of all the uncompressed data.
    trailer: [u8; 8],
}

impl Bomb {
    /// Length of the whole gzip member.
    pub(crate) fn len(&self) -> usize {
        GZIP_HEADER.len() + self.segment.len() * BOMB_SEGMENTS as usize + FINAL_BLOCK.len() + 8
    }
}

/// The empty stored block a full flush ends with.
const SYNC_MARKER: [u8; 4] = [0, 0, 0xff, 0xff];
/// gzip member header: deflate, no flags, no mtime, OS = Unix.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
/// An empty final block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

pub(crate) fn bomb() -> &'static Bomb {
    static BOMB: OnceLock<Bomb> = OnceLock::new();
    BOMB.get_or_init(|| {
        let zeros = vec![0u8; BOMB_SEGMENT];
        let mut deflate = Compress::new(Compression::best(), false);
        let mut segment = Vec::with_capacity(64 * 1024);
        // One call normally does it all (1 MiB of zeros deflates to about 1 KiB); loop only
        // if the buffer was short. Calling again after the flush completed would append
        // another sync marker, hence the check for it.
        while deflate.total_in() < zeros.len() as u64 || !segment.ends_with(&SYNC_MARKER) {
            let consumed = deflate.total_in() as usize;
            segment.reserve(64 * 1024);
            deflate
                .compress_vec(&zeros[consumed..], &mut segment, FlushCompress::Full)
                .expect("deflating zeros into a growing buffer cannot fail");
        }
        let mut one = Crc::new();
        one.update(&zeros);
        let mut all = Crc::new();
        for _ in 0..BOMB_SEGMENTS {
            all.combine(&one);
        }
        let total = (BOMB_SEGMENT as u64 * u64::from(BOMB_SEGMENTS)) as u32;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&all.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&total.to_le_bytes());
        Bomb { segment, trailer }
    })
}

/// A small `Content-Encoding: gzip` body that inflates to 2 GiB of zeros.
async fn gzip_bomb<S>(io: &mut S, head_only: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bomb = bomb();
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {}\r\nContent-Type: text/html\r\n\
         Content-Length: {}\r\nConnection: close\r\nContent-Encoding: gzip\r\n\r\n",
        http::http_date_now(),
        bomb.len()
    );
    let mut first = head.into_bytes();
    if head_only {
        finish(io, &first).await;
        return;
    }
    first.extend_from_slice(&GZIP_HEADER);
    if !write(io, &first).await {
        return;
    }
    // Batches of segments keep the number of TLS records and syscalls down.
    const BATCH: u32 = 64;
    let batch = bomb.segment.repeat(BATCH as usize);
    for _ in 0..BOMB_SEGMENTS / BATCH {
        if !write(io, &batch).await {
            return;
        }
    }
    let mut tail = FINAL_BLOCK.to_vec();
    tail.extend_from_slice(&bomb.trailer);
    finish(io, &tail).await;
}

async fn write<S>(io: &mut S, bytes: &[u8]) -> bool
where
    S: AsyncWrite + Unpin,
{
    let sent = timeout(WRITE_TIMEOUT, async {
        io.write_all(bytes).await?;
        io.flush().await
    })
    .await;
    matches!(sent, Ok(Ok(())))
}

/// Sends the last bytes, closes cleanly (close_notify on TLS) and drains what the client
/// still sends, so the kernel does not reset the connection under the response.
async fn finish<S>(io: &mut S, bytes: &[u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if write(io, bytes).await {
        let _ = timeout(WRITE_TIMEOUT, io.shutdown()).await;
        server::linger(io).await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use rand::SeedableRng;

    use super::*;

    #[test]
    fn bomb_is_small_valid_gzip_of_zeros() {
        let bomb = bomb();
        // Deflate tops out near 1:1030; the whole member stays around 2 MB.
        assert!(bomb.len() < 3 << 20, "{}", bomb.len());
        let mut member = GZIP_HEADER.to_vec();
        // Three segments and the real trailer of 2048 would disagree, so check framing
        // with a short member: three segments, own trailer.
        for _ in 0..3 {
            member.extend_from_slice(&bomb.segment);
        }
        member.extend_from_slice(&FINAL_BLOCK);
        let mut crc = Crc::new();
        crc.update(&vec![0u8; 3 * BOMB_SEGMENT]);
        member.extend_from_slice(&crc.sum().to_le_bytes());
        member.extend_from_slice(&((3 * BOMB_SEGMENT) as u32).to_le_bytes());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&member[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 3 * BOMB_SEGMENT);
        assert!(out.iter().all(|&b| b == 0));
        // 2 GiB is 0x8000_0000.
        assert_eq!(bomb.trailer[4..], 0x8000_0000u32.to_le_bytes());
    }

    #[test]
    fn huge_head_is_over_a_mebibyte_of_valid_fields() {
        let head = huge_head(&mut ChaCha8Rng::seed_from_u64(1));
        let end = http::head_end(&head).unwrap();
        assert!(end > HUGE_HEAD);
        assert_eq!(&head[end..], b"ok");
    }
}
