//! Distance in user space: a delay line between a connection's socket and the host that
//! serves it, which holds every byte the host sends for one round trip and can cut the
//! connection off for ever mid-way.
//!
//! The kernel answers the SYN, so a user-space server cannot make `connect()` slow. What it
//! controls is when its bytes leave: the host starts one round trip after the accept (the
//! round trip the TCP handshake would have cost), and whatever it writes reaches the client
//! one round trip after it was written. For a client that speaks first and waits for each
//! answer (TLS, HTTP) or that waits for a greeting (SMTP), every answer then arrives when it
//! would over a link with that round-trip time; only `connect()` itself stays instant.
//! Bytes from the client pass at once: the delay line charges the whole round trip to the
//! answer, where the client can see it.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::plan::Stall;

/// Bytes the delay line holds for the client at most, like a TCP window: a host with a
/// round trip `r` delivers at most `WINDOW / r` bytes a second, as TCP does.
pub(crate) const WINDOW: usize = 256 * 1024;
/// Each answer's delay is the host's round trip ± this share, drawn per answer.
pub(crate) const JITTER: f64 = 0.1;
/// A stalled connection is held this long at most (as long as a tarpit), unless the client
/// leaves first.
pub(crate) const STALL_HOLD: Duration = Duration::from_secs(120);
/// After the host has finished and its bytes are out, the client's remaining input is read
/// for this long, so that closing does not reset what the client has not read yet.
const LINGER: Duration = Duration::from_secs(2);
/// A client that stops reading makes a write give up after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// What one read from the host takes at most.
const CHUNK: usize = 16 * 1024;

/// One connection's distance: its round trip, jitter and stall.
pub(crate) struct Link {
    /// The host's round-trip time (zero: no delay).
    pub(crate) rtt: Duration,
    /// Share of `rtt` by which each answer's delay may differ, 0 to 1.
    pub(crate) jitter: f64,
    /// Where the connection stops for ever, if it does.
    pub(crate) stall: Option<Stall>,
    /// Draws the jitter; seeded per connection, so a connection's delays are reproducible.
    pub(crate) rng: ChaCha8Rng,
}

impl Link {
    fn delay(&mut self) -> Duration {
        if self.rtt.is_zero() || self.jitter <= 0.0 {
            return self.rtt;
        }
        let factor = 1.0 + self.jitter * self.rng.gen_range(-1.0..=1.0);
        self.rtt.mul_f64(factor.max(0.0))
    }
}

/// Carries one connection between the client's socket (`outside`) and the host serving it
/// (`inside`, the other end of a duplex pipe) until both are done, as `link` says.
///
/// The caller bounds it with its cancellation token; a stalled connection ends when the
/// client leaves or after [`STALL_HOLD`].
pub(crate) async fn run<T>(outside: T, inside: DuplexStream, mut link: Link)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // The round trip of the TCP handshake, which the kernel did not let us delay: the host
    // hears the client and starts talking only now.
    sleep(link.delay()).await;
    let stalled = link.stall.is_some();
    let (mut from_client, mut to_client) = tokio::io::split(outside);
    let (mut from_host, mut to_host) = tokio::io::split(inside);
    let up = upstream(&mut from_client, &mut to_host);
    let down = downstream(&mut from_host, &mut to_client, &mut link);
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => {
            // The client has left (or stopped sending): the host sees the end of its input
            // and finishes; its remaining bytes still go out if the client reads them.
            down.await;
        }
        () = &mut down => {
            // The host is done. A stalled connection stays open and silent until the client
            // gives up; any other lingers briefly so the client reads what was sent.
            let hold = if stalled { STALL_HOLD } else { LINGER };
            let _ = timeout(hold, up).await;
        }
    }
}

/// Client to host, undelayed. Ends at the client's end of input (or an error), which the
/// host then sees. Once the host has stopped reading, input is read and dropped.
async fn upstream<R, W>(from_client: &mut R, to_host: &mut W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut forward = true;
    loop {
        match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if forward && to_host.write_all(&buf[..n]).await.is_err() {
                    forward = false;
                }
            }
        }
    }
    let _ = to_host.shutdown().await;
}

