//! Distance in user space: a delay line on a connection's socket that holds every byte the
//! host sends for one round trip and can cut the connection off for ever mid-way.
//!
//! The kernel answers the SYN, so a user-space server cannot make `connect()` slow. What it
//! controls is when its bytes leave: the host starts one round trip after the accept (the
//! round trip the TCP handshake would have cost), and whatever it writes reaches the client
//! one round trip after it was written. For a client that speaks first and waits for each
//! answer (TLS, HTTP) or that waits for a greeting (SMTP), every answer then arrives when it
//! would over a link with that round-trip time; only `connect()` itself stays instant.
//! Bytes from the client pass at once: the delay line charges the whole round trip to the
//! answer, where the client can see it.
//!
//! Runtime shape: the host reads the socket itself and writes into a queue ([`HostIo`]); the
//! line ([`carry`]'s second future, in the same task) releases each queued write to the
//! socket when its round trip is up. No pipe and no relay task between them: the line costs
//! one copy of what the host writes and one timer per answer.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
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

/// Serves one connection through the delay line: `host` runs on [`HostIo`] over the
/// client's socket (`read`, `write`), as `link` says, until it is done and its bytes are out;
/// then the connection lingers, or is held open if it stalls.
///
/// The caller bounds it with its cancellation token; a stalled connection ends when the
/// client leaves or after [`STALL_HOLD`].
pub(crate) async fn carry<R, W, H>(read: R, write: W, mut link: Link, host: H)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    H: AsyncFnOnce(&mut HostIo<R>),
{
    // The round trip of the TCP handshake, which the kernel did not let us delay: the host
    // hears the client and starts talking only now.
    sleep(link.delay()).await;
    let stalled = link.stall.is_some();
    let shared = Arc::new(Mutex::new(Queue::new(link)));
    let mut io = HostIo {
        read,
        queue: shared.clone(),
    };
    let ((), mut write) = tokio::join!(
        async {
            host(&mut io).await;
            io.finish();
        },
        release(write, shared),
    );
    if !stalled {
        let _ = timeout(WRITE_TIMEOUT, write.shutdown()).await;
    }
    // A stalled connection stays open and silent until the client gives up; any other
    // lingers briefly so the client reads what was sent. The client's leaving ends both.
    let hold = if stalled { STALL_HOLD } else { LINGER };
    let mut scratch = [0u8; 4096];
    let _ = timeout(hold, async {
        while matches!(io.read.read(&mut scratch).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// The host's side of the line: reads come straight from the client's socket, writes go
/// into the queue, to be released one round trip later. A full queue ([`WINDOW`]) makes
/// writes wait; a client that can no longer be written to makes them fail.
pub(crate) struct HostIo<R> {
    read: R,
    queue: Arc<Mutex<Queue>>,
}

impl<R> HostIo<R> {
    /// The host has nothing more to send.
    fn finish(&self) {
        let mut q = lock(&self.queue);
        q.host_done = true;
        wake(&mut q.line);
    }
}

impl<R> Drop for HostIo<R> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for HostIo<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R> AsyncWrite for HostIo<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut q = lock(&self.queue);
        if q.broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = WINDOW.saturating_sub(q.queued);
        if room == 0 {
            q.host = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let taken = &buf[..buf.len().min(room)];
        let passed = q.cut.pass(taken);
        if passed > 0 {
            let release = (Instant::now() + q.link.delay()).max(q.last_release);
            q.last_release = release;
            q.queued += passed;
            q.chunks.push_back((release, taken[..passed].to_vec()));
            wake(&mut q.line);
        }
        Poll::Ready(Ok(taken.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are on the wire as far as the host can tell.
        if lock(&self.queue).broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.finish();
        Poll::Ready(Ok(()))
    }
}

/// What the host has written and the line not yet released.
struct Queue {
    link: Link,
    cut: Cut,
    /// Each write with the instant it may leave, in order.
    chunks: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes in `chunks` and the one being written.
    queued: usize,
    last_release: Instant,
    host_done: bool,
    /// The client can no longer be written to.
    broken: bool,
    /// The line, waiting for a chunk.
    line: Option<Waker>,
    /// The host, waiting for room.
    host: Option<Waker>,
}

impl Queue {
    fn new(link: Link) -> Queue {
        Queue {
            cut: Cut::new(link.stall),
            link,
            chunks: VecDeque::new(),
            queued: 0,
            last_release: Instant::now(),
            host_done: false,
            broken: false,
            line: None,
            host: None,
        }
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // A panic while holding the lock cannot leave the queue inconsistent.
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

/// Host to client: each chunk is written when its round trip is up, never before the chunk
/// ahead of it. Ends when the host has finished and everything it sent is out, or when the
/// client can no longer be written to; gives the socket back.
async fn release<W: AsyncWrite + Unpin>(mut write: W, queue: Arc<Mutex<Queue>>) -> W {
    loop {
        let next = poll_fn(|cx| {
            let mut q = lock(&queue);
            match q.chunks.front() {
                Some((at, _)) => Poll::Ready(Some(*at)),
                None if q.host_done => Poll::Ready(None),
                None => {
                    q.line = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let Some(at) = next else { return write };
        sleep_until(at).await;
        let (_, bytes) = lock(&queue)
            .chunks
            .pop_front()
            .expect("only the line takes chunks");
        let written = timeout(WRITE_TIMEOUT, async {
            write.write_all(&bytes).await?;
            write.flush().await
        })
        .await;
        let mut q = lock(&queue);
        q.queued -= bytes.len();
        if !matches!(written, Ok(Ok(()))) {
            q.broken = true;
            q.chunks.clear();
            wake(&mut q.host);
            return write;
        }
        wake(&mut q.host);
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
    use tokio::io::{duplex, DuplexStream};
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

    /// What the tests' hosts write at a time at most.
    const CHUNK: usize = 16 * 1024;

    /// A client socket and a host pipe joined by `link`, running on a task of its own. The
    /// test plays the host on the pipe: a bridge copies it to and from the [`HostIo`], and
    /// ends when the test's host does.
    fn connect(link: Link) -> (DuplexStream, DuplexStream) {
        let (client, outside) = duplex(WINDOW);
        let (host, inside) = duplex(WINDOW);
        let (read, write) = tokio::io::split(outside);
        tokio::spawn(carry(read, write, link, async move |io: &mut HostIo<_>| {
            let (mut from_host, mut to_host) = tokio::io::split(inside);
            let (mut from_client, mut to_client) = tokio::io::split(io);
            let up = async {
                let _ = tokio::io::copy(&mut from_client, &mut to_host).await;
                let _ = to_host.shutdown().await;
            };
            let down = async {
                let _ = tokio::io::copy(&mut from_host, &mut to_client).await;
            };
            tokio::pin!(up, down);
            tokio::select! {
                () = &mut down => {}
                () = &mut up => down.await,
            }
        }));
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