/// Host to client through the delay line: each chunk the host writes is released one
/// (jittered) round trip later, never before the chunk ahead of it. Ends when the host has
/// finished and everything it sent is out (then the client sees the end, unless the
/// connection stalls), or when the client can no longer be written to.
async fn downstream<R, W>(from_host: &mut R, to_client: &mut W, link: &mut Link)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut queued = 0;
    let mut last_release = Instant::now();
    let mut cut = Cut::new(link.stall);
    let mut host_done = false;
    let mut buf = vec![0u8; CHUNK];
    while !(host_done && queue.is_empty()) {
        let due = queue.front().map(|(at, _)| *at);
        tokio::select! {
            read = from_host.read(&mut buf), if !host_done && queued < WINDOW => match read {
                Ok(0) | Err(_) => host_done = true,
                Ok(n) => {
                    let passed = cut.pass(&buf[..n]);
                    if passed > 0 {
                        let release = (Instant::now() + link.delay()).max(last_release);
                        last_release = release;
                        queued += passed;
                        queue.push_back((release, buf[..passed].to_vec()));
                    }
                }
            },
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let (_, bytes) = queue.pop_front().expect("due is the front's release");
                queued -= bytes.len();
                let written = timeout(WRITE_TIMEOUT, async {
                    to_client.write_all(&bytes).await?;
                    to_client.flush().await
                })
                .await;
                if !matches!(written, Ok(Ok(()))) {
                    return;
                }
            }
        }
    }
    if link.stall.is_none() {
        let _ = timeout(WRITE_TIMEOUT, to_client.shutdown()).await;
    }
}

/// How much of what the host writes reaches the client.
enum Cut {
    /// Everything.
    Nothing,
    /// Nothing at all.
    Everything,
    /// Only the first TLS record (the ServerHello), whose length the first bytes give.
    AfterFirstRecord,
    /// This many more bytes, then nothing.
    After(usize),
}

impl Cut {
    fn new(stall: Option<Stall>) -> Cut {
        match stall {
            // The response is cut by the host itself, which knows where it begins.
            None | Some(Stall::HalfResponse) => Cut::Nothing,
            Some(Stall::Accepted) => Cut::Everything,
            Some(Stall::ServerHello) => Cut::AfterFirstRecord,
        }
    }

    /// How many leading bytes of `chunk` pass.
    fn pass(&mut self, chunk: &[u8]) -> usize {
        if let Cut::AfterFirstRecord = self {
            // A TLS record: type, version (2 bytes), length (2 bytes), then the fragment. A
            // first write too short to say its length passes whole, and nothing after it.
            let len = match chunk {
                [_, _, _, hi, lo, ..] => 5 + usize::from(u16::from_be_bytes([*hi, *lo])),
                _ => chunk.len(),
            };
            *self = Cut::After(len);
        }
        match self {
            Cut::Nothing => chunk.len(),
            Cut::Everything | Cut::AfterFirstRecord => 0,
            Cut::After(left) => {
                let n = chunk.len().min(*left);
                *left -= n;
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use tokio::io::duplex;
    use tokio::time::timeout;

    use super::*;

    fn link(rtt_ms: u64, jitter: f64, stall: Option<Stall>) -> Link {
        Link {
            rtt: Duration::from_millis(rtt_ms),
            jitter,
            stall,
            rng: ChaCha8Rng::seed_from_u64(1),
        }
    }

    /// A client socket and a host pipe joined by `link`, running on a task of its own.
    fn connect(link: Link) -> (DuplexStream, DuplexStream) {
        let (client, outside) = duplex(WINDOW);
        let (host, inside) = duplex(WINDOW);
        tokio::spawn(run(outside, inside, link));
        (client, host)
    }

    async fn read_some(io: &mut DuplexStream) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let n = io.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    }

    #[tokio::test(start_paused = true)]
    async fn answers_arrive_one_round_trip_late_and_the_first_two() {
        let (mut client, mut host) = connect(link(100, 0.0, None));
        let start = Instant::now();
        // The client speaks first (a ClientHello); the host hears it after the handshake's
        // round trip and answers at once.
        client.write_all(b"hello").await.unwrap();
        assert_eq!(read_some(&mut host).await, b"hello");
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        host.write_all(b"flight").await.unwrap();
        assert_eq!(read_some(&mut client).await, b"flight");
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // Every later exchange costs one round trip, seen from the client.
        let asked = Instant::now();
        client.write_all(b"GET").await.unwrap();
        assert_eq!(read_some(&mut host).await, b"GET");
        assert_eq!(asked.elapsed(), Duration::ZERO, "client bytes pass at once");
        host.write_all(b"200").await.unwrap();
        assert_eq!(read_some(&mut client).await, b"200");
        assert_eq!(asked.elapsed(), Duration::from_millis(100));
        // The host's end reaches the client after its last bytes.
        drop(host);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_greeting_arrives_two_round_trips_after_connect() {
        let (mut client, mut host) = connect(link(50, 0.0, None));
        let start = Instant::now();
        host.write_all(b"220 ready\r\n").await.unwrap();
        assert_eq!(read_some(&mut client).await, b"220 ready\r\n");
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_its_share_and_never_reorders() {
        let (mut client, mut host) = connect(link(100, JITTER, None));
        client.write_all(b"x").await.unwrap();
        read_some(&mut host).await;
        let mut got = Vec::new();
        for i in 0..50u8 {
            let sent = Instant::now();
            host.write_all(&[i]).await.unwrap();
            got.extend(read_some(&mut client).await);
            let took = sent.elapsed();
            assert!(
                took <= Duration::from_millis(110),
                "{took:?} for answer {i}"
            );
            assert!(took >= Duration::from_millis(90), "{took:?} for answer {i}");
        }
        // Written back to back, chunks keep their order even when a later one drew less.
        for i in 50..100u8 {
            host.write_all(&[i]).await.unwrap();
            tokio::task::yield_now().await;
        }
        while got.len() < 100 {
            got.extend(read_some(&mut client).await);
        }
        assert_eq!(got, (0..100).collect::<Vec<u8>>());
    }

    #[tokio::test(start_paused = true)]
    async fn an_accepted_stall_sends_nothing_and_holds_the_connection() {
        let (mut client, mut host) = connect(link(20, 0.0, Some(Stall::Accepted)));
        client.write_all(b"hello").await.unwrap();
        assert_eq!(read_some(&mut host).await, b"hello");
        host.write_all(b"flight").await.unwrap();
        drop(host);
        // Neither bytes nor an end arrive for as long as the hold lasts...
        let mut buf = [0u8; 64];
        let waited = timeout(STALL_HOLD - Duration::from_secs(1), client.read(&mut buf)).await;
        assert!(waited.is_err(), "{waited:?}");
        // ...then the connection is let go.
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_hello_stall_passes_the_first_record_only() {
        let (mut client, mut host) = connect(link(20, 0.0, Some(Stall::ServerHello)));
        client.write_all(b"hello").await.unwrap();
        read_some(&mut host).await;
        // A handshake record of 4 bytes, then the rest of the flight.
        let mut flight = vec![22, 3, 3, 0, 4, 1, 2, 3, 4];
        flight.extend([23, 3, 3, 0, 2, 9, 9]);
        host.write_all(&flight).await.unwrap();
        assert_eq!(read_some(&mut client).await, flight[..9]);
        host.write_all(b"more").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(timeout(Duration::from_secs(60), client.read(&mut buf))
            .await
            .is_err());
        // A client that leaves ends the hold at once.
        drop(client);
        let mut rest = Vec::new();
        timeout(Duration::from_secs(1), host.read_to_end(&mut rest))
            .await
            .expect("the host sees the client go")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_response_stall_never_ends_the_connection() {
        let (mut client, mut host) = connect(link(0, 0.0, Some(Stall::HalfResponse)));
        host.write_all(b"HTTP/1.1 30").await.unwrap();
        drop(host);
        assert_eq!(read_some(&mut client).await, b"HTTP/1.1 30");
        let mut buf = [0u8; 64];
        assert!(timeout(Duration::from_secs(60), client.read(&mut buf))
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_bounds_what_is_in_flight() {
        let (mut client, mut host) = connect(link(1000, 0.0, None));
        client.write_all(b"x").await.unwrap();
        read_some(&mut host).await;
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; CHUNK];
            let mut written = 0usize;
            while written < 8 * WINDOW {
                host.write_all(&chunk).await.unwrap();
                written += CHUNK;
            }
        });
        // One second in, the client has had the first window (and nothing else yet).
        sleep(Duration::from_millis(1001)).await;
        let mut seen = 0;
        while let Ok(Ok(n)) =
            timeout(Duration::from_millis(0), client.read(&mut vec![0u8; CHUNK])).await
        {
            seen += n;
        }
        assert!((WINDOW - CHUNK..=WINDOW).contains(&seen), "{seen}");
        let mut rest = vec![0u8; CHUNK];
        while seen < 8 * WINDOW {
            seen += client.read(&mut rest).await.unwrap();
        }
        writer.await.unwrap();
    }

    #[test]
    fn a_cut_after_the_first_record_counts_its_length() {
        let mut cut = Cut::new(Some(Stall::ServerHello));
        assert_eq!(cut.pass(&[22, 3, 3, 0, 10, 1, 2, 3]), 8);
        assert_eq!(cut.pass(&[4, 5, 6, 7, 8, 9, 10, 11]), 7);
        assert_eq!(cut.pass(&[1, 2, 3]), 0);
        let mut cut = Cut::new(Some(Stall::Accepted));
        assert_eq!(cut.pass(b"anything"), 0);
        let mut cut = Cut::new(None);
        assert_eq!(cut.pass(b"anything"), 8);
    }
}
